"""Messages as a record: find any message by what it was about, to whom, on which channel, in which state and
when, and read its life step by step (notification_events) with the provider's answers.

The API (`GET /api/ops/v1/messages`, `/messages/<id>`) and the console's message log read through here.
Texts are shown as stored: personal links as "/m/[link #ID]" and codes masked (notifications.masking); a
code message still waiting to go out is masked on the way out too."""
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from core import paging
from notifications import masking
from notifications.models import (Account, Broadcast, Channel, Notification, NotificationEvent, NotificationStatus,
                                  cause)


@dataclass(frozen=True)
class Filters:
    incident_id: int | None = None  # messages of broadcasts about this incident (updates, offers, operators')
    broadcast_id: int | None = None
    account_number: str | None = None
    channel: Channel | None = None
    status: NotificationStatus | None = None
    since: datetime | None = None  # queued at or after
    until: datetime | None = None  # queued before
    recipient: str | None = None  # exact phone number or email address

    def active(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}


def query(filters: Filters) -> sa.Select:
    q = sa.select(Notification)
    if filters.incident_id is not None:
        q = q.where(Notification.broadcast_id.in_(
            sa.select(Broadcast.id).where(Broadcast.cause == cause("incident", filters.incident_id))))
    if filters.broadcast_id is not None:
        q = q.where(Notification.broadcast_id == filters.broadcast_id)
    if filters.account_number:
        q = q.where(Notification.account_id.in_(
            sa.select(Account.id).where(Account.account_number == filters.account_number)))
    if filters.channel is not None:
        q = q.where(Notification.channel == filters.channel)
    if filters.status is not None:
        q = q.where(Notification.status == filters.status)
    if filters.since is not None:
        q = q.where(Notification.created_at >= filters.since)
    if filters.until is not None:
        q = q.where(Notification.created_at < filters.until)
    if filters.recipient:
        q = q.where(Notification.recipient == filters.recipient.strip().lower()
                    if "@" in filters.recipient else Notification.recipient == filters.recipient.strip())
    return q


def search(session, filters: Filters, *, limit: int, cursor: str | None = None) -> paging.Page:
    """Newest first, one page after `cursor` (raises paging.BadCursor for a cursor we did not give)."""
    return paging.page(session, query(filters), Notification.id, limit=limit, cursor=cursor)


def history(session, notification: Notification) -> list[dict]:
    """Each step of a message's life, oldest first: its queuing, then every recorded event."""
    steps = [{"at": notification.created_at, "status": NotificationStatus.QUEUED.value, "source": "queued",
              "error_code": None, "error_message": None, "payload": None}]
    for e in session.scalars(sa.select(NotificationEvent).where(NotificationEvent.notification_id == notification.id)
                             .order_by(NotificationEvent.id)):
        steps.append({"at": e.at, "status": e.status, "source": e.source, "error_code": e.error_code,
                      "error_message": e.error_message, "payload": e.payload})
    return steps


def shown(notification: Notification, part: str) -> str | None:
    """A stored text as the record shows it: never a live link or code."""
    return masking.mask(getattr(notification, part), template=notification.template)


def account_numbers(session, rows) -> dict[int, str]:
    ids = {r.account_id for r in rows if r.account_id}
    if not ids:
        return {}
    return dict(session.execute(sa.select(Account.id, Account.account_number).where(Account.id.in_(ids))).all())
