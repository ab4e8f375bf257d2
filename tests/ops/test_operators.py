import pytest
import sqlalchemy as sa

from core.db import db
from ops.models import AuditEntry, Operator, Role
from tests.conftest import PASSWORD, csrf_from, make_operator, post_form, sign_in

NEW_PASSWORD = "a brand new passphrase"

ADMIN_ROUTES = [
    ("GET", "/ops/operators"), ("POST", "/ops/operators"), ("POST", "/ops/operators/1/role"),
    ("POST", "/ops/operators/1/disable"), ("POST", "/ops/operators/1/enable"),
    ("GET", "/ops/operators/1/password"), ("POST", "/ops/operators/1/password"),
    ("GET", "/ops/tokens"), ("POST", "/ops/tokens"), ("GET", "/ops/tokens/1/revoke"),
    ("POST", "/ops/tokens/1/revoke"), ("GET", "/ops/audit"),
]


def as_role(client, role: str, email: str | None = None):
    operator = make_operator(role, email=email)
    assert sign_in(client, operator).status_code == 302
    return operator


def last_audit(action: str) -> AuditEntry:
    return db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.id.desc())).first()


def operators_page_post(client, action: str, data: dict | None = None):
    return post_form(client, "/ops/operators", data or {}, action=action)


@pytest.mark.parametrize("method,url", ADMIN_ROUTES)
@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_admin_pages_are_forbidden_to_viewers_and_operators(client, role, method, url):
    as_role(client, role)
    token = csrf_from(client.get("/ops/account").get_data(as_text=True))
    response = client.open(url, method=method, data={"csrf_token": token})
    assert response.status_code == 403


@pytest.mark.parametrize("method,url", ADMIN_ROUTES + [("GET", "/ops/account"), ("POST", "/ops/account")])
def test_admin_and_account_pages_send_anonymous_visitors_to_sign_in(client, method, url):
    token = csrf_from(client.get("/ops/sign-in").get_data(as_text=True))
    response = client.open(url, method=method, data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/ops/sign-in?next=")


def test_the_console_menu_shows_admin_pages_to_admins_only(client, app):
    as_role(client, "admin")
    html = client.get("/ops/operators").get_data(as_text=True)
    assert 'href="/ops/tokens"' in html and 'href="/ops/audit"' in html
    other = app.test_client()
    as_role(other, "operator")
    assert 'href="/ops/operators"' not in other.get("/ops/account").get_data(as_text=True)


def test_an_admin_creates_an_operator_with_a_role_and_password(client):
    as_role(client, "admin")
    response = operators_page_post(client, "/ops/operators",
                                   {"email": "New.Person@Example.com", "role": "operator", "password": PASSWORD})
    assert response.status_code == 302
    assert "Created operator new.person@example.com" in client.get("/ops/operators").get_data(as_text=True)
    created = db.session.scalar(sa.select(Operator).where(Operator.email == "new.person@example.com"))
    assert created.role == Role.OPERATOR and created.password_hash.startswith("$argon2id$")
    entry = last_audit("operator.create")
    assert entry.after == {"email": "new.person@example.com", "role": "operator", "active": True}
    assert entry.actor == "admin@example.com (web)"


@pytest.mark.parametrize("data,field_error", [
    ({"email": "admin@example.com", "role": "viewer", "password": PASSWORD}, "already exists"),
    ({"email": "x@example.com", "role": "viewer", "password": "short"}, "Use at least 12 characters"),
    ({"email": "not an email", "role": "viewer", "password": PASSWORD}, "email address"),
    ({"email": "x@example.com", "role": "superuser", "password": PASSWORD}, "Not a valid choice"),
])
def test_creating_an_operator_with_bad_input_shows_the_error_beside_the_field(client, data, field_error):
    as_role(client, "admin")
    response = operators_page_post(client, "/ops/operators", data)
    assert response.status_code == 422
    assert field_error in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Operator)) == 1


