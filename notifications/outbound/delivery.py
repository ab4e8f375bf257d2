"""Draining the webhook outbox: claim due deliveries with a lease, sign and send them with no transaction open,
record each attempt, retry on 5xx, 429, connection errors and timeouts, and disable an endpoint that has failed
for a day.

The notifier worker calls `Deliverer.run_once` every poll interval (notifications.worker); tests call
`deliver_due`. The claim is the notifier's: FOR UPDATE SKIP LOCKED on PostgreSQL, one UPDATE ... RETURNING on
SQLite, so with several workers each delivery is attempted by one of them at a time."""
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import sessionmaker
from standardwebhooks.webhooks import Webhook

from core.db import db, utcnow
from notifications.outbound import transport
from notifications.outbound.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from ops.audit import Actor, record

log = logging.getLogger("lifeboat.webhooks")

# Seconds to wait after failed attempt n (1-based): about 24.7 hours from the first attempt to the 11th, the last.
RETRY_DELAYS = (5, 30, 2 * 60, 10 * 60, 30 * 60, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 9 * 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
DISABLE_AFTER = timedelta(days=1)  # of consecutive failures (no success in between) at one endpoint
LEASE = timedelta(seconds=60)  # above the 10 s send cap plus the time to record it
WORKER = Actor(operator_id=None, label="notifier (webhooks)")


@dataclass(frozen=True)
class Claimed:
    """A leased delivery with what sending it needs (read in the claim, so no session is open while sending)."""

    id: int
    endpoint_id: int
    url: str
    secret: str
    previous_secret: str | None  # still signed with, until its time is up (a rotation that kept it)
    message_id: str
    body: str
    attempts: int  # this attempt's number
    lease: datetime


def retryable(status: int | None) -> bool:
    """5xx, 429 and no answer at all (connection error, timeout) are worth another try; other answers are not."""
    return status is None or status == 429 or status >= 500


def signed_headers(secret: str, message_id: str, body: str, at: datetime, previous: str | None = None) -> dict:
    """webhook-id, webhook-timestamp and webhook-signature per Standard Webhooks (signed by its own library); with
    a previous secret still valid, the signature header holds both signatures, the new one first."""
    signatures = [Webhook(s).sign(message_id, at, body) for s in (secret, previous) if s]
    return {"webhook-id": message_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": " ".join(signatures)}


class Deliverer:
    """Claims due deliveries, sends up to `concurrency` at a time, records every attempt."""

    def __init__(self, engine, *, allow_private: bool, resolver=socket.getaddrinfo, clock=utcnow,
                 timeout: float = 10.0, max_bytes: int = 64 * 1024, concurrency: int = 4, batch: int = 20,
                 ca_certs: str | None = None):
        self.Session = sessionmaker(bind=engine, expire_on_commit=False)
        self.ca_certs = ca_certs  # a PEM file of CAs to trust instead of the system's (WEBHOOKS_CA_FILE)
        self.allow_private, self.resolver, self.clock = allow_private, resolver, clock
        self.timeout, self.max_bytes, self.concurrency, self.batch = timeout, max_bytes, concurrency, batch

    @classmethod
    def from_config(cls, config, engine, **overrides) -> "Deliverer":
        """A Deliverer with the app's WEBHOOKS_* settings (keyword overrides win, e.g. a resolver in tests)."""
        values = dict(allow_private=bool(config.get("WEBHOOKS_ALLOW_PRIVATE_TARGETS")),
                      timeout=float(config.get("WEBHOOKS_TIMEOUT_SECONDS", 10)),
                      max_bytes=int(config.get("WEBHOOKS_MAX_RESPONSE_BYTES", 64 * 1024)),
                      ca_certs=config.get("WEBHOOKS_CA_FILE") or None)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(engine, **values)

    def run_once(self, *, now: datetime | None = None) -> int:
        """Attempt every delivery due at `now` (default: the clock), in batches; returns how many were attempted."""
        done, pool = 0, None
        try:
            while True:
                at = now or self.clock()
                with self.Session() as session:
                    claimed = claim(session, now=at, limit=self.batch)
                if not claimed:
                    return done
                pool = pool or ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="webhooks")
                list(pool.map(lambda c: self.attempt(c, now=now), claimed))
                done += len(claimed)
                if len(claimed) < self.batch:
                    return done
        finally:
            if pool is not None:
                pool.shutdown()

    def attempt(self, c: Claimed, *, now: datetime | None = None) -> str:
        """Send one claimed delivery and record the outcome; returns it (delivered, retry, failed, lost)."""
        sent_at = utcnow()  # the signature's time is the real one: receivers reject stale timestamps
        headers = signed_headers(c.secret, c.message_id, c.body, sent_at, c.previous_secret)
        answer = transport.post(c.url, c.body.encode(), headers, allow_private=self.allow_private,
                                resolver=self.resolver, total_seconds=self.timeout, max_bytes=self.max_bytes,
                                ca_certs=self.ca_certs)
        try:
            with self.Session() as session, session.begin():
                return finish(session, c, answer, now=now or self.clock())
        except Exception:  # the lease runs out and another attempt follows: nothing is lost
            log.exception("webhooks: recording delivery %s failed", c.id)
            return "lost"


def _due(now: datetime):
    live = sa.select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True))
    return sa.and_(WebhookDelivery.endpoint_id.in_(live), sa.or_(
        sa.and_(WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now),
        sa.and_(WebhookDelivery.status == DeliveryStatus.SENDING, WebhookDelivery.lease_until < now)))


