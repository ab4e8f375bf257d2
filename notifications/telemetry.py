"""What one notifier worker did, for /metrics: its sends by channel, outcome and error code, and the provider's
latency, counted in memory and written to the worker's row in `notifier_workers` every few seconds and when it
stops.

Every worker process, on any machine, has a row of its own holding its totals since it started; /metrics adds
the rows up (notifications.monitoring), so the figures are right with any number of workers, and every web
process answers the same. A flush writes the whole total, never an increment: a flush that fails (database
down) is simply made again later, and nothing is counted twice. A worker that dies loses at most the last few
seconds of counts. A scheduled task folds the rows of workers gone for an hour into one row (RETIRED), in one
transaction, so the sums never go down (Prometheus would read that as a restart) and the table stays small.

The worker's side is a few calls: `for_app` and `timed(providers)` when it is built, `finished` for each
message's result (and `lost` when writing it found the lease gone), `set_aside` for claimed rows that were
suppressed or held for quiet hours instead of sent, `start` and `close` around its run."""
import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

import sqlalchemy as sa

from core.bulk import dialect_insert
from core.db import utcnow
from notifications.models import NotificationStatus, NotifierWorker

log = logging.getLogger("lifeboat.notifier")

# Upper bounds of the provider latency histogram's buckets, in seconds (Twilio answers in 0.1-0.5 s, a reused
# SMTP connection in milliseconds; the providers' timeouts are 10 and 15 s).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
INF = "+Inf"
# Outcomes of one attempt, as /metrics labels them.
OUTCOMES = ("sent", "failed", "ambiguous", "suppressed", "retry", "requeued", "lost", "held")
# A worker's row is folded into RETIRED once it has not been written for this long (stopped or died).
RETIRE_AFTER = timedelta(hours=1)
RECENT = 10_000  # results remembered for `lost`: a result is written within seconds of being decided
SEP = "|"  # counter keys: "sends|sms|failed|30003", "latency|sms|0.25", "latency_sum|sms", "latency_count|sms"


def outcome_of(status, error_code: str | None) -> tuple[str, str]:
    """(outcome, error code) of a result the worker recorded: a row put back with an error code is a retry,
    without one it was given back unsent (requeued); "ambiguous" is the worker's code for a send that may
    have gone (notifications.worker.AMBIGUOUS)."""
    code = error_code or ""
    status = NotificationStatus(status)
    if status == NotificationStatus.SENT:
        return "sent", ""
    if status == NotificationStatus.FAILED:
        return ("ambiguous" if code == "ambiguous" else "failed"), code
    if status == NotificationStatus.QUEUED:
        return ("retry", code) if code else ("requeued", "")
    return status.value, code


def key(*parts) -> str:
    return SEP.join(str(p).replace(SEP, "/") for p in parts)


def bucket_of(seconds: float) -> str:
    return next((str(b) for b in BUCKETS if seconds <= b), INF)


def add(a: dict, b: dict, sign: int = 1) -> dict:
    """a + b (or a - b) over counter dicts; zero entries are left out."""
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + sign * v
        if not out[k]:
            del out[k]
    return out


