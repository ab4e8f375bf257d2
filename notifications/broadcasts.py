"""Broadcasts: one message to an audience, queued set-based (one INSERT ... SELECT per channel), and
their progress. The audience arrives as a SELECT of (aa_id, account_id) built by the domain that knows
it (accounts.audiences); the notifier adds addresses, languages, opt-outs and the dedupe key."""
import math
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from core.bulk import dialect_insert
from core.db import utcnow
from core.errors import NotFound, ValidationError
from notifications import priorities, staging, templates
from notifications.models import (Account, Broadcast, BroadcastKind, Channel, MessageStage, Notification,
                                  NotificationStatus, OptOut)
from notifications.providers import OPT_OUT_CODES, SUPPRESSED_CODE
from ops.audit import Actor, record

MESSAGE_MAX = 1600  # ten SMS parts of GSM-7
SUBJECT_MAX = 300
ANALYZE_ABOVE = 50_000  # rows queued at once after which PostgreSQL's statistics of the outbox are renewed
# Provider error codes that mean "never again to this address": retrying them is pointless.
# Codes of messages that were not sent because the recipient opted out: a retry leaves them be.
NOT_RETRIED_CODES = (*sorted(OPT_OUT_CODES), SUPPRESSED_CODE, "unsubscribed")
_ADDRESS = {Channel.SMS: (Account.phone, Account.sms_opt_out), Channel.EMAIL: (Account.email, Account.email_opt_out)}


def _dialect(executor) -> str:
    bind = executor if hasattr(executor, "dialect") else executor.get_bind()
    return bind.dialect.name


def _json_aa(dialect: str, aa_id):
    """{"aa": <affected account id>} built in SQL (the worker renders the personal fields from it)."""
    if dialect == "postgresql":
        return sa.cast(sa.func.json_build_object("aa", aa_id), Notification.data.type)
    return sa.func.json_object("aa", aa_id)


def insert_for(executor, recipients, *, channel: Channel, key, template: str, now: datetime,
               broadcast_id: int | None = None, urgent: bool = False, delay_seconds: int = 0,
               extra_where=None) -> int:
    """Queue one row per recipient on `channel` in ONE INSERT ... SELECT ... ON CONFLICT DO NOTHING.

    `recipients` is a select of (aa_id, account_id); `key(r)` builds the dedupe key from its columns.
    Skips opted-out accounts and addresses and accounts without an address on the channel;
    `extra_where(r)` may add a condition. The rows get their template's priority class and are numbered
    from the class's head, so they share the channel round-robin with what is already queued."""
    dialect = _dialect(executor)
    channel = Channel(channel)
    priority = priorities.of(template, urgent=urgent)
    start = priorities.head(executor, channel=channel.value, priority=priority)
    r = recipients.subquery("r")
    address, reachable = _reachable(channel)
    due = now + timedelta(seconds=delay_seconds)
    rows = (
        sa.select(key(r), sa.literal(channel.value), address, Account.id, sa.literal(broadcast_id, sa.Integer),
                  sa.literal(template), Account.language, _json_aa(dialect, r.c.aa_id), sa.literal(""),
                  sa.literal(1), sa.literal(urgent), sa.literal(NotificationStatus.QUEUED.value),
                  sa.literal(0), sa.literal(due, Notification.next_attempt_at.type),
                  sa.literal(now, Notification.created_at.type),
                  sa.literal(now, Notification.updated_at.type), sa.literal(int(priority)),
                  sa.literal(start - 1) + sa.func.row_number().over(order_by=r.c.account_id))
        .select_from(r).join(Account, Account.id == r.c.account_id).where(*reachable))
    if extra_where is not None:
        rows = rows.where(extra_where(r))
    cols = ["dedupe_key", "channel", "recipient", "account_id", "broadcast_id", "template", "language", "data",
            "subject", "segments", "urgent", "status", "attempts", "next_attempt_at", "created_at", "updated_at",
            "priority", "fair_key"]
    stmt = dialect_insert(executor)(Notification.__table__).from_select(cols, rows).on_conflict_do_nothing()
    if not isinstance(executor, sa.engine.Connection):
        executor = executor.connection()  # Core, not the ORM bulk path: its rowcount is exact on PostgreSQL
    n = executor.execute(stmt.execution_options(preserve_rowcount=True)).rowcount
    if dialect == "postgresql" and n >= ANALYZE_ABOVE:
        # Fresh statistics for the outbox, now rather than at autovacuum's next look: without them the
        # planner takes a fresh million rows for one, and each claim sorts them all instead of reading the
        # first few along ix_notifications_ready (400 ms instead of 0.1 ms a claim).
        executor.exec_driver_sql("ANALYZE notifications")
    return n


