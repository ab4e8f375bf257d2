"""Delivery receipts: how a provider's status word moves a notification on (never back), and receipts that
arrive before the worker has saved the provider's id on its notification.

Twilio can POST the status callback within milliseconds of accepting a message, before the worker has
committed the message's sid. Such a receipt is kept as an EarlyReceipt; the worker applies it in the
transaction that records the sid (`apply_early`), and the webhook looks once more after storing it
(`settle`). Why one of the two always sees the other is explained at `_serialize`."""
import hashlib
import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from core.bulk import dialect_insert
from core.db import utcnow
from notifications import service
from notifications.models import Channel, EarlyReceipt, Notification, NotificationEvent, NotificationStatus

log = logging.getLogger("lifeboat.notifier")

# Twilio's status -> ours, and which of our statuses each may replace (anything else would be a regression:
# callbacks arrive out of order, and a late "sent" must not undo "delivered"). Other words (queued,
# accepted, sending, ...) change nothing.
_EARLY = (NotificationStatus.QUEUED, NotificationStatus.SENDING)
TRANSITIONS = {
    "sent": (NotificationStatus.SENT, _EARLY),
    "delivered": (NotificationStatus.DELIVERED, _EARLY + (NotificationStatus.SENT,)),
    "undelivered": (NotificationStatus.UNDELIVERED, _EARLY + (NotificationStatus.SENT,)),
    "failed": (NotificationStatus.FAILED, _EARLY + (NotificationStatus.SENT,)),
}
_FAILURES = (NotificationStatus.UNDELIVERED, NotificationStatus.FAILED)
_MAX_ID = EarlyReceipt.__table__.c.provider_id.type.length  # a longer id can match no notification
# First half of the PostgreSQL advisory lock key: "early receipts", so other advisory locks never collide.
_LOCK_CLASS = 0x4C42_5231  # "LBR1"


def describe(status: str, error_code: str | None = None) -> str | None:
    """The error text recorded for an undelivered or failed message; None for other statuses."""
    transition = TRANSITIONS.get(status)
    if transition is None or transition[0] not in _FAILURES:
        return None
    return f"Twilio reported {status}" + (f" (error {error_code})" if error_code else "")


def apply_status(session, *, provider_id: str, status: str, error_code: str | None = None,
                 error_message: str | None = None, at: datetime | None = None,
                 notification_id: int | None = None, payload: dict | None = None) -> bool:
    """Move the SMS notification with this provider id on to `status` (Twilio's word), unless that would be a
    regression; True when it moved, and then the move is in its status history with `payload` (the
    callback's fields). `at` is when the receipt arrived (delivered_at)."""
    transition = TRANSITIONS.get(status)
    if transition is None:
        return False
    new, allowed_from = transition
    now = utcnow()
    values = {"status": new, "updated_at": now}
    if new is NotificationStatus.DELIVERED:
        values["delivered_at"] = at or now
    if new in _FAILURES:
        values["error_code"] = error_code[:32] if error_code else None
        values["error_message"] = (error_message or describe(status, error_code))[:500]
    query = sa.update(Notification).where(Notification.provider_id == provider_id,
                                          Notification.channel == Channel.SMS,
                                          Notification.status.in_(allowed_from))
    if notification_id is not None:
        query = query.where(Notification.id == notification_id)
    # The allowed-from condition makes the regression check and the write one atomic statement.
    moved = session.execute(query.values(**values).returning(Notification.id)
                            .execution_options(synchronize_session=False)).scalars().all()
    if moved:
        session.execute(NotificationEvent.__table__.insert(), [
            {"notification_id": n, "at": now, "status": new.value, "source": "receipt",
             "error_code": values.get("error_code"), "error_message": values.get("error_message"),
             "payload": payload or {"MessageStatus": status, "ErrorCode": error_code}} for n in moved])
    if moved and new in _FAILURES:
        for message in session.scalars(sa.select(Notification).where(Notification.id.in_(moved))):
            service.tell_failed(session, message, status=new, error_code=values["error_code"],
                                error_message=values["error_message"])  # the message.failed webhook event
    return bool(moved)


def _replaceable(status: str) -> list[str]:
    """The status words an early receipt may hold for `status` to replace it: the same order as above."""
    allowed_from = TRANSITIONS[status][1]
    return [word for word, (ours, _) in TRANSITIONS.items() if ours in allowed_from]