def test_an_admin_changes_a_role_and_the_change_is_audited(client):
    as_role(client, "admin")
    target = make_operator("viewer")
    response = operators_page_post(client, f"/ops/operators/{target.id}/role", {"role": "operator"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Operator, target.id).role == Role.OPERATOR
    entry = last_audit("operator.set_role")
    assert entry.before["role"] == "viewer" and entry.after["role"] == "operator"
    assert entry.entity_id == str(target.id)


def test_disabling_an_operator_ends_their_session_at_once(client, app):
    as_role(client, "admin")
    victim_client = app.test_client()
    victim = as_role(victim_client, "operator")
    assert victim_client.get("/ops/incidents").status_code == 200

    assert operators_page_post(client, f"/ops/operators/{victim.id}/disable").status_code == 302
    assert victim_client.get("/ops/incidents").status_code == 302
    assert sign_in(victim_client, victim).status_code == 400
    entry = last_audit("operator.disable")
    assert entry.before["active"] is True and entry.after["active"] is False

    assert operators_page_post(client, f"/ops/operators/{victim.id}/enable").status_code == 302
    assert sign_in(victim_client, victim).status_code == 302


def test_the_last_active_admin_cannot_demote_or_disable_themselves(client):
    admin = as_role(client, "admin")
    for action, data in ((f"/ops/operators/{admin.id}/role", {"role": "viewer"}),
                         (f"/ops/operators/{admin.id}/disable", {})):
        response = operators_page_post(client, action, data)
        assert response.status_code == 409
        assert "last active admin" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Operator, admin.id).role == Role.ADMIN
    assert db.session.get(Operator, admin.id).active


def test_an_admin_may_step_down_when_another_admin_remains(client):
    admin = as_role(client, "admin")
    make_operator("admin", email="second@example.com")
    assert operators_page_post(client, f"/ops/operators/{admin.id}/role", {"role": "operator"}).status_code == 302
    assert client.get("/ops/operators").status_code == 403


def test_an_admin_resets_a_password_and_the_old_one_stops_working(client, app):
    as_role(client, "admin")
    target = make_operator("viewer")
    other = app.test_client()
    sign_in(other, target)
    url = f"/ops/operators/{target.id}/password"
    short = post_form(client, url, {"password": "short"})
    assert short.status_code == 422 and "Use at least 12 characters" in short.get_data(as_text=True)
    assert post_form(client, url, {"password": NEW_PASSWORD}).status_code == 302

    assert other.get("/ops/incidents").status_code == 302  # their session ended
    assert sign_in(other, target).status_code == 400
    assert sign_in(other, target, password=NEW_PASSWORD).status_code == 302
    entry = last_audit("operator.reset_password")
    assert entry.after["password"] == "changed" and "hash" not in str(entry.after)


def test_an_unknown_operator_id_is_a_404(client):
    as_role(client, "admin")
    assert client.get("/ops/operators/999/password").status_code == 404
    assert operators_page_post(client, "/ops/operators/999/disable").status_code == 404


def test_any_operator_changes_their_own_password_and_stays_signed_in(client, app):
    me = as_role(client, "viewer")
    elsewhere = app.test_client()
    sign_in(elsewhere, me)

    wrong = post_form(client, "/ops/account", {"current_password": "not it", "new_password": NEW_PASSWORD,
                                               "confirm": NEW_PASSWORD})
    assert wrong.status_code == 422 and "not your current password" in wrong.get_data(as_text=True)
    differ = post_form(client, "/ops/account", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                "confirm": "something else"})
    assert differ.status_code == 422 and "differ" in differ.get_data(as_text=True)

    ok = post_form(client, "/ops/account", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                            "confirm": NEW_PASSWORD})
    assert ok.status_code == 302
    assert client.get("/ops/account").status_code == 200  # this session moved to the new version
    assert elsewhere.get("/ops/incidents").status_code == 302  # the other one ended
    assert sign_in(elsewhere, me, password=NEW_PASSWORD).status_code == 302
    assert last_audit("operator.change_password").operator_id == me.id