def _reachable(channel: Channel):
    """The account's address on `channel` and the conditions for writing to it there: it has one, and
    neither the account nor the address opted out."""
    address, flag = _ADDRESS[channel]
    return address, (address.is_not(None), address != "", flag.is_(False),
                     ~sa.exists().where(OptOut.channel == channel.value, OptOut.address == address))


def stage_for(executor, recipients, *, channel: Channel, template: str, now: datetime, key_prefix: str,
              key_suffix: str = "", key_by: str = "account", broadcast_id: int | None = None, urgent: bool = False,
              delay_seconds: int = 0, extra_where=None) -> int:
    """insert_for's rows, staged (notifications.staging): the message on `channel` for each of `recipients`
    (a select of (aa_id, account_id)) it can reach, numbered from the class's head, in one INSERT ... SELECT;
    each row's dedupe key will be key_prefix + its account id (key_by "account") or affected account id
    ("ref") + key_suffix. Returns how many; the caller settles (staging.settle)."""
    channel = Channel(channel)
    priority = priorities.of(template, urgent=urgent)
    start = priorities.head(executor, channel=channel.value, priority=priority)
    r = recipients.subquery("r")
    address, reachable = _reachable(channel)
    rows = (sa.select(sa.literal(channel.value), Account.id, r.c.aa_id, address, Account.language,
                      sa.literal(start - 1) + sa.func.row_number().over(order_by=r.c.account_id))
            .select_from(r).join(Account, Account.id == r.c.account_id).where(*reachable))
    if extra_where is not None:
        rows = rows.where(extra_where(r))
    return staging.stage(executor, rows, channel=channel.value, template=template, priority=priority, now=now,
                         key_prefix=key_prefix, key_suffix=key_suffix, key_by=key_by, urgent=urgent,
                         delay_seconds=delay_seconds, broadcast_id=broadcast_id)


def check_request(data: dict, *, channels_allowed=tuple(Channel)) -> dict:
    """Validate message, subject, channels and urgent of a broadcast request; returns clean values."""
    errors: dict = {}
    message = data.get("message")
    if not isinstance(message, str) or not message.strip():
        errors["message"] = "This field is required."
    elif len(message) > MESSAGE_MAX:
        errors["message"] = f"At most {MESSAGE_MAX} characters (got {len(message)})."
    elif problem := templates.check_text(message):
        errors["message"] = problem
    subject = data.get("subject") or ""
    if not isinstance(subject, str) or len(subject) > SUBJECT_MAX or "\n" in subject:
        errors["subject"] = f"One line of at most {SUBJECT_MAX} characters."
    channels = data.get("channels")
    values = [c.value for c in channels_allowed]
    if not isinstance(channels, list) or not channels or any(c not in values for c in channels) \
            or len(set(channels)) != len(channels):
        errors["channels"] = f"Choose one or more of: {', '.join(values)}, each once."
    if not isinstance(data.get("urgent", False), bool):
        errors["urgent"] = "Must be true or false."
    if errors:
        raise ValidationError("Please correct the highlighted fields.", errors)
    return {"message": message.strip(), "subject": subject.strip(), "channels": list(channels),
            "urgent": bool(data.get("urgent"))}


def create(session, *, actor: Actor, cause: str, kind: BroadcastKind, clean: dict, audience, recipients,
           settle: bool = True) -> Broadcast:
    """Record a broadcast and queue its messages (one INSERT ... SELECT per channel into the stage, moved into
    the outbox now if few: notifications.staging), with an audit entry. A caller that stages more audiences
    in the same broadcast passes `settle=False` and calls staging.settle itself afterwards."""
    now = utcnow()
    broadcast = Broadcast(cause=cause, kind=kind, message=clean["message"], subject=clean["subject"],
                          channels=clean["channels"], audience=audience, urgent=clean["urgent"],
                          created_by_id=actor.operator_id, created_by=actor.label, created_at=now)
    session.add(broadcast)
    session.flush()
    total = sum(stage_for(session, recipients, channel=Channel(channel), template="broadcast", now=now,
                          key_prefix=f"b{broadcast.id}:{channel}:", broadcast_id=broadcast.id, urgent=clean["urgent"])
                for channel in clean["channels"])
    broadcast.recipients = total
    record(session, actor=actor, action=f"broadcast.{kind}", entity_type="broadcast", entity_id=broadcast.id,
           after={"cause": cause, "channels": clean["channels"], "audience": audience, "urgent": clean["urgent"],
                  "recipients": total, "message": clean["message"]})
    if settle:
        staging.settle(session, total, MessageStage.broadcast_id == broadcast.id)
    return broadcast


