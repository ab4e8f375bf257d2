"""Periodic tasks: each due run happens once across concurrent workers, failures are recorded and do not stop
the others, the built-in prunes and expiry run, and the CLI and the /ops/tasks page show where they stand."""
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core import periodic, periodic_cli
from ops import periodic_views
from core.db import db, utcnow
from core.periodic import Task
from core.periodic_models import PeriodicRun
from core.ratelimit import RateLimitCounter
from notifications.models import EarlyReceipt
from offers.models import GrantState, OfferGrant
from ops.models import AuditEntry
from tests.conftest import csrf_from, make_operator, sign_in
from tests.offers.helpers import incident_with, issue, make_program

# ---- tasks the tests register ---------------------------------------------------------------------------

calls: list[str] = []
broken = {"on": True}


def ok(session, now):
    calls.append("ok")
    return "all fine"


def boom(session, now):
    session.add(RateLimitCounter(bucket="written-by-the-failing-task", window_start=now, count=1))
    session.flush()
    if broken["on"]:
        raise RuntimeError("disk on fire")
    return "recovered"


def clash(session, now):
    """Work that only fails when it is written (a unique key twice), after the function has returned."""
    session.add_all([EarlyReceipt(provider_id="SMsame", status="sent", received_at=now),
                     EarlyReceipt(provider_id="SMsame", status="sent", received_at=now)])
    return "looked fine"


def slow(session, now):
    calls.append(threading.current_thread().name)
    time.sleep(0.3)  # long enough that the other caller tries to claim while this one holds the lease
    return "slow done"


def missing(session, now):
    """A task whose code cannot even be imported."""
    import no_such_module  # noqa: F401

    return "never"


OK = Task("test.ok", ok, 60, "Says fine.")
BOOM = Task("test.boom", boom, 60, "Fails.")
CLASH = Task("test.clash", clash, 60, "Fails when written.")
MISSING = Task("test.missing", missing, 60, "Cannot even be imported.")
SLOW = Task("test.slow", slow, 60, "Takes a while.")


@pytest.fixture(autouse=True)
def _fresh_state(app):
    calls.clear()
    broken["on"] = True
    # Until app.py wires them in (then these are already there).
    if "periodic_console" not in app.blueprints:
        app.register_blueprint(periodic_views.bp)
    if "periodic" not in app.cli.commands:
        periodic_cli.init_app(app)


def row(name: str) -> PeriodicRun:
    db.session.expire_all()
    return db.session.get(PeriodicRun, name)


# ---- the runner -----------------------------------------------------------------------------------------

def test_the_first_pass_creates_each_tasks_row_and_runs_them_all(app):
    now = utcnow()
    results = periodic.run_due(now=now)
    assert set(results) == {t.name for t in periodic.TASKS}
    assert results["offers.expire"] == "0 grants expired"
    assert not any(r.startswith("error") for r in results.values()), results
    expire = row("offers.expire")
    assert expire.next_run_at == now + timedelta(minutes=5) and expire.lease_until is None
    assert expire.last_started_at == now and expire.last_result == "0 grants expired" and expire.last_error is None
    assert row("offers.remind").next_run_at == now + timedelta(minutes=15)
    assert row("imports.prune").next_run_at == now + timedelta(hours=1)


def test_a_task_runs_again_only_once_its_interval_has_passed(app):
    now = utcnow()
    periodic.run_due(now=now)
    assert periodic.run_due(now=now) == {}
    assert periodic.run_due(now=now + timedelta(minutes=4)) == {}
    assert set(periodic.run_due(now=now + timedelta(minutes=5))) == {"offers.expire"}
    assert set(periodic.run_due(now=now + timedelta(minutes=15))) == {"offers.expire", "offers.remind"}


def test_a_failing_task_is_rolled_back_recorded_and_the_others_still_run(app, caplog):
    now = utcnow()
    results = periodic.run_due(now=now, tasks=[BOOM, OK])
    assert results == {"test.boom": "error: RuntimeError: disk on fire", "test.ok": "all fine"}
    assert calls == ["ok"]
    failed = row("test.boom")
    assert failed.last_error == "RuntimeError: disk on fire" and failed.last_result is None
    assert failed.lease_until is None and failed.next_run_at == now + timedelta(seconds=60)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RateLimitCounter)) == 0  # its work rolled back
    assert "periodic task test.boom failed" in caplog.text and "disk on fire" in caplog.text
    # Fixed by the next run: the error is cleared and the result recorded.
    broken["on"] = False
    assert periodic.run_due(now=now + timedelta(seconds=60), tasks=[BOOM, OK])["test.boom"] == "recovered"
    fixed = row("test.boom")
    assert fixed.last_error is None and fixed.last_result == "recovered"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RateLimitCounter)) == 1


