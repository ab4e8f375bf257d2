"""The outbox: one row per message to one recipient on one channel, and the record of what happened to it;
and the recipient itself, the subscriber's contact record (Account)."""
import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db, str_enum, utcnow


class Channel(enum.StrEnum):
    SMS = "sms"
    EMAIL = "email"


class NotificationStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class Account(db.Model):
    """A subscriber, keyed by the operator's own account number: the recipient the notifier writes to
    (addresses, language, time zone, per-channel opt-outs). Incidents and recovery refer to it from above."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    phone: Mapped[str | None] = mapped_column(sa.String(20), index=True)  # E.164
    email: Mapped[str | None] = mapped_column(sa.String(254), index=True)  # normalised, lower case
    language: Mapped[str] = mapped_column(sa.String(16), default="en")
    time_zone: Mapped[str | None] = mapped_column(sa.String(64))
    sms_opt_out: Mapped[bool] = mapped_column(default=False)
    email_opt_out: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Notification(db.Model):
    """A message in the outbox. `dedupe_key` (cause + channel + recipient) is unique, so a retried request
    or a re-run import never queues the same message twice."""

    __tablename__ = "notifications"
    __table_args__ = (
        sa.Index("ix_notifications_due", "status", "next_attempt_at"),
        # The claim's order: per channel, queued rows by class, then round-robin position; next_attempt_at
        # last, so rows held for later are skipped from the index alone (notifications.priorities).
        sa.Index("ix_notifications_ready", "channel", "status", "priority", "fair_key", "next_attempt_at"),
        # "Sent in the last minute" per channel (/ops): a short range at the index's end, read from it alone.
        # Partial, like the provider's id below: a queued row has neither, so the million rows of a broadcast
        # are not written into these two indexes when queued, only once sent (bench/enqueue_update.py).
        sa.Index("ix_notifications_sent", "sent_at", "channel", sqlite_where=sa.text("sent_at IS NOT NULL"),
                 postgresql_where=sa.text("sent_at IS NOT NULL")),
        sa.Index("ix_notifications_provider_id", "provider_id", sqlite_where=sa.text("provider_id IS NOT NULL"),
                 postgresql_where=sa.text("provider_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, 8))
    recipient: Mapped[str] = mapped_column(sa.String(254))
    account_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    broadcast_id: Mapped[int | None] = mapped_column(sa.ForeignKey("broadcasts.id", ondelete="SET NULL"),
                                                     index=True)
    template: Mapped[str] = mapped_column(sa.String(64), default="")
    language: Mapped[str] = mapped_column(sa.String(16), default="en")
    # Personal fields for the template; with `template` set and `body` empty, the worker renders at send
    # time, which is what lets a broadcast to a million recipients be one INSERT ... SELECT.
    data: Mapped[dict | None] = mapped_column(sa.JSON)
    subject: Mapped[str] = mapped_column(sa.String(300), default="")
    body: Mapped[str | None] = mapped_column(sa.Text)
    html_body: Mapped[str | None] = mapped_column(sa.Text)
    segments: Mapped[int] = mapped_column(default=1)  # SMS parts, for pacing in segments per second
    urgent: Mapped[bool] = mapped_column(default=False)  # sent even during quiet hours
    # Priority class (notifications.priorities: 1 = codes ... 5 = offers) and the row's place in its class's
    # round-robin order.
    priority: Mapped[int] = mapped_column(sa.SmallInteger, default=3)
    fair_key: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    status: Mapped[NotificationStatus] = mapped_column(str_enum(NotificationStatus, 16),
                                                      default=NotificationStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider: Mapped[str | None] = mapped_column(sa.String(16))
    provider_id: Mapped[str | None] = mapped_column(sa.String(64))  # (indexed where set: ix_notifications_provider_id)
    error_code: Mapped[str | None] = mapped_column(sa.String(32))
    error_message: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NotificationEvent(db.Model):
    """One step in a message's life, for the record: the outcome of each attempt (sent, retried, failed,
    suppressed, held for quiet hours) and each delivery receipt, with the provider's answer. The message's
    creation is its created_at; the claim (queued -> sending) is not a step worth a row per attempt."""

    __tablename__ = "notification_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(sa.ForeignKey("notifications.id", ondelete="CASCADE"),
                                                 index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(sa.String(16))  # the NotificationStatus the message moved to
    source: Mapped[str] = mapped_column(sa.String(32))  # "worker", "receipt", "quiet_hours", "opt_out", ...
    error_code: Mapped[str | None] = mapped_column(sa.String(32))
    error_message: Mapped[str | None] = mapped_column(sa.String(500))
    # The provider's answer as it came (Twilio's message resource or error, SMTP's reply, a status callback's
    # fields), without the message's text or addresses: those live on the message, masked and erasable.
    payload: Mapped[dict | None] = mapped_column(sa.JSON)


class BroadcastStatus(enum.StrEnum):
    QUEUED = "queued"  # recipients are being written to the outbox
    SENDING = "sending"
    DONE = "done"  # every message reached a final status
    CANCELLED = "cancelled"


class BroadcastKind(enum.StrEnum):
    """What a broadcast is: an operator's message, an incident update or its resolution notice, an operator's
    test to themselves, or an offer send (stored as the plain value)."""

    BROADCAST = "broadcast"
    UPDATE = "update"
    RESOLUTION = "resolution"
    TEST = "test"
    OFFER = "offer"


def cause(topic: str, topic_id: int) -> str:
    """A broadcast's cause, what it is about: cause("incident", 5) == "incident:5" (the one place it is spelt)."""
    return f"{topic}:{topic_id}"


