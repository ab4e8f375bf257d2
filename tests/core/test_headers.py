"""Security headers (issue 9, defect 14): HSTS on https (also behind a proxy), no-store on console pages."""
import pytest

from app import create_app
from core.db import db
from tests.accounts.factories import attach, make_incident
from tests.conftest import make_operator, sign_in


def test_https_behind_a_proxy_gets_strict_transport_security(app, database_url):
    proxied = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True, "PROXY_FIX_HOPS": 1,
                          "SESSION_COOKIE_SECURE": False, "QUIET_HOURS": ""})
    client = proxied.test_client()
    response = client.get("/", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "Strict-Transport-Security" not in client.get("/").headers  # plain http: browsers ignore it anyway
    with proxied.app_context():
        db.engine.dispose()


def test_without_proxy_hops_a_forwarded_proto_is_not_believed(client):
    assert "Strict-Transport-Security" not in client.get("/", headers={"X-Forwarded-Proto": "https"}).headers


def test_a_direct_https_request_gets_strict_transport_security(client):
    assert "Strict-Transport-Security" in client.get("/", base_url="https://status.example.com").headers


@pytest.fixture
def viewer(client):
    incident = make_incident()
    attach(incident.id, "A1")
    make_operator("viewer")
    assert sign_in(client, "viewer@example.com").status_code == 302
    return client, incident


def test_console_pages_with_personal_data_are_never_stored(viewer):
    client, incident = viewer
    for path in (f"/ops/incidents/{incident.id}/accounts", "/ops/incidents", f"/ops/incidents/{incident.id}/accounts.csv",
                 "/ops/account", "/ops/sign-in"):
        response = client.get(path)
        assert response.status_code in (200, 302), (path, response.status_code)
        assert response.headers["Cache-Control"] == "no-store", path


def test_api_answers_are_never_stored(client, api_token):
    _, secret = api_token
    response = client.get("/api/ops/v1/incidents", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"


def test_public_pages_stay_cacheable(client):
    assert "public" in client.get("/").headers["Cache-Control"]
    assert "public" in client.get("/api/v2/summary.json").headers["Cache-Control"]