def test_work_that_fails_when_written_or_a_task_that_cannot_load_is_recorded_too(app):
    now = utcnow()
    results = periodic.run_due(now=now, tasks=[CLASH, MISSING, OK])
    assert results["test.clash"].startswith("error: IntegrityError") and results["test.ok"] == "all fine"
    assert results["test.missing"] == "error: ModuleNotFoundError: No module named 'no_such_module'"
    assert row("test.clash").last_error.startswith("IntegrityError") and row("test.clash").lease_until is None
    assert row("test.missing").next_run_at == now + timedelta(seconds=60)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EarlyReceipt)) == 0


def test_two_workers_at_the_same_moment_run_each_due_task_once(app):
    now = utcnow()
    for round_ in range(3):
        at = now + timedelta(seconds=60 * round_)
        start, results, errors = threading.Barrier(2), [], []

        def worker():
            try:
                with app.app_context():
                    start.wait(timeout=10)
                    results.append(periodic.run_due(now=at, tasks=[SLOW]))
            except Exception as e:  # noqa: BLE001  reported by the assertion below
                errors.append(repr(e))

        threads = [threading.Thread(target=worker, name=f"worker-{i}") for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
        assert len(calls) == round_ + 1, calls  # one run per round, never two
        assert sorted(len(r) for r in results) == [0, 1], results
    assert row("test.slow").next_run_at == now + timedelta(seconds=180)


def test_only_one_of_two_simultaneous_claims_wins(app):
    now = utcnow()
    periodic.run_due(now=now - timedelta(seconds=60), tasks=[OK])  # the row exists and is due at `now`
    db.session.remove()
    start, leases = threading.Barrier(2), []

    def claimer():
        with app.app_context():
            start.wait(timeout=10)
            leases.append(periodic.claim(db.session, OK.name, now=now, lease_seconds=600))

    threads = [threading.Thread(target=claimer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(leases, key=lambda x: x is None) == [now + timedelta(seconds=600), None]


def test_a_live_lease_is_respected_and_an_expired_one_is_taken_over(app):
    now = utcnow()
    db.session.add(PeriodicRun(name=OK.name, next_run_at=now - timedelta(minutes=1),
                               lease_until=now + timedelta(minutes=5)))  # another worker is running it
    db.session.commit()
    assert periodic.run_due(now=now, tasks=[OK]) == {}
    # That worker died: once its lease runs out, the task runs here.
    later = now + timedelta(minutes=6)
    assert periodic.run_due(now=later, tasks=[OK]) == {"test.ok": "all fine"}
    assert row(OK.name).lease_until is None and row(OK.name).next_run_at == later + timedelta(seconds=60)


def test_intervals_come_from_the_config_and_zero_turns_a_task_off(app):
    now = utcnow()
    app.config["PERIODIC_TEST_OK_SECONDS"] = 0
    assert periodic.run_due(now=now, tasks=[OK]) == {}
    assert periodic.status(db.session, tasks=[OK])[0]["every_seconds"] == 0
    app.config["PERIODIC_TEST_OK_SECONDS"] = 10
    periodic.run_due(now=now, tasks=[OK])
    assert row(OK.name).next_run_at == now + timedelta(seconds=10)
    app.config["PERIODIC_TEST_OK_SECONDS"] = "soon"  # a typo in the environment: the default, not a crash
    assert periodic.run_due(now=now + timedelta(seconds=10), tasks=[OK]) == {"test.ok": "all fine"}
    assert row(OK.name).next_run_at == now + timedelta(seconds=70)


def test_a_shortened_interval_brings_a_far_next_run_back_within_reach(app):
    now = utcnow()
    db.session.add(PeriodicRun(name=OK.name, next_run_at=now + timedelta(days=30)))
    db.session.commit()
    periodic.run_due(now=now, tasks=[OK])
    assert row(OK.name).next_run_at == now + timedelta(seconds=60)
    assert periodic.run_due(now=now + timedelta(seconds=60), tasks=[OK]) == {"test.ok": "all fine"}


# ---- the built-in tasks ---------------------------------------------------------------------------------

def test_the_expiry_task_expires_offered_grants_past_their_validity(app):
    incident = incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}})
    program = make_program(incident.id, valid_until=utcnow() + timedelta(days=2))
    issue(program.id)
    assert periodic.run_due()["offers.expire"] == "0 grants expired"
    after = utcnow() + timedelta(days=3)
    assert periodic.run_due(now=after)["offers.expire"] == "2 grants expired"
    db.session.expire_all()
    assert set(db.session.scalars(sa.select(OfferGrant.state))) == {GrantState.EXPIRED}