class Broadcast(db.Model):
    """One message sent by an operator to an audience on one or more channels.

    `cause` names what it is about (e.g. "incident:5", built by `cause`): the notifier does not know incidents."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    cause: Mapped[str] = mapped_column(sa.String(64), index=True)
    kind: Mapped[str] = mapped_column(sa.String(32), default=BroadcastKind.BROADCAST.value)  # a BroadcastKind
    message: Mapped[str] = mapped_column(sa.Text)
    subject: Mapped[str] = mapped_column(sa.String(300), default="")
    channels: Mapped[list] = mapped_column(sa.JSON)
    audience: Mapped[dict | None] = mapped_column(sa.JSON)
    urgent: Mapped[bool] = mapped_column(default=False)
    status: Mapped[BroadcastStatus] = mapped_column(str_enum(BroadcastStatus, 16), default=BroadcastStatus.QUEUED)
    recipients: Mapped[int] = mapped_column(default=0)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("operators.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(sa.String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StagedMessage(db.Model):
    """A message of a large send, written but not yet in the outbox (notifications.staging): narrow, with no
    index but its key, so queueing a million costs about what writing a million plain rows costs. The worker
    moves them into the outbox in batches, highest class first, within seconds.

    No foreign keys, on purpose (a check per row): the stage goes with its broadcast, and erasure moves a
    person's staged rows into the outbox before it blanks them."""

    __tablename__ = "staged_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    stage_id: Mapped[int] = mapped_column()
    channel: Mapped[str] = mapped_column(sa.String(8))
    account_id: Mapped[int | None] = mapped_column()
    # The affected account's id ({"aa": ref} for the template) or, for a subscriber without an account
    # (account_id NULL), the subscription's ({"sub": ref}).
    ref: Mapped[int] = mapped_column()
    recipient: Mapped[str] = mapped_column(sa.String(254))
    language: Mapped[str] = mapped_column(sa.String(16))
    fair_key: Mapped[int] = mapped_column(sa.BigInteger)


