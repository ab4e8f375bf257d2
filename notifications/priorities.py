"""Which message goes first: the priority class of every message kind, named here and nowhere else, and the
fair order inside a class.

Classes are served strictly in order (a queued one-time code always goes before any offer). Inside a class,
messages share the channel round-robin by batch: each INSERT ... SELECT (a broadcast, an offer send, a
recovery apply) numbers its rows from the class's current head (`fair_key` = head, head + 1, ...), so a
10-message broadcast queued behind 2,000 older messages of its class interleaves with them one for one
instead of waiting for all of them. A single message (a code) takes the head itself and goes next.
The worker claims by (priority, fair_key) per channel (notifications.worker.claim)."""
import enum

import sqlalchemy as sa


class Priority(enum.IntEnum):
    """Lower goes first."""

    CODE = 1  # one-time codes and SMS replies: someone is waiting for it right now
    URGENT = 2  # urgent incident updates
    UPDATE = 3  # incident updates and operators' broadcasts
    RECOVERY = 4  # personal recovery notices
    OFFER = 5  # offers, reminders and withdrawals


LABELS = {Priority.CODE: "Codes and replies", Priority.URGENT: "Urgent updates", Priority.UPDATE: "Updates",
          Priority.RECOVERY: "Recovery notices", Priority.OFFER: "Offers and reminders"}

# Message kind (the template a row is rendered with, or the broadcast kind) -> class. Every kind the outbox
# accepts is listed; an unknown kind is a programming error, caught by `of`.
KINDS: dict[str, Priority] = {
    "verification_code": Priority.CODE,
    "reply": Priority.CODE,
    "test": Priority.CODE,  # an operator's test email to themselves, while they wait for it
    "subscription": Priority.CODE,  # a subscription's confirmation link: the visitor is waiting for it
    "subscription_code": Priority.CODE,  # the code that confirms an SMS subscription, typed on the page
    "subscription_welcome": Priority.UPDATE,  # "you are subscribed": after a code, or to each imported subscriber
    "broadcast": Priority.UPDATE,
    "update": Priority.UPDATE,
    "resolution": Priority.UPDATE,
    "recovery": Priority.RECOVERY,
    "offer": Priority.OFFER,
    "offer_reminder": Priority.OFFER,
    "offer_revoked": Priority.OFFER,
}


def of(kind: str, *, urgent: bool = False) -> Priority:
    """The class of a message kind; `urgent` lifts an update (not a code) to URGENT."""
    try:
        priority = KINDS[kind or "broadcast"]
    except KeyError:
        raise ValueError(f"unknown message kind {kind!r}: name its class in notifications.priorities.KINDS") \
            from None
    return Priority.URGENT if urgent and priority > Priority.URGENT else priority


def head(executor, *, channel: str, priority: int) -> int:
    """The fair_key at the head of a class on a channel: the lowest among its queued rows, or 0 when none.

    One index probe (ix_notifications_ready). New rows are numbered from here, so they interleave with
    what is already queued instead of lining up behind it."""
    from notifications.models import Notification, NotificationStatus

    # ORDER BY ... LIMIT 1 rather than min(): the index's first entry whatever the planner's statistics
    # (PostgreSQL, right after a bulk insert, estimated one row and read all of them for min()).
    return executor.scalar(
        sa.select(Notification.fair_key)
        .where(Notification.channel == channel, Notification.status == NotificationStatus.QUEUED,
               Notification.priority == int(priority))
        .order_by(Notification.fair_key).limit(1)) or 0


def case_sql(template_col, urgent_col):
    """SQL computing the class from a row's template and urgent flag (the migration's backfill)."""
    whens = [(template_col == kind, int(p)) for kind, p in KINDS.items()]
    base = sa.case(*whens, else_=int(Priority.UPDATE))
    return sa.case((sa.and_(urgent_col.is_(True), base > int(Priority.URGENT)), int(Priority.URGENT)), else_=base)
