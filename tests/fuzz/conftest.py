"""Fixtures of the fuzz stage.

`fuzz_app` is the suite's test app (the same settings as tests/conftest.py's `app`, on the database migrated
once per session: SQLite, or PostgreSQL from DATABASE_URL), made to behave like production for every request:
- an unhandled exception becomes the real 500 answer (TESTING would re-raise it into the test instead), and
  is recorded with its traceback in `fuzz_app.fuzz_errors`, so a failing property can show it;
- each request runs in its own app context, with its own database session that ends with the request,
  as under gunicorn (the suite's `app` fixture keeps one app context open, which requests would share,
  so one request's failed transaction would poison every later one and hide the next defect).

The app is built once per module and the tables are emptied with DELETE after each test (TRUNCATE, which
the suite uses, costs half a second a test on PostgreSQL; the fuzz stage has a time budget)."""
import contextvars
import logging
import traceback

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from flask import got_request_exception
from flask.logging import default_handler

from app import create_app
from core.db import db
from tests.fuzz.findings import Findings

FINDINGS = pytest.StashKey[Findings]()

# Subscribers and operators are rate-limited per IP; the fuzzers send far more than a person would, and
# must reach the code behind the limits, not only the 429.
UNLIMITED = dict(MY_CODE_REQUESTS_PER_IP=(10**6, 3600), MY_CODE_REQUESTS_PER_ACCOUNT=(10**6, 900),
                 MY_VERIFY_PER_IP=(10**6, 900), MY_LINK_FAILURES_PER_IP=(10**6, 3600),
                 MY_CODE_RESEND_SECONDS=0, MY_CODE_REQUESTS_GLOBAL=(10**6, 3600), PUBLIC_RENDER_CHECK_SECONDS=0,
                 SIGNIN_MAX_FAILURES_PER_ACCOUNT=10**6, SIGNIN_MAX_FAILURES_PER_IP=10**6)


class FreshContexts:
    """WSGI middleware: run every request in an empty contextvars context (no app context to reuse)."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        return contextvars.Context().run(self.wsgi_app, environ, start_response)


class _KeepLoggedExceptions(logging.Handler):
    def __init__(self, kept: list):
        super().__init__(logging.ERROR)
        self.kept = kept

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.kept.append("".join(traceback.format_exception(*record.exc_info)))


@pytest.fixture(scope="module")
def _fuzz_module_app(_migrated, tmp_path_factory):
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": _migrated,
        "TESTING": True,
        "PUBLIC_BASE_URL": "http://status.example.com",
        "SESSION_COOKIE_SECURE": False,
        "QUIET_HOURS": "",
        "PROPAGATE_EXCEPTIONS": False,
        **UNLIMITED,
    })
    app.instance_path = str(tmp_path_factory.mktemp("instance"))  # uploads and error CSVs stay out of instance/
    app.wsgi_app = FreshContexts(app.wsgi_app)
    app.fuzz_errors = []

    def record(sender, exception, **extra):
        app.fuzz_errors.append("".join(traceback.format_exception(exception)))

    got_request_exception.connect(record, app)
    # The tests report each distinct exception once, with its traceback; Flask's log of every occurrence
    # would bury that report. Logged exceptions (an import job's thread logs its crash) are kept instead,
    # in `fuzz_app.fuzz_logged`, for the tests to report.
    app.fuzz_logged = []
    keep = _KeepLoggedExceptions(app.fuzz_logged)
    app.logger.removeHandler(default_handler)
    app.logger.addHandler(keep)
    app.logger.propagate = False
    with pytest.MonkeyPatch.context() as mp:
        # Argon2 at its recommended cost takes 0.2 s a hash, and every sign-in attempt verifies one (the
        # unknown-account equaliser too): cheap parameters here, so the budget goes to fuzzing.
        import ops.auth
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        mp.setattr(ops.auth, "_hasher", cheap)
        mp.setattr(ops.auth, "_DUMMY_HASH", cheap.hash("lifeboat-timing-equaliser"))
        yield app
    app.logger.removeHandler(keep)
    app.logger.addHandler(default_handler)
    app.logger.propagate = True
    got_request_exception.disconnect(record, app)
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def fuzz_app(_fuzz_module_app):
    app = _fuzz_module_app
    config = dict(app.config)
    with app.app_context():
        app.fuzz_errors.clear()
        app.fuzz_logged.clear()
        yield app
        db.session.remove()
        _empty_tables()
    app.config.clear()
    app.config.update(config)


def _empty_tables() -> None:
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())
        if conn.dialect.name == "postgresql":  # ids from 1 again, as after the suite's TRUNCATE ... RESTART
            for (name,) in conn.execute(sa.text(
                    "SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = current_schema()")):
                conn.execute(sa.text(f'ALTER SEQUENCE "{name}" RESTART'))


@pytest.fixture
def findings(request) -> Findings:
    """The test's collected failures; the test fails at its end when there are any."""
    found = Findings()
    request.node.stash[FINDINGS] = found
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    found = item.stash.get(FINDINGS, None)
    if found:
        pytest.fail(found.report(), pytrace=False)
    return result
