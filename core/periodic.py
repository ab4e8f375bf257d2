"""Periodic tasks (offer expiry and reminders, prunes, upload retention), run by the notifier worker's loop
or `flask periodic run`.

Each task has one row in periodic_runs. A due task is claimed with one conditional UPDATE (due, and no live
lease) that is committed before the task runs, so when several workers share a PostgreSQL database each
due run happens once: the second UPDATE finds the lease already set and changes no row. The task's work
and its outcome (last_result, next_run_at, lease cleared) commit together; a task that raises is rolled
back, logged and recorded in last_error, and the other tasks still run. A worker that dies mid-task leaves
its lease, and another worker runs the task once the lease runs out (tasks are idempotent).

Core knows no domain's tasks: each domain registers its own from its `init_app(app)` (`register(Task(...))`),
so this module never imports upward."""
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Sequence

import sqlalchemy as sa
from flask import current_app

from core import ratelimit
from core.bulk import dialect_insert
from core.db import db, utcnow
from core.periodic_models import PeriodicRun

log = logging.getLogger("lifeboat.periodic")

LEASE_SECONDS = 15 * 60  # longer than any task's run; PERIODIC_LEASE_SECONDS overrides
TEXT_MAX = 500  # the width of last_result / last_error


@dataclass(frozen=True)
class Task:
    """A periodic task: `function` takes (session, now), does not commit, and returns a short text for the
    status table."""

    name: str
    function: Callable
    every_seconds: int  # the default; PERIODIC_<NAME>_SECONDS in the config overrides it (0 turns it off)
    description: str

    @property
    def config_key(self) -> str:
        return "PERIODIC_" + self.name.upper().replace(".", "_") + "_SECONDS"

    def interval(self, config) -> int:
        """Seconds between runs (from the config, else the default); 0 means the task is off."""
        return max(0, int(_number(config, self.config_key, self.every_seconds)))


# The registry: filled by each domain's init_app, in layer order (that is also the order of a pass and of the
# status table). A list changed in place, so `periodic.TASKS` always shows what is registered.
TASKS: list[Task] = []


def register(task: Task) -> None:
    """Add a task, or replace the one of the same name (each app built in a process registers again)."""
    for i, known in enumerate(TASKS):
        if known.name == task.name:
            TASKS[i] = task
            return
    TASKS.append(task)


def _number(config, key: str, default: float) -> float:
    """A number from the config; a malformed value is logged and the default used (the worker carries on)."""
    try:
        return float(config.get(key, default))
    except (TypeError, ValueError):
        log.error("periodic tasks: %s=%r is not a number; using %s", key, config.get(key), default)
        return default


def find(name: str, tasks: Sequence[Task] = TASKS) -> Task | None:
    return next((t for t in tasks if t.name == name), None)


def _text(value) -> str:
    text = str(value if value is not None else "done")
    return text if len(text) <= TEXT_MAX else text[:TEXT_MAX - 1] + "…"


def _insert_missing(session, names: list[str], now: datetime) -> None:
    """Add rows for tasks that have none yet, due now; a row another worker adds meanwhile is kept."""
    session.execute(dialect_insert(session)(PeriodicRun).values([{"name": n, "next_run_at": now} for n in names])
                    .on_conflict_do_nothing(index_elements=["name"]))


def claim(session, name: str, *, now: datetime, lease_seconds: float) -> datetime | None:
    """Take the task `name` if it is due and not leased, and commit; returns our lease, or None when it
    is not due or another worker holds it."""
    lease = now + timedelta(seconds=lease_seconds)
    taken = session.execute(
        sa.update(PeriodicRun)
        .where(PeriodicRun.name == name, PeriodicRun.next_run_at <= now,
               sa.or_(PeriodicRun.lease_until.is_(None), PeriodicRun.lease_until < now))
        .values(lease_until=lease, last_started_at=now)
        .execution_options(synchronize_session=False)).rowcount
    session.commit()
    return lease if taken == 1 else None


def _finish(session, name: str, lease: datetime, *, next_run_at: datetime, finished_at: datetime,
            result: str | None, error: str | None) -> bool:
    """Record the outcome and clear the lease, only if the lease is still ours (the caller commits)."""
    done = session.execute(
        sa.update(PeriodicRun).where(PeriodicRun.name == name, PeriodicRun.lease_until == lease)
        .values(lease_until=None, next_run_at=next_run_at, last_finished_at=finished_at,
                last_result=result, last_error=error)
        .execution_options(synchronize_session=False)).rowcount
    return done == 1


# Called with (session, task name, result text) in the transaction that records a run: ops audits the runs
# that changed something, as the system.
_finished: list[Callable] = []


def on_finished(listener: Callable) -> None:
    if listener not in _finished:
        _finished.append(listener)


def _run_one(session, task: Task, *, now: datetime, interval: int, lease_seconds: float,
             clock: Callable[[], datetime]) -> str | None:
    """Claim and run one task; returns its result text (or "error: ..."), None if not ours to run."""
    lease = claim(session, task.name, now=now, lease_seconds=lease_seconds)
    if lease is None:
        return None
    next_run_at = now + timedelta(seconds=interval)
    try:
        result = _text(task.function(session, now))
        for listener in _finished:
            listener(session, task.name, result)
        # The work and its record commit together: a crash in between can only make the task run again.
        if not _finish(session, task.name, lease, next_run_at=next_run_at, finished_at=clock(), result=result,
                       error=None):
            log.warning("periodic task %s ran longer than its lease (%ss); another worker may run it too",
                        task.name, lease_seconds)
        session.commit()
    except Exception as e:  # noqa: BLE001  one broken task must not stop the others, nor the worker
        session.rollback()
        log.exception("periodic task %s failed", task.name)
        error = _text(f"{type(e).__name__}: {e}")
        if not _finish(session, task.name, lease, next_run_at=next_run_at, finished_at=clock(), result=None,
                       error=error):
            log.warning("periodic task %s: lease lost before its failure could be recorded", task.name)
        session.commit()
        return f"error: {error}"
    log.info("periodic task %s: %s", task.name, result)
    return result


