"""The provider budget shared by every worker process: each let-go is spaced by the database's schedule,
whichever process asks, and a process that dies holds nothing."""
import time

import pytest
import sqlalchemy as sa

from core.db import db
from notifications.budget import SharedBudget
from notifications.models import SendBudget


class FakeTime:
    """wall, monotonic and sleep on one fake clock (SQLite's schedule runs on the caller's clock)."""

    def __init__(self, start=1_800_000_000.0):
        self.now = start
        self.slept = 0.0

    def wall(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.slept += seconds


def budgets(n, rate, clock=None, **kw):
    """n budgets for the same key, each with its own engine (as n worker processes would have)."""
    out = []
    for _ in range(n):
        engine = sa.create_engine(db.engine.url)
        extra = dict(wall=clock.wall, monotonic=clock.wall, sleep=clock.sleep) if clock else {}
        out.append(SharedBudget(engine, "sms:+15005550006", rate, **extra, **kw))
    return out


def let_go_times():
    db.session.rollback()
    return db.session.scalar(sa.select(SendBudget.last_at))


def test_two_processes_share_one_schedule(app):
    """Alternating between two processes, every let-go is a slot after the previous one on the database's
    clock, so at most `rate` go in any window of 1 + margin - early seconds, together."""
    rate = 20
    a, b = budgets(2, rate, margin=0.015)
    times = []
    for i in range(3 * rate):
        (a if i % 2 else b).acquire()
        times.append(let_go_times())
    gaps = [t2 - t1 for t1, t2 in zip(times, times[1:])]
    assert min(gaps) >= a.spacing - a.early - a.slack - 1e-6
    window = 1 + 0.015 - a.early - a.slack
    assert max(sum(1 for t in times if s <= t < s + window) for s in times) <= rate
    # Nothing is wasted: the 60 went out at the rate, not slower (the schedule starts at the first one).
    assert times[-1] - times[0] < 1.5 * (3 * rate - 1) * a.spacing


def test_the_schedule_is_exact_on_a_fake_clock_and_a_long_message_goes_alone(app):
    if db.engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL schedules on the server's clock, which a test cannot stop: the test above "
                    "checks its spacing")
    clock = FakeTime()
    (a, b) = budgets(2, 5, clock, margin=0.0, early=0.0)
    starts = []
    for i in range(10):
        (a if i % 2 else b).acquire()
        starts.append(clock.now)
    assert [round(t - starts[0], 6) for t in starts] == [round(0.2 * i, 6) for i in range(10)]
    a.acquire(7)  # 7 segments at 5/s: goes alone, and the next unit waits 7 slots
    t7 = clock.now
    b.acquire()
    assert round(clock.now - t7, 6) == round(7 * 0.2, 6)


def test_a_process_that_dies_leaves_nothing_held(app):
    """A process that took units and vanished only used its slots: the next process is told to wait at most
    one slot, not for anything the dead one held."""
    a, = budgets(1, 10, margin=0.0)
    for _ in range(3):
        a.acquire()
    a.engine.dispose()
    del a
    waits = []
    engine = sa.create_engine(db.engine.url)
    b = SharedBudget(engine, "sms:+15005550006", 10, margin=0.0,
                     sleep=lambda s: (waits.append(s), time.sleep(s)))
    b.acquire()
    assert sum(waits) <= b.spacing + 1e-3


def test_a_grant_on_postgresql_commits_without_waiting_for_the_disk(app):
    """A grant is let go when its commit returns; a commit that waits for the WAL flush returns 0-25 ms late
    at random, and two workers' let-goes then drift closer than granted. The budget's own transaction skips
    the flush, and only that transaction: the connection goes back to the pool as it came."""
    a, = budgets(1, 10, margin=0.0)
    statements = []
    sa.event.listen(a.engine, "before_cursor_execute",
                    lambda conn, cursor, statement, *args: statements.append(statement.strip().split()[0:3]))
    a.acquire()
    if db.engine.dialect.name != "postgresql":
        assert statements == [["INSERT", "INTO", "send_budgets"]]
        return
    assert statements == [["SET", "LOCAL", "synchronous_commit"], ["INSERT", "INTO", "send_budgets"]]
    with a.engine.connect() as conn:
        assert conn.scalar(sa.text("SHOW synchronous_commit")) == "on"