def _serialize(session, provider_id: str) -> None:
    """Hold, until this transaction ends, a lock that `store_early` and `apply_early` both take for a sid.

    Why a receipt is never stranded. The worker, in one transaction, writes the sid on the notification and
    then looks for an early receipt (`apply_early`). The webhook, finding no notification for the sid,
    stores a receipt and commits, then looks for the notification once more in a new transaction (`settle`).
    Both write, then read. If the webhook's second look misses the sid, the worker had not committed when
    that look began, so it commits after the receipt was committed; its own look then sees the receipt,
    provided that look comes after the receipt's commit. On SQLite that holds by itself: one writer at a
    time, and the worker's transaction holds the write lock from writing the sid to its commit, so the
    receipt is committed either before it (the worker sees it) or after it (the webhook's second look sees
    the sid). PostgreSQL (read committed) lets both transactions write at once, and the worker reads before
    it commits: without this lock the worker could look just before the receipt's commit and the webhook
    look just before the worker's commit, and both miss. With it, storing and applying a receipt for one sid
    take turns: a worker that holds it commits the sid before the receipt is inserted (the webhook's second
    look finds the sid), and a worker that waits for it looks after the receipt is committed (each
    statement sees everything committed before it began)."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(provider_id.encode()).digest()[:4], "big", signed=True)
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_CLASS, key)))


def store_early(session, provider_id: str, status: str, error_code: str | None = None,
                error_message: str | None = None) -> bool:
    """Keep a receipt for a sid no notification has yet, or move the kept one on (never back); False when
    there is nothing worth keeping (a status that changes nothing, an id no notification can have)."""
    if status not in TRANSITIONS or not provider_id or len(provider_id) > _MAX_ID:
        return False
    _serialize(session, provider_id)
    message = error_message or describe(status, error_code)
    values = {"status": status, "error_code": error_code[:32] if error_code else None,
              "error_message": message[:500] if message else None, "received_at": utcnow()}
    # Two callbacks for one sid at once: the second insert does nothing (no unique-violation error, no 500)
    # and becomes the update below, which the first insert's commit makes visible to it.
    inserted = session.execute(dialect_insert(session)(EarlyReceipt.__table__).values(provider_id=provider_id, **values)
                               .on_conflict_do_nothing(index_elements=["provider_id"])
                               .returning(EarlyReceipt.id)).first()
    if inserted is None:
        session.execute(sa.update(EarlyReceipt).where(EarlyReceipt.provider_id == provider_id,
                                                      EarlyReceipt.status.in_(_replaceable(status)))
                        .values(**values).execution_options(synchronize_session=False))
    return True


def apply_early(session, notification_id: int, provider_id: str) -> bool:
    """Apply and delete the early receipt for `provider_id`, if any, to notification `notification_id` (same
    rules as the webhook); True when there was one. Called by the worker as it records the sid."""
    if not provider_id or len(provider_id) > _MAX_ID:
        return False
    _serialize(session, provider_id)
    # Delete first and apply what was deleted: a receipt moved on meanwhile is either deleted in its newest
    # form or stored anew (and found by the webhook's `settle`), never lost between a read and a delete.
    receipt = session.execute(sa.delete(EarlyReceipt).where(EarlyReceipt.provider_id == provider_id).returning(
        EarlyReceipt.status, EarlyReceipt.error_code, EarlyReceipt.error_message, EarlyReceipt.received_at)
        .execution_options(synchronize_session=False)).first()
    if receipt is None:
        return False
    apply_status(session, provider_id=provider_id, status=receipt.status, error_code=receipt.error_code,
                 error_message=receipt.error_message, at=receipt.received_at, notification_id=notification_id)
    log.info("early %s receipt for %s applied to notification %s", receipt.status, provider_id, notification_id)
    return True


def apply_early_many(session, sent: dict[str, int]) -> int:
    """`apply_early` for many sids at once ({sid: notification id}), as the worker's recorder writes a batch
    of outcomes: the sids' locks in one statement (in key order, so two batches cannot deadlock), their early
    receipts deleted in one statement, and each found applied. Returns how many were applied."""
    sent = {sid: n for sid, n in sent.items() if sid and len(sid) <= _MAX_ID}
    if not sent:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        keys = sorted({int.from_bytes(hashlib.sha256(sid.encode()).digest()[:4], "big", signed=True)
                       for sid in sent})
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:cls, k) FROM unnest(CAST(:keys AS integer[])) "
                                "WITH ORDINALITY AS u(k, i) ORDER BY i"), {"cls": _LOCK_CLASS, "keys": keys})
    early = EarlyReceipt.__table__  # Core: this runs for every batch the recorder writes
    found = session.execute(sa.delete(early).where(early.c.provider_id.in_(list(sent))).returning(
        early.c.provider_id, early.c.status, early.c.error_code, early.c.error_message,
        early.c.received_at)).all()
    for receipt in found:
        apply_status(session, provider_id=receipt.provider_id, status=receipt.status,
                     error_code=receipt.error_code, error_message=receipt.error_message, at=receipt.received_at,
                     notification_id=sent[receipt.provider_id])
        log.info("early %s receipt for %s applied to notification %s", receipt.status, receipt.provider_id,
                 sent[receipt.provider_id])
    return len(found)


def settle(session, provider_id: str) -> bool:
    """The webhook's second look, after committing an early receipt: if the notification now has this sid
    (the worker committed meanwhile), apply and delete the receipt. True when it was applied here."""
    notification_id = session.scalar(sa.select(Notification.id).where(
        Notification.provider_id == provider_id, Notification.channel == Channel.SMS))
    return notification_id is not None and apply_early(session, notification_id, provider_id)


def prune_unmatched(session, now: datetime) -> str:
    """Periodic task (core.periodic): delete early receipts that never matched a message (the worker applies
    and deletes a matching one within seconds), after EARLY_RECEIPT_RETENTION_DAYS (7)."""
    cutoff = now - timedelta(days=int(current_app.config.get("EARLY_RECEIPT_RETENTION_DAYS", 7)))
    n = session.execute(sa.delete(EarlyReceipt).where(EarlyReceipt.received_at < cutoff)
                        .execution_options(synchronize_session=False)).rowcount
    return f"{n} early receipts deleted"