def claim(session, *, now: datetime, limit: int) -> list[Claimed]:
    """Lease up to `limit` due deliveries of enabled endpoints (oldest first) and commit."""
    lease = now + LEASE
    pick = sa.select(WebhookDelivery.id).where(_due(now)).order_by(WebhookDelivery.next_attempt_at,
                                                                    WebhookDelivery.id).limit(limit)
    # Asked every second by every worker, and nearly always nothing is due: look first with a plain read, which
    # on SQLite takes no lock (an UPDATE would take the write lock each time, even to change nothing).
    if session.scalar(pick.limit(1)) is None:
        session.commit()
        return []
    take = (sa.update(WebhookDelivery)
            .values(status=DeliveryStatus.SENDING, lease_until=lease, attempts=WebhookDelivery.attempts + 1)
            .returning(WebhookDelivery.id).execution_options(synchronize_session=False))
    if session.get_bind().dialect.name == "postgresql":
        chosen = list(session.scalars(pick.with_for_update(skip_locked=True)))
        ids = list(session.scalars(take.where(WebhookDelivery.id.in_(chosen), _due(now)))) if chosen else []
    else:  # one statement under SQLite's write lock: nothing changes between the pick and the lease
        ids = list(session.scalars(take.where(WebhookDelivery.id.in_(pick.scalar_subquery()))))
    rows = session.execute(
        sa.select(WebhookDelivery.id, WebhookDelivery.endpoint_id, WebhookEndpoint.url, WebhookEndpoint.secret,
                  sa.case((WebhookEndpoint.previous_secret_until > now, WebhookEndpoint.previous_secret))
                  .label("previous_secret"),
                  WebhookDelivery.message_id, WebhookDelivery.body, WebhookDelivery.attempts)
        .join(WebhookEndpoint).where(WebhookDelivery.id.in_(ids)).order_by(WebhookDelivery.id)).all() if ids else []
    session.commit()
    return [Claimed(r.id, r.endpoint_id, r.url, r.secret, r.previous_secret, r.message_id, r.body, r.attempts, lease)
            for r in rows]