class Telemetry:
    """One worker's counts. Thread-safe: the worker's sending threads call `finished`, `lost` and (through
    `timed` providers) `observe` side by side."""

    def __init__(self, engine, *, interval: float = 5.0):
        self.engine, self.interval = engine, max(0.1, float(interval))
        self.id = uuid.uuid4().hex
        self.host, self.pid, self.started_at = socket.gethostname()[:255], os.getpid(), utcnow()
        self._counts: dict[str, float] = {}
        self._recent: dict[int, str] = {}  # message id -> channel of the last RECENT results, for `lost`
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._written: dict | None = None  # what our row holds; None while we have no row
        self._handed_off: dict = {}  # counts folded into RETIRED while we could not write (see flush)
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    # ---- counting -------------------------------------------------------------------------------------

    def _add(self, values: dict) -> None:
        with self._lock:
            for k, v in values.items():
                self._counts[k] = self._counts.get(k, 0) + v

    def finished(self, message, values: dict) -> None:
        """Count the result the worker decided for `message` (it is written to the outbox next)."""
        outcome, code = outcome_of(values["status"], values.get("error_code"))
        channel = message.channel.value
        self._add({key("sends", channel, outcome, code): 1})
        with self._lock:
            self._recent[message.id] = channel
            if len(self._recent) > RECENT:
                del self._recent[next(iter(self._recent))]

    def set_aside(self, counts: dict) -> None:
        """Count the claimed rows that were not attempted: ({channel, "suppressed"}: n) to opted-out addresses,
        ({channel, "held"}: n) SMS put back until quiet hours end (each time it is put back)."""
        self._add({key("sends", channel, outcome, "opt_out" if outcome == "suppressed" else ""): n
                   for (channel, outcome), n in counts.items()})

    def lost(self, notification_id: int) -> None:
        """Count a result that could not be written because the lease had run out (another worker may send the
        message again). Counted besides the result itself; once per message however often the write is tried."""
        with self._lock:
            channel = self._recent.pop(notification_id, None)
        if channel is not None:
            self._add({key("sends", channel, "lost", ""): 1})

    def observe(self, channel: str, seconds: float) -> None:
        """One provider request's time, from the moment it left (after pacing) to the answer or the error."""
        self._add({key("latency", channel, bucket_of(seconds)): 1, key("latency_sum", channel): seconds,
                   key("latency_count", channel): 1})

    def counts(self) -> dict:
        with self._lock:
            return dict(self._counts)

    def timed(self, providers: dict) -> dict:
        """The providers, each timing its requests into this worker's latency histogram."""
        return {channel: TimedProvider(provider, channel, self) for channel, provider in providers.items()}

    # ---- writing the row ------------------------------------------------------------------------------

    def start(self, *, heartbeat: bool = True) -> None:
        """Write the row now and then every `interval` seconds until `close` (a long-running worker: its row
        says it is alive). Without heartbeat (`notifier run --once`), the row is written at `close` only."""
        if not heartbeat or self._thread is not None:
            return
        self.flush()
        self._thread = threading.Thread(target=self._beat, name="notifier-telemetry", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._closing.wait(self.interval):
            self.flush()

    def close(self) -> None:
        """Stop the heartbeat and write the final counts, marking the row stopped."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        if self._written is not None or self.counts():
            self.flush(stopping=True)

    def flush(self, *, stopping: bool = False) -> bool:
        """Write this worker's totals to its row (one short transaction); False when the database refused."""
        with self._flush_lock:
            counts, now, table = self.counts(), utcnow(), NotifierWorker.__table__
            handed_off = self._handed_off
            try:
                with self.engine.begin() as conn:
                    values = {"seen_at": now, "stopped_at": now if stopping else None,
                              "counters": add(counts, handed_off, -1)}
                    have_row = self._written is not None and conn.execute(
                        table.update().where(table.c.id == self.id).values(**values)).rowcount == 1
                    if self._written is not None and not have_row:
                        # The fold task took our row (we could not write for RETIRE_AFTER): what it held is
                        # counted in RETIRED now, so our row starts again from the rest.
                        handed_off = add(handed_off, self._written)
                        values["counters"] = add(counts, handed_off, -1)
                    if not have_row:  # an upsert: a first insert whose commit we never heard of is fine
                        insert = dialect_insert(conn)
                        conn.execute(insert(table).values(id=self.id, host=self.host, pid=self.pid,
                                                          started_at=self.started_at, **values)
                                     .on_conflict_do_update(index_elements=[table.c.id], set_=values))
            except sa.exc.SQLAlchemyError:
                if not self._failing:  # once per outage, not every few seconds
                    log.warning("notifier: writing telemetry failed; trying again in %g s", self.interval,
                                exc_info=True)
                self._failing = True
                return False
            self._handed_off, self._written, self._failing = handed_off, values["counters"], False
            return True


class TimedProvider:
    """A provider whose requests are timed: from the moment the request leaves (after the pace callback, for
    providers that pace their own requests) to the answer or the error. Everything else is the provider's."""

    def __init__(self, provider, channel: str, telemetry: Telemetry):
        self._provider, self._channel, self._telemetry = provider, channel, telemetry

    def __getattr__(self, name):
        return getattr(self._provider, name)

    def __repr__(self) -> str:
        return repr(self._provider)

    def send(self, message, pace=None):
        started = [None]
        if pace is None:
            started[0] = time.monotonic()
            call = lambda: self._provider.send(message)  # noqa: E731
        else:
            def timed_pace():
                pace()  # may raise NotSent: then nothing left, and nothing is timed
                started[0] = time.monotonic()

            call = lambda: self._provider.send(message, pace=timed_pace)  # noqa: E731
        try:
            return call()
        finally:
            if started[0] is not None:
                self._telemetry.observe(self._channel, time.monotonic() - started[0])


def for_app(app, engine) -> Telemetry:
    """A worker's Telemetry, flushed every NOTIFIER_TELEMETRY_SECONDS."""
    return Telemetry(engine, interval=float(app.config.get("NOTIFIER_TELEMETRY_SECONDS", 5)))


def fold_stale(session, now) -> str:
    """Scheduled task: move the counts of workers not heard from for RETIRE_AFTER into the RETIRED row and
    delete their rows, in the caller's transaction (the sums /metrics reports stay the same)."""
    table = NotifierWorker.__table__
    # The DELETE comes first: it takes the write lock (SQLite) and returns exactly the rows it removed, even
    # if a worker writes its row at the same moment (PostgreSQL re-checks seen_at after waiting for it).
    gone = session.execute(table.delete().where(table.c.seen_at < now - RETIRE_AFTER,
                                                table.c.id != NotifierWorker.RETIRED)
                           .returning(table.c.counters)).scalars().all()
    if not gone:
        return "no workers to fold"
    total: dict = {}
    for counters in gone:
        total = add(total, counters or {})
    # Make sure RETIRED exists, then lock it: two folds at once add up one after the other.
    insert = dialect_insert(session)
    session.execute(insert(table).values(id=NotifierWorker.RETIRED, host="", pid=0, started_at=now, seen_at=now,
                                         stopped_at=now, counters={})
                    .on_conflict_do_nothing(index_elements=[table.c.id]))
    retired = session.execute(sa.select(table.c.counters).where(table.c.id == NotifierWorker.RETIRED)
                              .with_for_update()).scalar_one()
    session.execute(table.update().where(table.c.id == NotifierWorker.RETIRED)
                    .values(counters=add(retired or {}, total), seen_at=now, stopped_at=now))
    return f"folded {len(gone)} worker(s)"
