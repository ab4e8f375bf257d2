"""Large broadcasts are queued in two steps, so that posting an update to a million people takes about what
writing a million plain rows takes, not what writing a million outbox rows with all their indexes takes.

1. **Stage**, in the operator's request: one INSERT ... SELECT per channel and audience into
   `staged_messages`: narrow rows (recipient, language, round-robin place) with no index but the key, about
   a third of the outbox's cost per row (bench/enqueue_update.py). Everything that decides who gets what is
   done here, set-based: addresses, opt-outs, one message per person, the priority class and the fair order.
   A `message_stages` row per broadcast and channel tells the worker what is waiting.
2. **Move**, in the worker (its expander thread): staged rows go into the outbox in batches of `BATCH`, a
   stage of the highest class first (an urgent update is moved before a backlog's next batch), stages of one
   class in turn. Each batch is one INSERT ... SELECT and one DELETE in one transaction, so a crash moves a
   batch either wholly or not at all, and each batch locks its stage; the outbox's unique dedupe key would
   make a batch moved twice harmless anyway. The move runs at about the outbox's own write speed, hundreds
   of times faster than any provider sends.

A broadcast of at most BROADCAST_INLINE_MAX messages is moved at once, in the request (`settle`): the
operator's pages show the rows the moment the request returns, as before. Until a larger one is moved, its
staged rows count as queued in its progress and in the queue figures (`waiting`), and an erasure or an
unsubscribe moves the person's staged rows first (`move_matching`), then treats them as any queued message."""
from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from core.bulk import dialect_insert
from core.db import utcnow
from notifications.models import Broadcast, MessageStage, Notification, NotificationStatus, StagedMessage

BATCH = 5_000  # staged rows moved per transaction: tens of milliseconds of SQLite's write lock
INLINE_MAX = 20_000  # BROADCAST_INLINE_MAX's default
ANALYZE_EVERY = 200_000  # rows moved after which PostgreSQL's statistics of the outbox are renewed
COLUMNS = ["broadcast_id", "channel", "account_id", "ref", "recipient", "language", "fair_key"]
OUTBOX_COLUMNS = ["dedupe_key", "channel", "recipient", "account_id", "broadcast_id", "template", "language",
                  "data", "subject", "segments", "urgent", "status", "attempts", "next_attempt_at", "created_at",
                  "updated_at", "priority", "fair_key"]


def stage(session, rows: sa.Select, *, broadcast_id: int, channel: str, priority: int) -> int:
    """Write `rows` (a select of COLUMNS, in fair order) as staged messages of the broadcast on `channel`, in
    one INSERT ... SELECT; returns how many. Called once per audience (affected accounts, subscribers)."""
    top = sa.select(sa.func.max(StagedMessage.id))
    last = session.scalar(top) or 0
    stmt = sa.insert(StagedMessage.__table__).from_select(COLUMNS, rows)
    n = session.connection().execute(stmt.execution_options(preserve_rowcount=True)).rowcount
    if n <= 0:
        return 0
    # The stage's rows lie between the two (with other broadcasts' rows staged at the same time, if any): the
    # worker moves them by ranges of the key, which every planner reads along the index whatever its statistics.
    last_id = session.scalar(top)
    stage_row = session.get(MessageStage, (broadcast_id, channel))
    if stage_row is None:
        now = utcnow()
        session.add(MessageStage(broadcast_id=broadcast_id, channel=channel, priority=int(priority),
                                 next_id=last + 1, last_id=last_id, remaining=n, created_at=now, moved_at=now))
    else:  # a second audience of the same broadcast and channel, above the first
        stage_row.remaining += n
        stage_row.last_id = last_id
    session.flush()
    return n


def settle(session, broadcast: Broadcast) -> None:
    """After a broadcast is staged: at most BROADCAST_INLINE_MAX messages are moved into the outbox now."""
    if broadcast.recipients > int(current_app.config.get("BROADCAST_INLINE_MAX", INLINE_MAX)):
        return
    for stage_row in _stages(session, MessageStage.broadcast_id == broadcast.id):
        move(session, stage_row, limit=None)


