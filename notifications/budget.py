"""One provider limit shared by every worker process on every machine: a GCRA held in the database.

The provider counts messages per second for the whole account (or per sender), whoever sends them, so the
budget lives where every worker can reach it: one row per channel and sender in `send_budgets`. The row
holds the theoretical arrival time `tat` on the database's clock. A unit is let go only when the clock has
reached `tat - early`; letting it go moves `tat` to max(tat, now) + cost, where the cost of one unit is
(1 + margin) / rate. So any two let-goes `rate` units apart are at least 1 + margin - early seconds apart:
at most `rate` units in any window of that length, counted at the moment each was let go, across all
processes. The margin covers what happens between that moment and the provider's arrival stamp (see
notifications.pacing); `early` lets a sender that wakes a little before its slot keep the schedule tight.

Each attempt is one upsert, on PostgreSQL with the server's clock (workers on several machines share it);
on SQLite, which is embedded and so on one machine, with this machine's clock. A worker that dies holds
nothing: the budget is a time, not a count of tokens, so nothing leaks. Inside one process, one thread at a
time talks to the budget, the others wait their turn in a local lock."""
import threading
import time

import sqlalchemy as sa

from notifications.models import SendBudget


class SharedBudget:
    """At most `rate` units per `1 + margin - early` seconds for `key`, across every process."""

    def __init__(self, engine, key: str, rate: float, *, margin: float = 0.015, early: float | None = None,
                 sleep=time.sleep, monotonic=time.monotonic, wall=time.time):
        if rate <= 0:
            raise ValueError("rate must be positive")
        if not 0 <= margin < 1:
            raise ValueError("margin must be at least 0 and under 1 second")
        self.engine, self.key, self.rate = engine, key[:100], rate
        self.spacing = (1.0 + margin) / rate
        # A third of the margin, and never more than a quarter of a slot: wake-up and round-trip time.
        self.early = min(margin / 3, self.spacing / 4) if early is None else early
        self.sleep, self.monotonic, self.wall = sleep, monotonic, wall
        self._gate = threading.Lock()
        self._next = 0.0  # local monotonic time of the next slot as last seen: sleep until then before asking
        postgres = engine.dialect.name == "postgresql"
        t = SendBudget.__table__
        if postgres:
            from sqlalchemy.dialects.postgresql import insert

            now = sa.select(sa.extract("epoch", sa.func.clock_timestamp()).label("n")).subquery()
            source = sa.select(sa.bindparam("key", type_=sa.String), now.c.n + sa.bindparam("cost", type_=sa.Float),
                               now.c.n, now.c.n, sa.literal(1))
            self._greatest = sa.func.greatest
        else:
            from sqlalchemy.dialects.sqlite import insert

            source = sa.select(sa.bindparam("key", type_=sa.String),
                               sa.bindparam("now", type_=sa.Float) + sa.bindparam("cost", type_=sa.Float),
                               sa.bindparam("now", type_=sa.Float), sa.bindparam("now", type_=sa.Float),
                               sa.literal(1))
            self._greatest = sa.func.max
        stmt = insert(t).from_select(["key", "tat", "last_at", "checked_at", "granted"], source)
        now_ = stmt.excluded.checked_at
        go = now_ >= t.c.tat - sa.bindparam("early", type_=sa.Float)
        self._stmt = stmt.on_conflict_do_update(index_elements=[t.c.key], set_={
            "tat": sa.case((go, self._greatest(t.c.tat, now_) + sa.bindparam("cost", type_=sa.Float)), else_=t.c.tat),
            "last_at": sa.case((go, now_), else_=t.c.last_at),
            "checked_at": now_,
            "granted": sa.case((go, 1), else_=0),
        }).returning(t.c.tat, t.c.granted, t.c.checked_at)
        self._postgres = postgres

    def try_take(self, units: int = 1) -> float:
        """Take `units` now if the schedule allows: returns 0, or the seconds to wait before asking again."""
        cost = max(1, int(units)) * self.spacing
        params = {"key": self.key, "cost": cost, "early": self.early}
        if not self._postgres:
            params["now"] = self.wall()
        with self.engine.begin() as conn:
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
