"""SQLite write transactions wait for the lock instead of failing with "database is locked" (core/db.py).

SQLite has one writer at a time. A transaction that read the main database and then writes to it cannot wait
for the lock: SQLite answers SQLITE_BUSY at once, or SQLITE_BUSY_SNAPSHOT when another connection committed
since the read, whatever the busy timeout. pysqlite began its implicit (deferred) transaction before the first
write, and where that first write went to a TEMP staging table while reading the main database (the recovery
import's checks, the offer issue's numbering, a recovery edit), the write to the main database that followed
failed whenever the notifier had written in between: issue 11, item 4. Transactions that write now begin
IMMEDIATE, so they wait for the lock before they read; reads still take no lock.

Here another connection (standing for the notifier) writes at the moment that used to break each of them. It
is told not to wait (timeout 0): it must find the lock taken, and the operator's transaction must succeed."""
import sqlite3
import threading

import pytest
import sqlalchemy as sa

from accounts import service as accounts_service
from accounts.imports import recovery_import
from accounts.models import ImportStatus, RecoveryStatus
from core.db import begin_deferred, db, utcnow
from offers import service as offers_service
from tests.accounts.factories import ACTOR, RECOVERY_HEADER, attach, make_incident, run_import
from tests.offers.helpers import incident_with, issue, make_program