def move(session, stage_row: MessageStage, *, limit: int | None = BATCH, where=None) -> int:
    """Move the stage's staged rows with the next `limit` ids (None: all) into the outbox, lowest first (their
    fair order); with `where` (erasure), only the rows matching it, of the whole stage. Drops the stage once
    none is left. Returns the rows moved (a range holding only other broadcasts' rows moves none)."""
    sm = StagedMessage
    low = stage_row.next_id
    high = stage_row.last_id if limit is None or where is not None else min(stage_row.last_id, low + limit - 1)
    cond = [sm.broadcast_id == stage_row.broadcast_id, sm.channel == stage_row.channel, sm.id.between(low, high)]
    if where is not None:
        cond.append(where)
    broadcast = session.get(Broadcast, stage_row.broadcast_id)
    now = utcnow()
    dialect = session.get_bind().dialect.name
    obj = sa.func.json_build_object if dialect == "postgresql" else sa.func.json_object
    subscriber = sm.account_id.is_(None)
    data = sa.case((subscriber, obj("sub", sm.ref)), else_=obj("aa", sm.ref))
    if dialect == "postgresql":
        data = sa.cast(data, Notification.data.type)
    # The keys broadcasts.create and accounts.subscriptions gave these rows when they went straight in.
    key = sa.literal(f"b{broadcast.id}:{stage_row.channel}:") + sa.case(
        (subscriber, sa.literal("s") + sa.cast(sm.ref, sa.String)), else_=sa.cast(sm.account_id, sa.String))
    due = sa.literal(broadcast.created_at, Notification.next_attempt_at.type)
    rows = (sa.select(key, sm.channel, sm.recipient, sm.account_id, sa.literal(broadcast.id, sa.Integer),
                      sa.literal("broadcast"), sm.language, data, sa.literal(""), sa.literal(1),
                      sa.literal(bool(broadcast.urgent)), sa.literal(NotificationStatus.QUEUED.value), sa.literal(0),
                      due, due, sa.literal(now, Notification.updated_at.type), sa.literal(stage_row.priority),
                      sm.fair_key)
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
    return list(session.scalars(sa.select(MessageStage).where(*where)
                                .order_by(MessageStage.broadcast_id, MessageStage.channel)))


def move_matching(session, where) -> int:
    """Move the staged rows matching `where` (a condition on StagedMessage), of every stage, into the outbox
    now: erasure and unsubscribing then find them there, as queued messages. Returns the rows moved."""
    return sum(move(session, stage_row, limit=None, where=where) for stage_row in _stages(session))


class Expander:
    """The worker's side: move staged rows into the outbox a batch at a time, the stage of the highest class
    first and stages of one class in turn. Several workers share the work: on PostgreSQL each batch locks its
    stage (SKIP LOCKED: another worker takes another stage); SQLite runs one writer at a time."""

    def __init__(self, session_factory, *, batch: int = BATCH):
        self.Session = session_factory
        self.batch = batch
        self.since_analyze = 0

    def step(self) -> int:
        """Move one batch of the stage next in turn and commit; returns the rows moved (0: none waiting)."""
        with self.Session() as session:
            # A plain read first: with nothing staged (the usual case), no write lock is taken on SQLite.
            if session.scalar(sa.select(MessageStage.broadcast_id).limit(1)) is None:
                session.commit()
                return 0
            stage_row = session.scalars(
                sa.select(MessageStage).order_by(MessageStage.priority, MessageStage.moved_at,
                                                 MessageStage.broadcast_id, MessageStage.channel)
                .limit(1).with_for_update(skip_locked=True)).first()
            if stage_row is None:
                session.commit()
                return 0
            moved = move(session, stage_row, limit=self.batch) or 1  # a range of others' rows: look again
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
        while n := self.step():
            total += n
        return total


def waiting(session, *, broadcast_id: int | None = None) -> dict[tuple[str, int], tuple[int, datetime]]:
    """(channel, class) -> (staged rows not yet in the outbox, when the oldest was queued): what the queue
    figures and a broadcast's progress add to the outbox's queued rows."""
    q = sa.select(MessageStage.channel, MessageStage.priority, sa.func.sum(MessageStage.remaining),
                  sa.func.min(MessageStage.created_at)).group_by(MessageStage.channel, MessageStage.priority)
    if broadcast_id is not None:
        q = q.where(MessageStage.broadcast_id == broadcast_id)
    return {(channel, int(priority)): (int(n or 0), first) for channel, priority, n, first in session.execute(q)}
