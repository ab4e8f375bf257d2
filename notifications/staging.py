"""Large sends are queued in two steps, so that posting an update to a million people takes about what
writing a million plain rows takes, not what writing a million outbox rows with all their indexes takes.

1. **Stage**, in the request (or the import): one INSERT ... SELECT per channel and audience into
   `staged_messages`: narrow rows (recipient, language, round-robin place) with no index but the key, about
   a third of the outbox's cost per row (bench/enqueue_update.py). Everything that decides who gets what is
   done here, set-based: addresses, opt-outs, one message per person, the priority class and the fair order.
   A `message_stages` row per send and channel holds what its rows share (template, class, due time, how
   their dedupe keys are spelt) and tells the workers what is waiting.
2. **Move**, in the worker (its expander thread): staged rows go into the outbox in batches of `BATCH`, a
   stage of the highest class first (an urgent update is moved before a backlog's next batch), stages of one
   class in turn. Each batch is one INSERT ... SELECT and one DELETE in one transaction, so a crash moves a
   batch either wholly or not at all, and each batch locks its stage; the outbox's unique dedupe key would
   make a batch moved twice harmless anyway. The move runs at about the outbox's own write speed, hundreds
   of times faster than any provider sends.

Broadcasts (accounts.audiences, accounts.subscriptions), the personal recovery notices of an import
(accounts.audiences.enqueue_recovery) and imported subscribers' welcome messages are staged. A send of at most BROADCAST_INLINE_MAX messages is moved at
once, in the same transaction (`settle`): the pages show its rows the moment the request returns, as before.
Until a larger one is moved, its staged rows count as queued in its progress and in the queue figures
(`waiting`), and an erasure or an unsubscribe moves the person's staged rows first (`move_matching`), then
treats them as any queued message."""
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from core.bulk import dialect_insert
from core.db import utcnow
from notifications.models import MessageStage, Notification, NotificationStatus, StagedMessage

BATCH = 5_000  # staged rows moved per transaction: tens of milliseconds of SQLite's write lock
INLINE_MAX = 20_000  # BROADCAST_INLINE_MAX's default
ANALYZE_EVERY = 200_000  # rows moved after which PostgreSQL's statistics of the outbox are renewed
COLUMNS = ["channel", "account_id", "ref", "recipient", "language", "fair_key", "stage_id"]
OUTBOX_COLUMNS = ["dedupe_key", "channel", "recipient", "account_id", "broadcast_id", "template", "language",
                  "data", "subject", "segments", "urgent", "status", "attempts", "next_attempt_at", "created_at",
                  "updated_at", "priority", "fair_key"]


def _connection(executor) -> sa.engine.Connection:
    return executor if isinstance(executor, sa.engine.Connection) else executor.connection()


def stage(executor, rows: sa.Select, *, channel: str, template: str, priority: int, now: datetime,
          key_prefix: str, key_suffix: str = "", key_by: str = "account", urgent: bool = False,
          delay_seconds: int = 0, broadcast_id: int | None = None) -> int:
    """Write `rows` (a select of COLUMNS but the last, in fair order) as staged messages on `channel`, in one
    INSERT ... SELECT, under a stage that records what they share; returns how many. A broadcast has one stage
    per channel, which a second audience joins (affected accounts, then subscribers)."""
    conn = _connection(executor)
    t = MessageStage.__table__
    top = sa.select(sa.func.max(StagedMessage.id))
    last = conn.scalar(top) or 0
    stage_id = None if broadcast_id is None else conn.scalar(
        sa.select(t.c.id).where(t.c.broadcast_id == broadcast_id, t.c.channel == channel))
    new = stage_id is None
    if new:
        stage_id = conn.execute(sa.insert(t).values(
            broadcast_id=broadcast_id, channel=channel, template=template, priority=int(priority), urgent=urgent,
            key_prefix=key_prefix, key_suffix=key_suffix, key_by=key_by, next_id=last + 1, last_id=last,
            remaining=0, created_at=now, due_at=now + timedelta(seconds=delay_seconds), moved_at=now)
            .returning(t.c.id)).scalar_one()
    stmt = sa.insert(StagedMessage.__table__).from_select(COLUMNS, rows.add_columns(sa.literal(stage_id, sa.Integer)))
    n = conn.execute(stmt.execution_options(preserve_rowcount=True)).rowcount
    if n <= 0:
        if new:
            conn.execute(sa.delete(t).where(t.c.id == stage_id))
        return 0
    # The stage's rows lie between the two (with other stages' rows written at the same time, if any): the
    # worker moves them by ranges of the key, which every planner reads along the index whatever its statistics.
    conn.execute(sa.update(t).where(t.c.id == stage_id).values(remaining=t.c.remaining + n, last_id=conn.scalar(top)))
    return n


