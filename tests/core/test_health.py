"""/healthz says the process answers, without the database; /readyz says the database answers and is migrated
to the head, and refuses (503, with the reason) when it is down, empty, behind or ahead."""
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from app import create_app
from core.db import db
from tests.conftest import make_operator, sign_in


def script():
    """Alembic's own view of our migrations directory."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).resolve().parents[2] / "migrations"))
    return ScriptDirectory.from_config(config)


HEAD = script().get_current_head()
BEFORE_HEAD = script().get_revision(HEAD).down_revision


def other_app(url: str):
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})


@pytest.fixture
def unreachable_url(database_url, tmp_path):
    """A database of the suite's kind that cannot be reached: a closed port, or a file in a missing folder."""
    if database_url.startswith("postgresql"):
        return "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
    return f"sqlite:///{tmp_path / 'missing' / 'folder' / 'lifeboat.db'}"


@pytest.fixture
def blank_url(database_url, tmp_path):
    """An empty database of the suite's kind, reachable, never migrated: a new SQLite file, or a new
    PostgreSQL schema first on the search path (so alembic_version and every table are looked up there)."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    schema = f"blank_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in database_url else "?"
    try:
        yield f"{database_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def set_revision(url: str, revision: str) -> None:
    """Write alembic's own bookkeeping table, as `flask db upgrade` leaves it at `revision`."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES (:r)"), {"r": revision})
    engine.dispose()


def probe(url: str, path: str):
    app = other_app(url)
    try:
        with app.test_client() as client:
            return client.get(path)
    finally:
        with app.app_context():
            db.engine.dispose()


def test_healthz_answers_ok_uncached_without_a_cookie(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "ok\n" and response.mimetype == "text/plain"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers


def test_healthz_answers_even_when_the_database_is_unreachable(unreachable_url):
    assert probe(unreachable_url, "/healthz").status_code == 200


def test_readyz_is_ready_on_the_migrated_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "ready" and body["reason"] == "ok"
    assert body["database_revision"] == body["code_revision"] == [HEAD]
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers


def test_readyz_is_503_when_the_database_is_unreachable(unreachable_url):
    response = probe(unreachable_url, "/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not ready" and body["reason"].startswith("database unreachable")
    assert "127.0.0.1" not in body["reason"] and "missing" not in body["reason"]  # no host or path leaks
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_is_503_on_a_database_never_migrated(blank_url):
    response = probe(blank_url, "/readyz")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "database not migrated: run flask db upgrade"
    assert response.get_json()["database_revision"] == []


def test_readyz_is_503_while_migrations_are_pending(blank_url):
    set_revision(blank_url, BEFORE_HEAD)
    response = probe(blank_url, "/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["reason"] == "database migrations pending: run flask db upgrade"
    assert body["database_revision"] == [BEFORE_HEAD] and body["code_revision"] == [HEAD]


def test_readyz_is_503_when_newer_code_migrated_the_database_further(blank_url):
    set_revision(blank_url, "0099_from_the_future")
    response = probe(blank_url, "/readyz")
    assert response.status_code == 503
    assert "does not know" in response.get_json()["reason"]


def test_probes_set_no_cookie_for_a_signed_in_browser_either(client):
    """A signed-in operator's session is permanent and would be refreshed on every answer; probes skip it."""
    assert sign_in(client, make_operator("viewer")).status_code == 302
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers, path
