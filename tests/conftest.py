"""Fixtures: an app on a freshly migrated database (SQLite file, or PostgreSQL from DATABASE_URL),
emptied after each test, plus small factories for operators and tokens."""
import os
import re

import flask
import pytest
import sqlalchemy as sa
from flask import request_started

from app import create_app
from core.db import db
from ops import service as ops_service
from ops.audit import Actor
from tests.peers.fixtures import smtp_server, smtp_server_auth, twilio_spec, twilio_standin  # noqa: F401

PASSWORD = "correct horse battery staple"


def _database_url(tmp_path_factory) -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgresql"):
        worker = os.environ.get("PYTEST_XDIST_WORKER")  # pytest -n N: each process empties tables after each
        return _own_database(url, worker) if worker else url  # test, so each needs a database of its own
    if os.environ.get("LIFEBOAT_REQUIRE_POSTGRES") == "1":
        raise RuntimeError("LIFEBOAT_REQUIRE_POSTGRES=1 but DATABASE_URL is not a PostgreSQL URL")
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


def _own_database(url: str, worker: str) -> str:
    """DATABASE_URL's database with the xdist worker's name appended ("lifeboat_ci_gw0"), created when
    missing; .ci/run drops them with its own."""
    base = sa.make_url(url)
    name = f"{base.database}_{worker}"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    return _database_url(tmp_path_factory)


@pytest.fixture(scope="session")
def _migrated(database_url):
    """Run the real migrations once per test session (tests then empty the tables after each test)."""
    from flask_migrate import downgrade, upgrade

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True})
    with app.app_context():
        if database_url.startswith("postgresql"):
            downgrade(revision="base")  # a database left by an interrupted run
        upgrade()
        db.engine.dispose()
    return database_url


@pytest.fixture
def app(_migrated, tmp_path):
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": _migrated,
        "TESTING": True,
        "PUBLIC_BASE_URL": "http://status.example.com",
        "SESSION_COOKIE_SECURE": False,
        "QUIET_HOURS": "",  # tests must not depend on the time of day; quiet-hours tests set their own window
        # Public pages ask the database for changes on every request, so a test sees its change at once;
        # tests/incidents/test_renders.py covers the production interval.
        "PUBLIC_RENDER_CHECK_SECONDS": 0,
        # Tests ask for several codes in a row; tests/accounts/test_nat_limits.py covers the resend cooldown.
        "MY_CODE_RESEND_SECONDS": 0,
    })
    app.instance_path = str(tmp_path / "instance")  # uploads and error CSVs stay out of the real instance/
    # Requests reuse the app context held open below, and with it `g`: start each request with an empty `g`
    # so Flask-Login's cached user and Flask-WTF's CSRF token never leak between requests or clients.
    request_started.connect(_fresh_g, app)
    with app.app_context():
        yield app
        db.session.remove()
        _empty_all_tables()
        db.engine.dispose()  # each test app has its own pool: close it, or PostgreSQL connections pile up


def _fresh_g(sender, **extra):
    for key in list(flask.g):
        flask.g.pop(key)


def _empty_all_tables():
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


# ---- factories ----------------------------------------------------------------------------------

def make_operator(role: str = "operator", email: str | None = None, password: str = PASSWORD):
    email = email or f"{role}@example.com"
    operator = ops_service.create_operator(db.session, actor=Actor.cli("test"), email=email, role=role,
                                           password=password)
    db.session.commit()
    return operator


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or \
        re.search(r'value="([^"]+)"[^>]*name="csrf_token"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(client, operator_or_email, password: str = PASSWORD):
    email = getattr(operator_or_email, "email", operator_or_email)
    page = client.get("/ops/sign-in")
    response = client.post("/ops/sign-in", data={"email": email, "password": password,
                                                 "csrf_token": csrf_from(page.get_data(as_text=True))})
    return response


def post_form(client, page_url: str, data: dict, action: str | None = None, **kwargs):
    """Open a form page like a browser, take its CSRF token, and submit `data` to it."""
    page = client.get(page_url)
    assert page.status_code == 200, page.status_code
    return client.post(action or page_url, data={**data, "csrf_token": csrf_from(page.get_data(as_text=True))},
                       **kwargs)


@pytest.fixture
def signed_in(client):
    """A client signed in as an operator (role operator); returns (client, operator)."""
    operator = make_operator("operator")
    assert sign_in(client, operator).status_code == 302
    return client, operator


@pytest.fixture
def api_token(app):
    """(operator, bearer secret) for the ops API, role operator."""
    operator = make_operator("operator", email="api@example.com")
    _token, secret = ops_service.create_token(db.session, actor=Actor.cli("test"), operator_id=operator.id)
    db.session.commit()
    return operator, secret


@pytest.fixture
def api(client, api_token):
    """An API client (tests/ops/api_client.py) with an operator's token: every answer, JSON or CSV, is checked
    against the OpenAPI document."""
    from tests.ops.api_client import CsvAwareClient

    return CsvAwareClient(client, api_token[1])


@pytest.fixture
def receiver():
    """A real HTTP server on loopback that records webhook requests (tests.peers.webhook_receiver); each
    request's `verify(secret)` checks its signature with the standardwebhooks library."""
    from tests.peers import webhook_receiver

    r = webhook_receiver.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def twilio_app(app):
    """The app with the Twilio stand-in's auth token, so its signed webhooks are accepted."""
    from tests.peers.twilio_standin import AUTH_TOKEN

    app.config["TWILIO_AUTH_TOKEN"] = AUTH_TOKEN
    return app
