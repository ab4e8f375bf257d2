"""Public pages from stored renders (issue 10): rebuilt on change across processes, at the UTC day's turn, kept
when the database fails, and served compressed as the client accepts."""
import gzip
import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import brotli
import pytest
import sqlalchemy as sa

from app import create_app
from core.db import db
from core.renders import RenderStore
from incidents import service
from ops.audit import Actor

ACTOR = Actor.cli("test")
PUBLIC = ["/", "/history", "/history.atom", "/api/v2/summary.json", "/api/v2/status.json",
          "/api/v2/components.json", "/api/v2/incidents.json", "/api/v2/incidents/unresolved.json",
          "/api/v2/scheduled-maintenances.json", "/api/v2/scheduled-maintenances/upcoming.json",
          "/api/v2/scheduled-maintenances/active.json"]


def open_incident(name: str):
    incident = service.create_incident(db.session, actor=ACTOR, data={
        "name": name, "impact": "major", "message": "We are looking into it."})
    db.session.commit()
    return incident


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def other_process(database_url, tmp_path):
    """A second web process (its own app, engine and renders) on the same database."""
    other = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True, "QUIET_HOURS": "",
                        "PUBLIC_BASE_URL": "http://status.example.com"})
    other.instance_path = str(tmp_path / "other-instance")
    yield other
    with other.app_context():
        db.engine.dispose()


def test_every_public_path_is_served_from_a_stored_render_until_something_changes(client):
    for path in PUBLIC:
        first = client.get(path)
        assert first.status_code == 200 and first.headers["X-Render"] == "miss", path
        again = client.get(path)
        assert again.headers["X-Render"] == "hit" and again.data == first.data, path
    open_incident("Photos missing")
    for path in PUBLIC:
        assert client.get(path).headers["X-Render"] == "miss", path


def test_a_change_made_by_another_process_shows_on_every_public_path_within_the_check_interval(app, client,
                                                                                            other_process):
    clock = FakeClock()
    app.extensions["lifeboat_renders"] = RenderStore(app, clock=clock)  # the production interval: 1 s
    app.config["PUBLIC_RENDER_CHECK_SECONDS"] = 1
    app.extensions["lifeboat_renders"].check_seconds = 1
    for path in PUBLIC:
        assert b"Photos missing" not in client.get(path).data
    with other_process.app_context():  # an operator's change, committed by another web process
        open_incident("Photos missing")
        db.session.remove()
    clock.now += 0.5
    assert b"Photos missing" not in client.get("/").data  # not asked yet: at most a second old
    clock.now += 0.6
    for path in ["/", "/history.atom", "/api/v2/summary.json", "/api/v2/incidents/unresolved.json"]:
        assert b"Photos missing" in client.get(path).data, path


def test_a_change_through_a_bulk_statement_renews_the_renders_too(client):
    incident = open_incident("Photos missing")
    assert b"Photos missing" in client.get("/").data
    db.session.execute(sa.update(type(incident)).where(type(incident).id == incident.id).values(name="Photos back"))
    db.session.commit()
    assert b"Photos back" in client.get("/").data


def test_pages_with_day_bars_are_rebuilt_when_the_utc_day_turns(app, client):
    days = [date(2026, 11, 30)]
    app.extensions["lifeboat_renders"] = RenderStore(app, today=lambda: days[0])
    assert client.get("/").headers["X-Render"] == "miss"
    assert client.get("/").headers["X-Render"] == "hit"
    assert client.get("/api/v2/status.json").headers["X-Render"] == "miss"
    days[0] += timedelta(days=1)
    assert client.get("/").headers["X-Render"] == "miss"
    assert client.get("/history").headers["X-Render"] == "miss"
    assert client.get("/api/v2/status.json").headers["X-Render"] == "hit"  # no day bars: no day in its key


def test_unknown_incidents_are_404_and_never_stored_so_guessing_ids_cannot_push_real_pages_out(app, client):
    incident = open_incident("Photos missing")
    assert client.get(f"/incidents/{incident.id}").headers["X-Render"] == "miss"
    for guess in range(1000, 1000 + 1100):  # more guesses than a process keeps renders
        assert client.get(f"/incidents/{guess}").status_code == 404
    assert client.get("/incidents/1000").headers["X-Render"] == "miss"
    assert client.get(f"/incidents/{incident.id}").headers["X-Render"] == "hit"
    assert len(list(Path(app.instance_path, "renders").glob("*"))) == 1  # only the real page is kept on disk


# ---- compression and caching headers ---------------------------------------------------------------

@pytest.mark.parametrize("accept,encoding", [("br", "br"), ("gzip, deflate, br", "br"), ("gzip", "gzip"),
                                             ("br;q=0.5, gzip", "gzip"), ("identity", None), ("", None),
                                             ("br;q=0, gzip;q=0", None), ("*", "br")])
