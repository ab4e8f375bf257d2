"""One provider limit shared by every worker process on every machine: a GCRA held in the database.

The provider counts messages per second for the whole account (or per sender), whoever sends them, so the
budget lives where every worker can reach it: one row per channel and sender in `send_budgets`. The row
holds the theoretical arrival time `tat` on the database's clock. A unit is let go only once the clock has
reached `tat - early`; letting it go moves `tat` to max(tat, now - slack) + cost, where the cost of one
unit is (1 + margin) / rate. Then any two let-goes `rate` units apart are at least
1 + margin - early - slack seconds apart: at most `rate` units in any window of that length, counted at
the moment each was let go, across all processes. `early` and `slack` are a fifth of the margin each: a
sender may ask a little before its slot (the time to reach the database), and may be a little late (a
wake-up delayed by a busy machine) without the schedule slipping. The rest covers what happens between
the let-go and the provider's arrival stamp (see notifications.pacing).

Each attempt is one upsert that reads the database's clock once it holds the budget's row (PostgreSQL: the
server's clock, which workers on several machines share; SQLite, embedded and so on one machine, once it
holds the write lock): a time read before waiting for another worker's ask would let a late ask go early.
A worker that dies holds nothing: the budget is a time, not a count of tokens, so nothing leaks. Inside one
process one thread at a time talks to the budget; the others wait their turn in a local lock.

A grant is let go when its commit returns, so the commit must take the same time for every ask. On
PostgreSQL a commit waits for the WAL to reach the disk, and that flush took anywhere from under a
millisecond to 25 ms here: two workers' let-goes drifted 24 ms closer than the database had granted them,
and 41 messages reached the provider in one second. The budget's transaction therefore commits without
waiting for the flush (`synchronous_commit` off for that transaction only). A server crash can lose the
last grants' `tat`; `tat` is never more than a slot ahead of the clock, and a restart takes longer than
that, so the lost value is in the past by the time anyone asks again. (SQLite in WAL mode with
`synchronous=NORMAL` does not flush on commit either.)"""
import threading
import time

import sqlalchemy as sa


class SharedBudget:
    """At most `rate` units per `1 + margin - early - slack` seconds for `key`, across every process."""

    def __init__(self, engine, key: str, rate: float, *, margin: float = 0.015, early: float | None = None,
                 sleep=time.sleep, monotonic=time.monotonic, wall=None):
        if rate <= 0:
            raise ValueError("rate must be positive")
        if not 0 <= margin < 1:
            raise ValueError("margin must be at least 0 and under 1 second")
        self.engine, self.key, self.rate = engine, key[:100], rate
        self.spacing = (1.0 + margin) / rate
        # A fifth of the margin each, and never more than a quarter of a slot: how early an ask may go (the
        # time to wake up and reach the database), and how late one may go without the schedule slipping
        # (a wake-up delayed by a busy machine). The remaining three fifths cover the trip to the provider,
        # which varies most when several workers share a machine.
        self.early = min(margin / 5, self.spacing / 4) if early is None else early
        self.slack = self.early
        self.sleep, self.monotonic, self.wall = sleep, monotonic, wall
        self._gate = threading.Lock()
        self._next = 0.0  # local monotonic time of the next slot as last seen: sleep until then before asking
        dialect = engine.dialect.name
        if wall is not None:  # tests: a clock they control
            now = ":now"
        elif dialect == "postgresql":
            now = "extract(epoch from clock_timestamp())::float8"
        else:  # SQLite: one machine; 'now' is fixed for the statement (millisecond resolution)
            now = "((julianday('now') - 2440587.5) * 86400.0)"
        go = "n.n >= b.tat - :early"
        if dialect == "postgresql":
            # The SET's sub-select runs after the row is locked, so `now` is read once this ask holds the
            # budget, not before it waited for another worker's ask.
            sql = f"""INSERT INTO send_budgets AS b (key, tat, last_at, checked_at, granted)
                SELECT :key, n.n + :cost, n.n, n.n, 1 FROM (SELECT {now} AS n) n
                ON CONFLICT (key) DO UPDATE SET (tat, last_at, checked_at, granted) = (
                    SELECT CASE WHEN {go} THEN greatest(b.tat, n.n - :slack) + :cost ELSE b.tat END,
                           CASE WHEN {go} THEN n.n ELSE b.last_at END, n.n, CASE WHEN {go} THEN 1 ELSE 0 END
                    FROM (SELECT {now} AS n) n)
                RETURNING tat, granted, checked_at"""
        else:
            # SQLite takes the database's write lock before it reads the time.
            go = go.replace("n.n", now).replace("b.tat", "tat")
            sql = f"""INSERT INTO send_budgets (key, tat, last_at, checked_at, granted)
                VALUES (:key, {now} + :cost, {now}, {now}, 1)
                ON CONFLICT (key) DO UPDATE SET
                    tat = CASE WHEN {go} THEN max(tat, {now} - :slack) + :cost ELSE tat END,
                    last_at = CASE WHEN {go} THEN {now} ELSE last_at END,
                    checked_at = {now},
                    granted = CASE WHEN {go} THEN 1 ELSE 0 END
                RETURNING tat, granted, checked_at"""
        self._stmt = sa.text(sql)
        # PostgreSQL: commit without waiting for the disk, for this transaction only (see the module's text)
        self._no_flush = sa.text("SET LOCAL synchronous_commit TO OFF") if dialect == "postgresql" else None

    def try_take(self, units: int = 1) -> float:
        """Take `units` now if the schedule allows: returns 0, or the seconds to wait before asking again."""
        cost = max(1, int(units)) * self.spacing
        params = {"key": self.key, "cost": cost, "early": self.early, "slack": self.slack}
        if self.wall is not None:
            params["now"] = self.wall()
        with self.engine.begin() as conn:
            if self._no_flush is not None:
                conn.execute(self._no_flush)
            tat, granted, checked_at = conn.execute(self._stmt, params).one()
        asked = self.monotonic()
        if granted:  # let go: the next slot is at tat
            self._next = asked + (tat - self.early - checked_at)
            return 0.0
        return max(tat - self.early - checked_at, 1e-4)

    def acquire(self, units: int = 1) -> None:
        """Block until `units` may go without exceeding the rate in any window, across all processes."""
        with self._gate:
            ahead = self._next - self.monotonic()
            if ahead > 0:
                self.sleep(ahead)
            while True:
                wait = self.try_take(units)
                if wait <= 0:
                    return
                self.sleep(wait)
