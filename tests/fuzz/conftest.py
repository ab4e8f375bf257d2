"""Fixtures of the fuzz stage.

`fuzz_app` is the suite's `app` (freshly migrated database, SQLite or PostgreSQL from DATABASE_URL) made to
behave like production for every request:
- an unhandled exception becomes the real 500 answer (TESTING would re-raise it into the test instead), and
  is recorded with its traceback in `fuzz_app.fuzz_errors`, so a failing property can show it;
- each request runs in its own app context, with its own database session that ends with the request,
  as under gunicorn (the suite's `app` fixture keeps one app context open, which requests would share,
  so one request's failed transaction would poison every later one and hide the next defect)."""
import contextvars
import logging
import traceback

import pytest
from flask import got_request_exception

from tests.fuzz.findings import Findings

FINDINGS = pytest.StashKey[Findings]()


class FreshContexts:
    """WSGI middleware: run every request in an empty contextvars context (no app context to reuse)."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        return contextvars.Context().run(self.wsgi_app, environ, start_response)


@pytest.fixture
def fuzz_app(app):
    from core.db import db

    app.config["PROPAGATE_EXCEPTIONS"] = False
    # Subscribers and operators are rate-limited per IP; the fuzzers send far more than a person would, and
    # must reach the code behind the limits, not only the 429.
    app.config.update(MY_CODE_REQUESTS_PER_IP=(10**6, 3600), MY_CODE_REQUESTS_PER_ACCOUNT=(10**6, 900),
                      MY_VERIFY_PER_IP=(10**6, 900), MY_LINK_FAILURES_PER_IP=(10**6, 3600),
                      SIGNIN_MAX_FAILURES_PER_ACCOUNT=10**6, SIGNIN_MAX_FAILURES_PER_IP=10**6)
    app.wsgi_app = FreshContexts(app.wsgi_app)
    app.fuzz_errors = []

    def record(sender, exception, **extra):
        app.fuzz_errors.append("".join(traceback.format_exception(exception)))

    got_request_exception.connect(record, app)
    # The tests report each distinct exception once, with its traceback; Flask's log of every occurrence
    # would bury that report.
    level = app.logger.level
    app.logger.setLevel(logging.CRITICAL)
    db.session.commit()  # the test's own session holds no transaction while requests run
    yield app
    app.logger.setLevel(level)
    got_request_exception.disconnect(record, app)


def last_error(app) -> str:
    """The traceback of the newest unhandled exception in a request (for assertion messages)."""
    return app.fuzz_errors[-1] if app.fuzz_errors else "(no exception recorded)"


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
