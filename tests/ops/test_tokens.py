import hashlib
import re

import sqlalchemy as sa

from core.db import db
from ops import service
from ops.audit import Actor
from ops.models import ApiToken, AuditEntry
from tests.conftest import make_operator, post_form, sign_in


def as_admin(client):
    admin = make_operator("admin")
    assert sign_in(client, admin).status_code == 302
    return admin


def create_on_page(client, operator_id, name="monitoring"):
    return post_form(client, "/ops/tokens", {"operator_id": operator_id, "name": name})


def secret_in(html: str) -> str:
    match = re.search(r'id="secret"[^>]*value="(lb_[^"]+)"', html)
    assert match, "no token on the page"
    return match.group(1)


def test_an_admin_creates_a_token_and_sees_the_secret_once(client):
    as_admin(client)
    owner = make_operator("operator")
    response = create_on_page(client, owner.id)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    secret = secret_in(response.get_data(as_text=True))

    token = db.session.scalar(sa.select(ApiToken))
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert token.operator_id == owner.id and token.name == "monitoring" and secret.startswith(token.prefix)
    listing = client.get("/ops/tokens").get_data(as_text=True)
    assert token.prefix in listing and "operator@example.com" in listing and "monitoring" in listing
    assert secret not in listing
    assert service.token_for_secret(db.session, secret).id == token.id


def test_the_secret_is_stored_nowhere_but_as_its_hash(client):
    as_admin(client)
    owner = make_operator("operator")
    secret = secret_in(create_on_page(client, owner.id).get_data(as_text=True))
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "token.create"))
    assert entry.after == {"operator": "operator@example.com", "name": "monitoring", "prefix": secret[:10]}
    assert secret not in str(entry.after)
    row = db.session.execute(sa.select(ApiToken.__table__)).one()
    assert secret not in str(tuple(row))


def test_a_token_for_an_unknown_or_disabled_operator_is_refused(client):
    as_admin(client)
    disabled = make_operator("operator")
    disabled.active = False
    db.session.commit()
    for operator_id in (999, disabled.id, "abc"):
        response = create_on_page(client, operator_id)
        assert response.status_code == 422
        assert "Not a valid choice" in response.get_data(as_text=True) or \
            "Invalid Choice" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


def test_revoking_asks_for_confirmation_then_stops_the_token(client):
    admin = as_admin(client)
    token, secret = service.create_token(db.session, actor=Actor.cli("test"), operator_id=admin.id)
    db.session.commit()
    url = f"/ops/tokens/{token.id}/revoke"
    confirm = client.get(url)
    assert confirm.status_code == 200 and "cannot be undone" in confirm.get_data(as_text=True)
    assert db.session.get(ApiToken, token.id).revoked_at is None  # looking is not revoking

    assert post_form(client, url, {}).status_code == 302
    db.session.expire_all()
    assert db.session.get(ApiToken, token.id).revoked_at is not None
    assert service.token_for_secret(db.session, secret) is None
    assert "Revoke</a>" not in client.get("/ops/tokens").get_data(as_text=True)
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "token.revoke"))
    assert entry.before == {"revoked_at": None} and entry.after["revoked_at"]
    assert entry.operator_id == admin.id


def test_revoking_without_a_csrf_token_is_refused(client):
    admin = as_admin(client)
    token, _secret = service.create_token(db.session, actor=Actor.cli("test"), operator_id=admin.id)
    db.session.commit()
    assert client.post(f"/ops/tokens/{token.id}/revoke").status_code == 400
    assert db.session.get(ApiToken, token.id).revoked_at is None


def test_an_unknown_token_is_a_404(client):
    as_admin(client)
    assert client.get("/ops/tokens/999/revoke").status_code == 404