def count_recipients(session, recipients, channels: list[str]) -> dict[str, int]:
    """How many messages each channel would queue (same exclusions as insert_for), for the preview."""
    r = recipients.subquery("r")
    out = {}
    for channel in channels:
        _address, reachable = _reachable(Channel(channel))
        out[channel] = session.scalar(
            sa.select(sa.func.count()).select_from(r).join(Account, Account.id == r.c.account_id)
            .where(*reachable)) or 0
    return out


def send_estimate(session, recipients: dict[str, sa.Select], sms_text: str | None) -> dict:
    """What a mass send would do, for its confirmation page: messages per channel (`recipients` is a select
    of (aa_id, account_id) per channel, with the same exclusions as insert_for), the SMS's parts and encoding
    (the cost class: GSM-7 packs 153 characters per part, UCS-2 only 67), the parts billed, and the time the
    SMS take at the configured rate shared by every worker."""
    counts = {channel: count_recipients(session, q, [channel])[channel] for channel, q in recipients.items()}
    segments, encoding = templates.sms_segments(sms_text) if sms_text else (1, "GSM-7")
    parts = counts.get("sms", 0) * segments
    rate = sms_rate()
    return {"counts": counts, "total": sum(counts.values()), "segments": segments, "encoding": encoding,
            "sms_parts": parts, "rate": rate, "seconds": math.ceil(parts / rate), "sms": sms_text}


def preview(message: str, *, language: str = "en", sample: dict | None = None) -> dict:
    """The SMS and email a sample recipient would get, and the SMS's parts and encoding."""
    context = {"name": "Ana", "link": f"{current_app.config['PUBLIC_BASE_URL']}/m/AbCdEfGhIjKlMnOp",
               **(sample or {})}
    context["message"] = templates.render_text(message, context)
    parts = templates.render_parts("broadcast", language, context)
    segments, encoding = templates.sms_segments(parts["sms"])
    return {**parts, "segments": segments, "encoding": encoding}


def test_send(session, *, actor: Actor, email: str, clean: dict, cause: str) -> Broadcast:
    """Send the message to the operator's own email only (kind "test")."""
    now = utcnow()
    broadcast = Broadcast(cause=cause, kind=BroadcastKind.TEST, message=clean["message"], subject=clean["subject"],
                          channels=["email"], audience={"operator": email}, urgent=False, recipients=1,
                          created_by_id=actor.operator_id, created_by=actor.label, created_at=now)
    session.add(broadcast)
    session.flush()
    priority = priorities.of("test")
    session.add(Notification(priority=int(priority),
                             fair_key=priorities.head(session, channel="email", priority=priority),
                             dedupe_key=f"b{broadcast.id}:email:op{actor.operator_id}", channel=Channel.EMAIL,
                             recipient=email, broadcast_id=broadcast.id, template="broadcast", language="en",
                             data={"name": email.split("@")[0]}, body=None, status=NotificationStatus.QUEUED,
                             next_attempt_at=now, created_at=now, updated_at=now))
    record(session, actor=actor, action="broadcast.test", entity_type="broadcast", entity_id=broadcast.id,
           after={"cause": cause, "to": email})
    return broadcast


def for_cause(session, cause: str, limit: int = 10) -> list[Broadcast]:
    """The latest broadcasts about `cause` (e.g. "incident:7"), newest first."""
    return list(session.scalars(sa.select(Broadcast).where(Broadcast.cause == cause)
                                .order_by(Broadcast.id.desc()).limit(limit)))


def get(session, broadcast_id: int) -> Broadcast:
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise NotFound(f"No broadcast with id {broadcast_id}.")
    return broadcast