class MessageStage(db.Model):
    """One send's staged messages on one channel: what every row of it shares (template, class, due time, how
    its dedupe key is spelt) and how far the move has got (staged rows below `next_id` are in the outbox)."""

    __tablename__ = "message_stages"

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int | None] = mapped_column(sa.ForeignKey("broadcasts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(sa.String(8))
    template: Mapped[str] = mapped_column(sa.String(64))
    priority: Mapped[int] = mapped_column(sa.SmallInteger)
    urgent: Mapped[bool] = mapped_column(default=False)
    # A row's dedupe key: key_prefix, then its account id ("account") or ref ("ref"; "s" + ref for a
    # subscriber without an account), then key_suffix: the keys the send gives rows it writes straight in.
    key_prefix: Mapped[str] = mapped_column(sa.String(100))
    key_suffix: Mapped[str] = mapped_column(sa.String(100), default="")
    key_by: Mapped[str] = mapped_column(sa.String(8), default="account")
    next_id: Mapped[int] = mapped_column(sa.BigInteger)  # the staged rows' ids lie from here ...
    last_id: Mapped[int] = mapped_column(sa.BigInteger)  # ... to here (other stages' rows may be among them)
    remaining: Mapped[int] = mapped_column()  # staged rows not yet moved
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # the messages' creation
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # their first attempt, no earlier
    moved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # last batch: stages of a class take turns


class OptOut(db.Model):
    """An address that must not be messaged on a channel (STOP, Twilio 21610, one-click unsubscribe).

    Keyed by address, not account: a STOP binds the phone number, whoever it belongs to."""

    __tablename__ = "opt_outs"
    __table_args__ = (sa.UniqueConstraint("channel", "address", name="uq_opt_outs_channel_address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, 8))
    address: Mapped[str] = mapped_column(sa.String(254))
    source: Mapped[str] = mapped_column(sa.String(64))  # "sms:STOP", "twilio:21610", "email:one-click", "operator"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundMessage(db.Model):
    """An SMS a subscriber sent us, and what we answered."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[str] = mapped_column(sa.String(64), unique=True)  # Twilio MessageSid: replays are ignored
    from_number: Mapped[str] = mapped_column(sa.String(32), index=True)
    to_number: Mapped[str] = mapped_column(sa.String(32))
    body: Mapped[str] = mapped_column(sa.Text)
    keyword: Mapped[str] = mapped_column(sa.String(16))  # stop, start, help, status, other
    reply: Mapped[str] = mapped_column(sa.Text, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EarlyReceipt(db.Model):
    """A delivery receipt (status callback) that arrived before the worker saved the provider's id on its
    notification: Twilio can call back within milliseconds of accepting a message. Kept here until the
    worker records the id, which applies it (same no-regress rule as the webhook) and deletes it."""

    __tablename__ = "early_receipts"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    status: Mapped[str] = mapped_column(sa.String(16))  # the provider's status word: delivered, undelivered, ...
    error_code: Mapped[str | None] = mapped_column(sa.String(32))
    error_message: Mapped[str | None] = mapped_column(sa.String(500))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SendBudget(db.Model):
    """The provider's rate, shared by every worker process on every machine (notifications.budget): the
    theoretical time, in seconds on the database's clock, at which the next unit may leave (GCRA). A unit
    goes only once that time is (nearly) reached, and moves it forward; a worker that dies holds nothing."""

    __tablename__ = "send_budgets"

    key: Mapped[str] = mapped_column(sa.String(100), primary_key=True)  # "sms:<sender>", "email:<host>"
    tat: Mapped[float] = mapped_column(sa.Float)
    last_at: Mapped[float] = mapped_column(sa.Float)  # when a unit was last let go
    checked_at: Mapped[float] = mapped_column(sa.Float)  # when it was last asked
    granted: Mapped[int] = mapped_column(sa.SmallInteger)  # 1 if that ask was let go, 0 if told to wait


class NotifierWorker(db.Model):
    """One notifier worker process (or one `notifier run --once`): its sends by outcome and error code and its
    provider latencies since it started, written every few seconds by notifications.telemetry and summed by
    /metrics. The row RETIRED holds the counts of workers gone for a while (folded in by a scheduled task),
    so the sums never go down and the table stays small."""

    __tablename__ = "notifier_workers"

    RETIRED = "retired"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(255), default="")
    pid: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)  # last flush
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # set by the last flush of a clean stop
    counters: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # {"sends|sms|failed|30003": 2, ...}