@pytest.fixture(autouse=True)
def _sqlite_only(database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's locking; PostgreSQL locks rows")


class Notifier:
    """Another connection that writes the main database now, without waiting: True when it could."""

    def __init__(self):
        self.conn = sqlite3.connect(db.engine.url.database, timeout=0, isolation_level=None,
                                    check_same_thread=False)
        self.results: list[bool] = []

    def write(self) -> bool:
        try:
            self.conn.execute("INSERT INTO send_budgets (key, tat, last_at, checked_at, granted) VALUES ('probe', 0, 0, 0, 1) "
                              "ON CONFLICT (key) DO UPDATE SET tat = tat + 1")
            self.results.append(True)
        except sqlite3.OperationalError as e:
            assert "locked" in str(e)
            self.results.append(False)
        return self.results[-1]


@pytest.fixture
def notifier(app):
    n = Notifier()
    yield n
    n.conn.close()


def test_connections_begin_their_write_transactions_immediate(app):
    with db.engine.connect() as conn:
        assert conn.connection.dbapi_connection.isolation_level == "IMMEDIATE"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


def test_a_transaction_whose_first_write_is_a_temp_table_holds_the_lock_and_writes_the_main_database(app, notifier):
    with db.engine.connect() as conn:
        conn.exec_driver_sql("CREATE TEMP TABLE stage (n INTEGER)")
        conn.exec_driver_sql("INSERT INTO stage SELECT COUNT(*) FROM accounts")  # reads the main database
        assert not notifier.write()  # it waits for us (here: gives up at once) instead of changing our snapshot
        conn.exec_driver_sql("INSERT INTO send_budgets (key, tat, last_at, checked_at, granted) SELECT 'ours', n, 0, 0, 1 FROM stage")
        conn.commit()
    assert notifier.write()


def test_a_write_transaction_waits_for_another_writers_lock(app):
    """The other writer holds the lock for a moment when we begin: we wait for it (busy timeout), not fail."""
    holder = sqlite3.connect(db.engine.url.database, isolation_level=None, check_same_thread=False)
    holding, done = threading.Event(), threading.Event()

    def hold():
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO send_budgets (key, tat, last_at, checked_at, granted) VALUES ('held', 0, 0, 0, 1)")
        holding.set()
        done.wait(0.3)  # long enough that we start waiting while it holds the lock
        holder.execute("COMMIT")

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(10)
        with db.engine.connect() as conn:
            conn.exec_driver_sql("CREATE TEMP TABLE stage (n INTEGER)")
            conn.exec_driver_sql("INSERT INTO stage SELECT COUNT(*) FROM send_budgets")  # waits here
            conn.exec_driver_sql("INSERT INTO send_budgets (key, tat, last_at, checked_at, granted) SELECT 'ours', n, 0, 0, 1 "
                                 "FROM stage")
            conn.commit()
    finally:
        done.set()
        thread.join()
        holder.close()
    assert dict(db.session.execute(sa.text("SELECT key, tat FROM send_budgets")).all()) == {"held": 0, "ours": 1}


def test_reads_take_no_lock_while_another_connection_writes(app):
    """Public pages and the console's reads never wait for a writer (WAL), nor hold one up."""
    holder = sqlite3.connect(db.engine.url.database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO send_budgets (key, tat, last_at, checked_at, granted) VALUES ('held', 0, 0, 0, 1)")
    try:
        assert db.session.scalar(sa.text("SELECT COUNT(*) FROM send_budgets")) == 0  # the committed state
        db.session.commit()
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM accounts").scalar() == 0
    finally:
        holder.execute("COMMIT")
        holder.close()


def test_begin_deferred_stages_rows_without_taking_the_lock(app, notifier):
    """An import's first phase fills its temp table for as long as the file takes: others write meanwhile."""
    with db.engine.connect() as conn:
        conn.exec_driver_sql("CREATE TEMP TABLE stage (n INTEGER)")
        begin_deferred(conn)
        conn.exec_driver_sql("INSERT INTO stage VALUES (1)")
        assert notifier.write()
        conn.exec_driver_sql("INSERT INTO stage VALUES (2)")
        conn.commit()
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM stage").scalar() == 2


def test_select_for_update_takes_the_write_lock_on_sqlite_as_row_locks_do_on_postgresql(app, notifier):
    incident = make_incident()
    db.session.commit()
    from incidents.models import Incident

    db.session.scalar(sa.select(Incident).where(Incident.id == incident.id).with_for_update())
    assert not notifier.write()
    db.session.commit()
    assert notifier.write()


def test_the_isolation_level_comes_back_after_a_connection_ran_in_autocommit(app):
    engine = sa.create_engine(db.engine.url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            assert conn.connection.dbapi_connection.isolation_level is None
        with engine.connect() as conn:
            assert conn.connection.dbapi_connection.isolation_level == "IMMEDIATE"
    finally:
        engine.dispose()


def test_a_savepoint_nests_in_the_callers_transaction_instead_of_committing_on_its_own(app, notifier):
    """notifications.optouts.opt_out and incidents.service flush inside begin_nested(). A SAVEPOINT that started
    SQLite's transaction committed it at its RELEASE: the caller's rollback did not undo what it wrote."""
    from notifications.models import OptOut

    assert db.session.scalar(sa.select(sa.func.count()).select_from(OptOut)) == 0  # a read: no transaction yet
    with db.session.begin_nested():
        db.session.add(OptOut(channel="sms", address="+12065550100", source="test", created_at=utcnow()))
    assert not notifier.write()  # the caller's transaction holds the lock, from the savepoint on
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OptOut)) == 0


# ---- the operator's writes that failed while the notifier wrote --------------------------------------

def test_a_recovery_import_applies_although_the_notifier_writes_between_its_checks_and_its_apply(
        app, notifier, monkeypatch):
    incident = make_incident()
    attach(incident.id, "A1", "A2")
    checks = recovery_import.RecoveryImport.checks

    def checks_then_the_notifier_writes(self, ctx):
        errors = checks(self, ctx)
        notifier.write()
        return errors

    monkeypatch.setattr(recovery_import.RecoveryImport, "checks", checks_then_the_notifier_writes)
    job = run_import(incident.id, RECOVERY_HEADER + "A1,photos,lost,10,0,\nA2,photos,recovered,5,5,\n",
                     kind="recovery")
    assert job.status == ImportStatus.DONE, job.message
    assert notifier.results == [False]  # the import held the lock from its checks to its commit
    assert sorted(s.value for s in db.session.scalars(sa.select(RecoveryStatus.state))) == ["lost", "recovered"]


def test_a_recovery_edit_applies_although_the_notifier_writes_between_its_checks_and_its_apply(
        app, notifier, monkeypatch):
    incident = make_incident()
    attach(incident.id, "A1")
    db.session.commit()
    resolve = accounts_service.resolve_accounts

    def resolve_then_the_notifier_writes(*args, **kwargs):
        errors = resolve(*args, **kwargs)
        notifier.write()
        return errors

    monkeypatch.setattr(accounts_service, "resolve_accounts", resolve_then_the_notifier_writes)
    accounts_service.update_recovery(db.session, actor=ACTOR, incident_id=incident.id, account_number="A1",
                                     items=[{"category": "photos", "state": "lost"}])
    db.session.commit()
    assert notifier.results == [False]
    assert [s.value for s in db.session.scalars(sa.select(RecoveryStatus.state))] == ["lost"]


def test_an_offer_issue_applies_although_the_notifier_writes_while_it_numbers_the_accounts(
        app, notifier, monkeypatch):
    incident = incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}})
    program = make_program(incident.id)
    grant_staged = offers_service._grant_staged

    def the_notifier_writes_then_grant(*args, **kwargs):
        notifier.write()
        return grant_staged(*args, **kwargs)

    monkeypatch.setattr(offers_service, "_grant_staged", the_notifier_writes_then_grant)
    assert issue(program.id) == {"issued": 2, "not_issued": 0}
    assert notifier.results == [False]  # the issue held the lock from its first read of the program