def run_due(*, now: datetime | None = None, session=None, tasks: Sequence[Task] | None = None) -> dict[str, str]:
    """Run every registered task that is due, each once across all workers; returns {name: result} for the
    tasks this call ran ("error: ..." for a failure). Call it in an app context with no work pending in the
    session (it commits). It never raises for a task's failure; when nothing is due it costs one SELECT."""
    session = session if session is not None else db.session
    tasks = TASKS if tasks is None else tasks
    given = now is not None
    now = now or utcnow()
    clock = (lambda: now) if given else utcnow
    config = current_app.config
    lease_seconds = _number(config, "PERIODIC_LEASE_SECONDS", LEASE_SECONDS)
    try:
        rows = _schedule(session)
        missing = [t.name for t in tasks if t.name not in rows]
        if missing:
            _insert_missing(session, missing, now)
            session.commit()
            rows = _schedule(session)
        _pull_in(session, tasks, rows, now, config)
        session.commit()
    except Exception:  # noqa: BLE001  e.g. the database is away for a moment: the worker carries on
        session.rollback()
        log.exception("periodic tasks: could not read the schedule")
        return {}
    results = {}
    for task in tasks:
        interval, row = task.interval(config), rows.get(task.name)
        if not interval or row is None or row["next_run_at"] > now or (row["lease_until"] or now) > now:
            continue
        try:
            outcome = _run_one(session, task, now=now, interval=interval, lease_seconds=lease_seconds, clock=clock)
        except Exception:  # noqa: BLE001  the claim or the record failed (database trouble): try later
            session.rollback()
            log.exception("periodic task %s: could not be claimed or recorded", task.name)
            continue
        if outcome is not None:
            results[task.name] = outcome
    return results


def _schedule(session) -> dict[str, dict]:
    """{name: {"next_run_at", "lease_until"}} of every task row."""
    return {name: {"next_run_at": next_run_at, "lease_until": lease_until} for name, next_run_at, lease_until
            in session.execute(sa.select(PeriodicRun.name, PeriodicRun.next_run_at, PeriodicRun.lease_until))}


def _pull_in(session, tasks: Sequence[Task], rows: dict, now: datetime, config) -> None:
    """A next run further away than one interval (the interval was shortened, or a clock ran ahead) is
    brought back to now + interval, so a task can never be pushed out of reach."""
    for task in tasks:
        interval, row = task.interval(config), rows.get(task.name)
        if interval and row is not None and row["next_run_at"] > now + timedelta(seconds=interval):
            cap = now + timedelta(seconds=interval)
            session.execute(sa.update(PeriodicRun).where(PeriodicRun.name == task.name,
                                                         PeriodicRun.next_run_at > cap)
                            .values(next_run_at=cap).execution_options(synchronize_session=False))
            row["next_run_at"] = cap


def make_due(session, name: str, *, now: datetime | None = None, tasks: Sequence[Task] = TASKS) -> PeriodicRun:
    """Make a task due now, so the next pass of a worker runs it ("run now"); the caller commits.
    KeyError for an unknown task."""
    if find(name, tasks) is None:
        raise KeyError(name)
    now = now or utcnow()
    row = session.get(PeriodicRun, name)
    if row is None:
        row = PeriodicRun(name=name, next_run_at=now)
        session.add(row)
    else:
        row.next_run_at = min(row.next_run_at, now)
    session.flush()
    return row


def status(session, *, now: datetime | None = None, tasks: Sequence[Task] = TASKS) -> list[dict]:
    """Each registered task with its schedule and last outcome, for `flask periodic status` and /ops/tasks."""
    now = now or utcnow()
    config = current_app.config
    rows = {r.name: r for r in session.scalars(sa.select(PeriodicRun))}
    out = []
    for task in tasks:
        row = rows.get(task.name)
        out.append({
            "name": task.name, "description": task.description, "every_seconds": task.interval(config),
            "config_key": task.config_key,
            "next_run_at": row.next_run_at if row else None,
            "running": bool(row and row.lease_until and row.lease_until >= now),
            "lease_until": row.lease_until if row else None,
            "last_started_at": row.last_started_at if row else None,
            "last_finished_at": row.last_finished_at if row else None,
            "last_result": row.last_result if row else None,
            "last_error": row.last_error if row else None,
        })
    return out


def every(seconds: int) -> str:
    """'5 min', '1 h', 'off' — for the status table."""
    if not seconds:
        return "off"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


# ---- small prunes that have no domain module of their own ----------------------------------------

def prune_rate_limits(session, now: datetime) -> str:
    """Sign-in and link rate-limit hits older than a day (every limit's window is shorter)."""
    n = ratelimit.prune(session, older_than_seconds=int(current_app.config.get("RATELIMIT_KEEP_SECONDS", 86400)))
    return f"{n} rate-limit hits deleted"


def init_app(app) -> None:
    """Register core's own task (the other domains register theirs from their init_app)."""
    register(Task("ratelimit.prune", prune_rate_limits, 60 * 60,
                  "Forget sign-in and link rate-limit hits older than a day."))
