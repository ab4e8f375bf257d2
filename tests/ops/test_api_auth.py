"""Bearer tokens on the ops API: who may call, with which role, and who the audit log names."""
import sqlalchemy as sa

from core.db import db
from ops import service as ops_service
from ops.audit import Actor
from ops.models import ApiToken, AuditEntry
from tests.conftest import make_operator, sign_in
from tests.ops.api_client import ApiClient
PREFIX = "/api/ops/v1"


def _token_for(role: str, email: str) -> str:
    operator = make_operator(role, email=email)
    _token, secret = ops_service.create_token(db.session, actor=Actor.cli("test"), operator_id=operator.id)
    db.session.commit()
    return secret


def test_a_request_without_a_token_is_refused_with_a_bearer_challenge(client):
    response = client.get(f"{PREFIX}/incidents")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="lifeboat"'
    assert "Authorization: Bearer" in response.get_json()["error"]["message"]


def test_an_unknown_token_is_refused(client, api_token):
    response = client.get(f"{PREFIX}/incidents", headers={"Authorization": "Bearer lb_not-a-real-token"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.get_json()["error"]["status"] == 401


def test_other_authorization_schemes_are_refused(client, api_token):
    _operator, secret = api_token
    response = client.get(f"{PREFIX}/incidents", headers={"Authorization": f"Basic {secret}"})
    assert response.status_code == 401


def test_a_revoked_token_stops_working(client, api_token):
    _operator, secret = api_token
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get(f"{PREFIX}/incidents", headers=headers).status_code == 200
    token = db.session.scalar(sa.select(ApiToken))
    ops_service.revoke_token(db.session, actor=Actor.cli("test"), token_id=token.id)
    db.session.commit()
    response = client.get(f"{PREFIX}/incidents", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.get_json()["error"]["message"]


def test_a_disabled_operators_token_stops_working(client, api_token):
    operator, secret = api_token
    operator.active = False
    db.session.commit()
    response = client.get(f"{PREFIX}/incidents", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 401


def test_a_viewer_token_can_read_but_not_write(client):
    api = ApiClient(client, _token_for("viewer", "viewer@example.com"))
    assert api.get("/components").status_code == 200
    response = api.post("/components", json={"name": "Contacts sync"})
    assert response.status_code == 403
    assert "needs the operator role" in response.get_json()["error"]["message"]
    assert api.post("/incidents", json={"name": "x", "message": "y"}).status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action.like("component%"))) == 0


def test_an_admin_token_can_write(client):
    api = ApiClient(client, _token_for("admin", "admin@example.com"))
    assert api.post("/components", json={"name": "Calendar"}).status_code == 201


def test_a_signed_in_browser_session_does_not_authenticate_the_api(client):
    operator = make_operator("operator")
    assert sign_in(client, operator).status_code == 302
    assert client.get("/ops/incidents").status_code == 200  # the session works in the console
    assert client.get(f"{PREFIX}/incidents").status_code == 401
    # and no CSRF-less write can ride on the cookie
    response = client.post(f"{PREFIX}/components", json={"name": "Photos"})
    assert response.status_code == 401


def test_writes_with_a_token_need_no_csrf_token(client, api_token):
    response = client.post(f"{PREFIX}/components", json={"name": "Photos"},
                           headers={"Authorization": f"Bearer {api_token[1]}"})
    assert response.status_code == 201


def test_the_audit_log_names_the_tokens_operator(client, api_token):
    operator, secret = api_token
    api = ApiClient(client, secret)
    incident = api.post("/incidents", json={"name": "Sync down", "message": "Investigating."}).get_json()
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "incident.create"))
    token = db.session.scalar(sa.select(ApiToken))
    assert entry.operator_id == operator.id
    assert entry.actor == f"api@example.com (token {token.prefix})"
    assert entry.entity_id == str(incident["id"])
    assert entry.ip == "127.0.0.1"
    assert incident["incident_updates"][0]["author"] == entry.actor


def test_using_a_token_records_when_it_was_last_used(client, api_token):
    token = db.session.scalar(sa.select(ApiToken))
    assert token.last_used_at is None
    client.get(f"{PREFIX}/components", headers={"Authorization": f"Bearer {api_token[1]}"})
    db.session.expire_all()
    first = db.session.scalar(sa.select(ApiToken)).last_used_at
    assert first is not None
    # a second call within the minute does not write again
    client.get(f"{PREFIX}/components", headers={"Authorization": f"Bearer {api_token[1]}"})
    db.session.expire_all()
    assert db.session.scalar(sa.select(ApiToken)).last_used_at == first


def test_the_cli_prints_a_token_once_that_the_api_accepts(runner, client):
    make_operator("operator", email="cli@example.com")
    result = runner.invoke(args=["tokens", "create", "cli@example.com"])
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[0]
    assert secret.startswith("lb_")
    assert db.session.scalar(sa.select(ApiToken.token_hash)) != secret  # stored hashed
    assert client.get(f"{PREFIX}/incidents", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