def settle(session, total: int, *where) -> None:
    """After a send is staged (`total` messages, its stages matching `where`): at most BROADCAST_INLINE_MAX
    are moved into the outbox now, in the same transaction."""
    if total > int(current_app.config.get("BROADCAST_INLINE_MAX", INLINE_MAX)):
        return
    for stage_row in _stages(session, *where):
        move(session, stage_row, limit=None)


def move(session, stage_row: MessageStage, *, limit: int | None = BATCH, where=None) -> int:
    """Move the stage's staged rows with the next `limit` ids (None: all) into the outbox, lowest first (their
    fair order); with `where` (erasure), only the rows matching it, of the whole stage. Drops the stage once
    none is left. Returns the rows moved (a range holding only other stages' rows moves none)."""
    sm = StagedMessage
    low = stage_row.next_id
    high = stage_row.last_id if limit is None or where is not None else min(stage_row.last_id, low + limit - 1)
    cond = [sm.stage_id == stage_row.id, sm.id.between(low, high)]
    if where is not None:
        cond.append(where)
    now = utcnow()
    dialect = session.get_bind().dialect.name
    obj = sa.func.json_build_object if dialect == "postgresql" else sa.func.json_object
    subscriber = sm.account_id.is_(None)
    data = sa.case((subscriber, obj("sub", sm.ref)), else_=obj("aa", sm.ref))
    if dialect == "postgresql":
        data = sa.cast(data, Notification.data.type)
    # The keys the send gives the rows it writes straight into the outbox.
    keyed = sm.ref if stage_row.key_by == "ref" else sm.account_id
    key = (sa.literal(stage_row.key_prefix)
           + sa.case((subscriber, sa.literal("s") + sa.cast(sm.ref, sa.String)), else_=sa.cast(keyed, sa.String))
           + sa.literal(stage_row.key_suffix))
    rows = (sa.select(key, sm.channel, sm.recipient, sm.account_id, sa.literal(stage_row.broadcast_id, sa.Integer),
                      sa.literal(stage_row.template), sm.language, data, sa.literal(""), sa.literal(1),
                      sa.literal(bool(stage_row.urgent)), sa.literal(NotificationStatus.QUEUED.value), sa.literal(0),
                      sa.literal(stage_row.due_at, Notification.next_attempt_at.type),
                      sa.literal(stage_row.created_at, Notification.created_at.type),
                      sa.literal(now, Notification.updated_at.type), sa.literal(stage_row.priority), sm.fair_key)
            .where(*cond).order_by(sm.id))
    insert = dialect_insert(session)(Notification.__table__).from_select(OUTBOX_COLUMNS, rows).on_conflict_do_nothing()
    conn = session.connection()
    conn.execute(insert)
    moved = conn.execute(sa.delete(sm).where(*cond).execution_options(preserve_rowcount=True)).rowcount
    stage_row.remaining = max(0, stage_row.remaining - moved)
    stage_row.moved_at = now
    if where is None:
        stage_row.next_id = high + 1
    if stage_row.remaining == 0 or stage_row.next_id > stage_row.last_id:
        _drop(session, stage_row)
    else:
        session.flush()
    return moved