def finish(session, c: Claimed, answer: transport.Answer, *, now: datetime) -> str:
    """Record an attempt and its consequences, if the delivery is still ours (the caller commits)."""
    # The endpoint row first, locked: its failure clock and state change with this outcome, and a delivery
    # sent beside one that disabled it must not wait for a retry that never comes.
    # (FOR NO KEY UPDATE on PostgreSQL: events inserted meanwhile for this endpoint need not wait for it.)
    endpoint = session.scalars(sa.select(WebhookEndpoint).where(WebhookEndpoint.id == c.endpoint_id)
                               .with_for_update(key_share=True)).one_or_none()
    ok = answer.status is not None and 200 <= answer.status < 300
    if ok:
        outcome, error = "delivered", None
    else:
        error = answer.error or f"The endpoint answered {answer.status}."
        again = not answer.refused and retryable(answer.status) and c.attempts < MAX_ATTEMPTS
        if again and (endpoint is None or not endpoint.enabled):
            again, error = False, f"{error} Not retried: the endpoint is disabled."
        outcome = "retry" if again else "failed"
    if answer.truncated:
        error = ((error + " ") if error else "") + "The answer was longer than WEBHOOKS_MAX_RESPONSE_BYTES: the " \
                                                   "rest was not read."
    attempt = WebhookAttempt(delivery_id=c.id, attempt=c.attempts, at=now, status_code=answer.status,
                             latency_ms=answer.latency_ms, error=(error or None) and error[:500],
                             response_excerpt=answer.excerpt, outcome=outcome)
    values: dict = {"lease_until": None, "last_status_code": answer.status, "last_error": error and error[:500]}
    if outcome == "retry":
        values |= {"status": DeliveryStatus.PENDING,
                   "next_attempt_at": now + timedelta(seconds=RETRY_DELAYS[c.attempts - 1])}
    else:
        values |= {"status": DeliveryStatus.DELIVERED if ok else DeliveryStatus.FAILED, "finished_at": now}
    mine = session.execute(sa.update(WebhookDelivery).where(
        WebhookDelivery.id == c.id, WebhookDelivery.status == DeliveryStatus.SENDING,
        WebhookDelivery.lease_until == c.lease).values(**values).execution_options(synchronize_session=False)).rowcount
    if not mine:  # another worker took it over (our lease ran out), or it was deleted with its endpoint
        if session.get(WebhookDelivery, c.id) is not None:
            session.add(attempt)  # what this attempt got is still worth the log
        log.warning("webhooks: lease on delivery %s lost; outcome %s of attempt %s not recorded",
                    c.id, outcome, c.attempts)
        return "lost"
    session.add(attempt)
    if endpoint is not None:
        if ok:
            endpoint.failing_since = None
        elif endpoint.failing_since is None:
            endpoint.failing_since = now
        elif endpoint.enabled and now - endpoint.failing_since >= DISABLE_AFTER:
            disable(session, endpoint, now=now, last_error=error or "")
    return outcome


def disable(session, endpoint: WebhookEndpoint, *, now: datetime, last_error: str) -> None:
    """Turn off an endpoint that has failed for a day: its waiting deliveries fail, the audit log and the
    console (a notice on /ops and on the webhooks page) tell the operators."""
    since = endpoint.failing_since
    endpoint.enabled = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = (f"Every delivery failed since {since:%Y-%m-%d %H:%M} UTC (a day or more); "
                                f"last: {last_error}")[:500]
    endpoint.updated_at = now
    session.execute(sa.update(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status == DeliveryStatus.PENDING).values(
        status=DeliveryStatus.FAILED, finished_at=now, last_error="Not sent: the endpoint was disabled.")
        .execution_options(synchronize_session=False))
    record(session, actor=WORKER, action="webhook.disable", entity_type="webhook", entity_id=endpoint.id,
           before={"enabled": True}, after={"enabled": False, "url": endpoint.url,
                                            "reason": endpoint.disabled_reason})
    log.warning("webhooks: endpoint %s (%s) disabled after a day of failures", endpoint.id, endpoint.url)


def deliver_due(*, now: datetime | None = None, **overrides) -> int:
    """Attempt every due delivery now, with the current app's settings (tests, `notifier run --once`)."""
    return Deliverer.from_config(current_app.config, db.engine, **overrides).run_once(now=now)