def test_public_answers_are_compressed_as_the_client_accepts(client, accept, encoding):
    open_incident("Photos missing")
    plain = client.get("/", headers={"Accept-Encoding": "identity"}).data
    for path in ("/", "/api/v2/summary.json"):
        response = client.get(path, headers={"Accept-Encoding": accept})
        assert response.headers.get("Content-Encoding") == encoding, (path, accept)
        assert "Accept-Encoding" in response.headers["Vary"]
        body = {"br": brotli.decompress, "gzip": gzip.decompress}.get(encoding, lambda b: b)(response.data)
        if path == "/":
            assert body == plain
    assert len(brotli.compress(plain)) < len(plain) / 3


def test_public_answers_tell_a_cdn_to_serve_stale_while_revalidating_and_on_error(client):
    for path in ("/", "/api/v2/summary.json", "/history.atom"):
        cache_control = client.get(path).headers["Cache-Control"]
        for part in ("public", "max-age=30", "stale-while-revalidate=60", "stale-if-error=86400"):
            assert part in cache_control, (path, cache_control)


def test_each_encoding_has_its_own_etag_and_answers_304_when_fresh(client):
    plain = client.get("/")
    zipped = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert plain.headers["ETag"] != zipped.headers["ETag"]
    again = client.get("/", headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    since = client.get("/", headers={"If-Modified-Since": plain.headers["Last-Modified"]})
    assert since.status_code == 304


def test_console_pages_are_compressed_on_the_fly(client):
    from tests.conftest import make_operator, sign_in

    make_operator("viewer")
    sign_in(client, "viewer@example.com")
    response = client.get("/ops/incidents", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200 and response.headers["Content-Encoding"] == "gzip"
    assert b"Incidents" in gzip.decompress(response.data)


def test_a_shared_page_never_carries_a_visitors_flash_message(app, client):
    with client.session_transaction() as session:
        session["_flashes"] = [("info", "Private note for one visitor")]
    assert b"Private note" not in client.get("/").data
    assert b"Private note" not in app.test_client().get("/").data


# ---- when the database fails ------------------------------------------------------------------------

@pytest.fixture
def breakable(tmp_path, database_url):
    """An app on a database of its own that the test can take away: (app, break_it)."""
    if database_url.startswith("postgresql"):
        name = f"lb_break_{os.getpid()}"
        admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        url = database_url.rsplit("/", 1)[0] + "/" + name

        def break_it():
            with admin.connect() as conn:
                conn.exec_driver_sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
                conn.exec_driver_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    else:
        path = tmp_path / "breakable.db"
        url = f"sqlite:///{path}"

        def break_it():
            db.engine.dispose()
            path.unlink()
            os.mkdir(path)  # a directory where the file was: every connection fails
    instance = tmp_path / "breakable-instance"
    config = {"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "QUIET_HOURS": "", "PUBLIC_RENDER_CHECK_SECONDS": 0}
    broken_app = create_app(config)
    broken_app.instance_path = str(instance)
    with broken_app.app_context():
        from flask_migrate import upgrade
        upgrade()
        open_incident("Photos missing")
    yield broken_app, break_it, config, instance
    with broken_app.app_context():
        db.engine.dispose()
    if database_url.startswith("postgresql"):
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
    elif os.path.isdir(tmp_path / "breakable.db"):
        shutil.rmtree(tmp_path / "breakable.db")


def test_when_the_database_goes_away_public_pages_serve_the_last_good_render(breakable):
    broken_app, break_it, config, instance = breakable
    broken_app.config["PROPAGATE_EXCEPTIONS"] = False
    client = broken_app.test_client()
    good = {path: client.get(path) for path in ("/", "/api/v2/summary.json", "/history.atom")}
    assert all(r.status_code == 200 for r in good.values())
    with broken_app.app_context():
        break_it()
    for path, before in good.items():
        after = client.get(path)
        assert after.status_code == 200, (path, after.status_code)
        assert after.data == before.data and after.headers["X-Render"] == "stale"
    assert b"This page was updated" in client.get("/").data  # the visible time of the render
    # A page never rendered cannot be made: a calm 503, never a 500.
    missing = client.get("/history?page=2")
    assert missing.status_code == 503 and "Retry-After" in missing.headers
    # A web process started during the outage serves what the others kept on disk.
    restarted = create_app(config)
    restarted.instance_path = str(instance)
    restarted.config["PROPAGATE_EXCEPTIONS"] = False
    answer = restarted.test_client().get("/")
    assert answer.status_code == 200 and answer.data == good["/"].data
    with restarted.app_context():
        db.engine.dispose()


def test_a_shared_page_sets_no_cookie_and_does_not_vary_by_cookie_even_for_a_signed_in_operator(client):
    from tests.conftest import make_operator, sign_in

    make_operator("viewer")
    sign_in(client, "viewer@example.com")
    for path in ("/", "/api/v2/summary.json", "/history.atom"):
        response = client.get(path)
        assert "Set-Cookie" not in response.headers, path
        assert "Cookie" not in response.headers["Vary"], path
    assert client.get("/ops/incidents").status_code == 200  # still signed in