def _drop(session, stage_row: MessageStage) -> None:
    session.delete(stage_row)
    session.flush()


def _stages(session, *where) -> list[MessageStage]:
    return list(session.scalars(sa.select(MessageStage).where(*where).order_by(MessageStage.id)))


def move_matching(session, where, *stages_where) -> int:
    """Move the staged rows matching `where` (a condition on StagedMessage), of every stage (or those
    matching `stages_where`), into the outbox now: erasure and unsubscribing then find them there, as queued
    messages. Returns the rows moved."""
    return sum(move(session, stage_row, limit=None, where=where) for stage_row in _stages(session, *stages_where))


def move_all(session, *stages_where) -> int:
    """Move every staged row of the stages matching `stages_where` into the outbox now (a send whose checks
    read the outbox, such as the recovery notices' coalescing, calls this first). Returns the rows moved."""
    return sum(move(session, stage_row, limit=None) for stage_row in _stages(session, *stages_where))


class Expander:
    """The worker's side: move staged rows into the outbox a batch at a time, the stage of the highest class
    first and stages of one class in turn. Several workers share the work: on PostgreSQL each batch locks its
    stage (SKIP LOCKED: another worker takes another stage); SQLite runs one writer at a time."""

    def __init__(self, session_factory, *, batch: int = BATCH):
        self.Session = session_factory
        self.batch = batch
        self.since_analyze = 0

    def step(self) -> int | None:
        """Move one batch of the stage next in turn and commit; returns the rows moved (0 when the batch's key
        range held only other stages' rows), None when nothing is waiting."""
        with self.Session() as session:
            # A plain read first: with nothing staged (the usual case), no write lock is taken on SQLite.
            if session.scalar(sa.select(MessageStage.id).limit(1)) is None:
                session.commit()
                return None
            stage_row = session.scalars(
                sa.select(MessageStage).order_by(MessageStage.priority, MessageStage.moved_at, MessageStage.id)
                .limit(1).with_for_update(skip_locked=True)).first()
            if stage_row is None:  # (PostgreSQL: every stage is being moved by another worker)
                session.commit()
                return None
            moved = move(session, stage_row, limit=self.batch)
            session.commit()
            self.since_analyze += moved
            if self.since_analyze >= ANALYZE_EVERY and session.get_bind().dialect.name == "postgresql":
                # The claim walks ix_notifications_ready only if the planner knows the outbox grew (see
                # broadcasts.ANALYZE_ABOVE); autovacuum would look within a minute, the move is faster.
                session.execute(sa.text("ANALYZE notifications"))
                session.commit()
                self.since_analyze = 0
            return moved

    def drain(self) -> int:
        """Move everything staged (`notifier run --once`, tests); returns the rows moved."""
        total = 0
        while (n := self.step()) is not None:
            total += n
        return total


def waiting(session, *, now: datetime, broadcast_id: int | None = None) -> dict[tuple[str, int], tuple]:
    """(channel, class) -> (staged rows due, staged rows due later, when the longest-waiting due one became
    due): what the queue figures and a broadcast's progress add to the outbox's queued rows. (Recovery notices
    wait a couple of minutes for edits to coalesce, as in the outbox.)"""
    due = MessageStage.due_at <= now
    q = (sa.select(MessageStage.channel, MessageStage.priority,
                   sa.func.sum(sa.case((due, MessageStage.remaining), else_=0)),
                   sa.func.sum(sa.case((due, 0), else_=MessageStage.remaining)),
                   sa.func.min(sa.case((due, MessageStage.due_at))))
         .group_by(MessageStage.channel, MessageStage.priority))
    if broadcast_id is not None:
        q = q.where(MessageStage.broadcast_id == broadcast_id)
    return {(channel, int(priority)): (int(n or 0), int(held or 0), first)
            for channel, priority, n, held, first in session.execute(q)}