def test_the_rate_limit_prune_forgets_hits_older_than_a_day(app):
    db.session.add_all([RateLimitCounter(bucket="signin:ip:1", window_start=utcnow() - timedelta(days=2), count=1),
                        RateLimitCounter(bucket="signin:ip:1", window_start=utcnow() - timedelta(hours=1), count=1)])
    db.session.commit()
    assert periodic.run_due()["ratelimit.prune"] == "1 rate-limit hits deleted"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RateLimitCounter)) == 1


def test_the_early_receipt_prune_deletes_receipts_older_than_seven_days(app):
    now = utcnow()
    db.session.add_all([EarlyReceipt(provider_id="SMold", status="delivered", received_at=now - timedelta(days=8)),
                        EarlyReceipt(provider_id="SMnew", status="delivered", received_at=now - timedelta(days=6))])
    db.session.commit()
    assert periodic.run_due(now=now)["receipts.prune"] == "1 early receipts deleted"
    assert list(db.session.scalars(sa.select(EarlyReceipt.provider_id))) == ["SMnew"]


# ---- CLI --------------------------------------------------------------------------------------------------

def test_periodic_run_once_runs_what_is_due_then_nothing(runner):
    first = runner.invoke(args=["periodic", "run", "--once"])
    assert first.exit_code == 0, first.output
    assert "offers.expire: 0 grants expired" in first.output and "imports.prune:" in first.output
    again = runner.invoke(args=["periodic", "run", "--once"])
    assert again.exit_code == 0 and "No task was due." in again.output


def test_periodic_run_refuses_a_bad_interval(runner):
    result = runner.invoke(args=["periodic", "run", "--interval", "0"])
    assert result.exit_code == 2 and "interval" in result.output.lower()


def test_periodic_status_shows_each_task_with_its_last_result_or_error(runner):
    before = runner.invoke(args=["periodic", "status"])
    assert before.exit_code == 0, before.output
    assert before.output.count("never ran") == len(periodic.TASKS)
    runner.invoke(args=["periodic", "run", "--once"])
    expire = row("offers.expire")
    expire.last_error, expire.last_result = "OperationalError: database is locked", None
    db.session.commit()
    after = runner.invoke(args=["periodic", "status"]).output
    lines = {line.split()[0]: line for line in after.splitlines()[1:]}
    assert "5 min" in lines["offers.expire"] and "ERROR OperationalError: database is locked" in lines["offers.expire"]
    assert "1 h" in lines["ratelimit.prune"] and "rate-limit hits deleted" in lines["ratelimit.prune"]


# ---- console --------------------------------------------------------------------------------------------

def test_the_tasks_page_is_for_admins(client):
    assert client.get("/ops/tasks").status_code == 302  # to sign-in
    sign_in(client, make_operator("operator"))
    assert client.get("/ops/tasks").status_code == 403


def test_an_admin_sees_the_tasks_and_run_now_makes_one_due_audited(client):
    now = utcnow()
    periodic.run_due(now=now)
    sign_in(client, make_operator("admin"))
    page = client.get("/ops/tasks")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "offers.remind" in html and "0 grants expired" in html
    response = client.post("/ops/tasks/offers.remind/run", data={"csrf_token": csrf_from(html)})
    assert response.status_code == 303
    assert row("offers.remind").next_run_at <= utcnow()
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "periodic.run_now"))
    assert entry.entity_id == "offers.remind" and entry.actor == "admin@example.com (web)"
    assert "will run at the worker" in client.get("/ops/tasks").get_data(as_text=True)
    assert set(periodic.run_due()) == {"offers.remind"}


def test_run_now_without_a_csrf_token_or_for_an_unknown_task_changes_nothing(client):
    now = utcnow()
    periodic.run_due(now=now)
    sign_in(client, make_operator("admin"))
    html = client.get("/ops/tasks").get_data(as_text=True)
    assert client.post("/ops/tasks/offers.remind/run").status_code == 400
    assert client.post("/ops/tasks/no.such/run", data={"csrf_token": csrf_from(html)}).status_code == 404
    assert row("offers.remind").next_run_at == now + timedelta(minutes=15)
    assert db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "periodic.run_now")) is None


def test_a_run_that_changed_something_is_in_the_audit_log_as_the_system_and_an_idle_one_is_not(app):
    import sqlalchemy as sa

    from ops.models import AuditEntry
    outcomes = iter(["0 things tidied", "3 things tidied, 0 left"])
    tasks = [periodic.Task("test.tidy", lambda session, now: next(outcomes), 60, "Tidy.")]
    now = utcnow()
    periodic.run_due(now=now, tasks=tasks)
    periodic.run_due(now=now + timedelta(minutes=1), tasks=tasks)
    entries = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "task.run")).all()
    assert [(e.actor, e.entity_id, e.after) for e in entries] == [
        ("system test.tidy", "test.tidy", {"result": "3 things tidied, 0 left"})]