def progress(session, broadcast_id: int) -> dict:
    """Counts by status, failures grouped by error code, rate (sent in the last minute) and ETA."""
    broadcast = get(session, broadcast_id)
    base = sa.select(sa.func.count()).select_from(Notification).where(Notification.broadcast_id == broadcast_id)
    by_status = dict(session.execute(
        sa.select(Notification.status, sa.func.count()).where(Notification.broadcast_id == broadcast_id)
        .group_by(Notification.status)).all())
    counts = {s.value: by_status.get(s, 0) for s in NotificationStatus}
    # Not yet moved into the outbox (notifications.staging): queued too.
    staged = staging.waiting(session, now=utcnow(), broadcast_id=broadcast_id)
    counts["queued"] += sum(n + held for n, held, _first in staged.values())
    # Every message that did not reach its recipient, explained: failed, undelivered, and suppressed (opted
    # out before or by the provider's 21610), grouped by status and error code.
    failures = [{"status": status.value, "code": code or "", "message": message or "", "count": n}
                for status, code, message, n in session.execute(
        sa.select(Notification.status, Notification.error_code, sa.func.max(Notification.error_message),
                  sa.func.count())
        .where(Notification.broadcast_id == broadcast_id, Notification.status.in_(
            (NotificationStatus.FAILED, NotificationStatus.UNDELIVERED, NotificationStatus.SUPPRESSED)))
        .group_by(Notification.status, Notification.error_code).order_by(sa.func.count().desc()))]
    now = utcnow()
    rate = session.scalar(base.where(Notification.sent_at >= now - timedelta(minutes=1))) or 0
    pending = counts["queued"] + counts["sending"]
    ahead = _ahead(session, broadcast_id, now) if pending else {}
    for (channel, _priority), (n, held, _first) in staged.items():  # behind what is in the outbox, roughly
        ahead[channel] = ahead.get(channel, 0) + n + held
    eta = max((int(n / channel_rate(session, channel, now)) for channel, n in ahead.items()), default=0)
    return {"broadcast": broadcast, "counts": counts, "total": sum(counts.values()), "failures": failures,
            "staged": sum(n + held for n, held, _first in staged.values()),
            "sent_last_minute": rate, "pending": pending, "eta_seconds": eta, "ahead": ahead}


def sms_rate() -> float:
    """SMS parts per second all workers together may send (SMS_RATE_PER_SECOND, default 10)."""
    return float(current_app.config.get("SMS_RATE_PER_SECOND") or 10)


def _ahead(session, broadcast_id: int, now: datetime) -> dict[str, int]:
    """Per channel: the messages that go before this broadcast's last waiting one (its own included): due
    rows of a higher class, and due rows of its class up to its last round-robin place
    (notifications.priorities). Rows held for quiet hours or a retry are not counted: they wait anyway."""
    out = {}
    last = session.execute(
        sa.select(Notification.channel, Notification.priority, sa.func.max(Notification.fair_key))
        .where(Notification.broadcast_id == broadcast_id, Notification.status.in_(
            (NotificationStatus.QUEUED, NotificationStatus.SENDING)))
        .group_by(Notification.channel, Notification.priority)).all()
    for channel, priority, key in last:
        n = session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
            Notification.channel == channel, Notification.status == NotificationStatus.QUEUED,
            Notification.next_attempt_at <= now,
            sa.or_(Notification.priority < priority,
                   sa.and_(Notification.priority == priority, Notification.fair_key <= key)))) or 0
        channel = Channel(channel).value
        out[channel] = max(out.get(channel, 0), n)
    return out


def channel_rate(session, channel: str, now: datetime) -> float:
    """Messages per second a channel sends: what all workers together sent in the last minute, or, when
    that is nothing yet, the provider limit they share (SMS_RATE_PER_SECOND / EMAIL_RATE_PER_SECOND)."""
    sent = session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.channel == channel, Notification.sent_at >= now - timedelta(minutes=1))) or 0
    if sent:
        return sent / 60
    key = "SMS_RATE_PER_SECOND" if channel == Channel.SMS.value else "EMAIL_RATE_PER_SECOND"
    return float(current_app.config.get(key) or 10)


def retry_failed(session, *, actor: Actor, broadcast_id: int) -> int:
    """Queue the broadcast's failed messages again, now (never those that failed because of an opt-out)."""
    get(session, broadcast_id)
    now = utcnow()
    n = session.execute(
        sa.update(Notification)
        .where(Notification.broadcast_id == broadcast_id, Notification.status == NotificationStatus.FAILED,
               sa.or_(Notification.error_code.is_(None), Notification.error_code.not_in(NOT_RETRIED_CODES)),
               ~sa.exists().where(OptOut.channel == Notification.channel, OptOut.address == Notification.recipient))
        # A text rendered at send time was stored masked (notifications.masking): it is rendered again.
        .values(status=NotificationStatus.QUEUED, next_attempt_at=now, lease_until=None, updated_at=now,
                body=sa.case((Notification.template != "", None), else_=Notification.body),
                html_body=sa.case((Notification.template != "", None), else_=Notification.html_body))
        .execution_options(synchronize_session=False)).rowcount
    record(session, actor=actor, action="broadcast.retry", entity_type="broadcast", entity_id=broadcast_id,
           after={"requeued": n})
    return n
