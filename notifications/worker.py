"""The notifier worker: claim due outbox rows, send them, record the outcome.

Rows are claimed with a short lease (status sending + lease_until) in their own transaction, then sent
with no transaction open, then the result is committed: a crash loses nothing, and only the rows in
flight at that moment can be sent again once their lease runs out."""
from datetime import timedelta

import sqlalchemy as sa

from core.db import db, utcnow
from notifications.models import Notification, NotificationStatus
from notifications.providers import LogProvider, Provider, ProviderError

LEASE_SECONDS = 60
MAX_ATTEMPTS = 5


def providers_from_config(config) -> dict[str, Provider]:
    """Channel -> provider; the log provider until Twilio / SMTP settings are configured."""
    return {"sms": LogProvider(), "email": LogProvider()}


def claim(session, *, limit: int) -> list[int]:
    """Lease up to `limit` due rows (queued, or sending with an expired lease) and commit the lease."""
    now = utcnow()
    due = sa.or_(
        sa.and_(Notification.status == NotificationStatus.QUEUED, Notification.next_attempt_at <= now),
        sa.and_(Notification.status == NotificationStatus.SENDING, Notification.lease_until < now),
    )
    q = sa.select(Notification.id).where(due).order_by(Notification.urgent.desc(), Notification.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    ids = list(session.scalars(q))
    if ids:
        session.execute(sa.update(Notification).where(Notification.id.in_(ids), due).values(
            status=NotificationStatus.SENDING, lease_until=now + timedelta(seconds=LEASE_SECONDS),
            attempts=Notification.attempts + 1, updated_at=now))
    session.commit()
    return ids


def send_one(session, notification_id: int, providers: dict[str, Provider]) -> None:
    """Send one leased row and record the result (the provider call happens with no transaction open)."""
    message = session.get(Notification, notification_id)
    session.commit()  # release the connection's transaction before talking to the provider
    provider = providers[message.channel.value]
    now = utcnow()
    try:
        sent = provider.send(message)
    except ProviderError as e:
        message.error_code, message.error_message = e.code, e.message[:500]
        if e.retryable and message.attempts < MAX_ATTEMPTS:
            message.status = NotificationStatus.QUEUED
            message.next_attempt_at = now + timedelta(seconds=30 * 2 ** message.attempts)
        else:
            message.status = NotificationStatus.FAILED
    else:
        message.status, message.provider, message.provider_id = NotificationStatus.SENT, provider.name, sent.provider_id
        message.sent_at = now
    message.lease_until, message.updated_at = None, now
    session.commit()


def run_once(session=None, *, providers: dict[str, Provider] | None = None, batch: int = 100) -> int:
    """Send every message due now; returns how many were attempted."""
    from flask import current_app

    session = session or db.session
    providers = providers or providers_from_config(current_app.config)
    done = 0
    while ids := claim(session, limit=batch):
        for notification_id in ids:
            send_one(session, notification_id, providers)
            done += 1
    return done
