"""Sessions the server can end: sign-out, a password change and disabling an operator void every session and
every "keep me signed in" cookie at once, including copies saved before (issue 9, defects 1 and 2)."""
import sqlalchemy as sa

from core.db import db
from ops.models import AuditEntry, Operator
from tests.conftest import PASSWORD, csrf_from, make_operator


def sign_in_remembered(client, email: str):
    page = client.get("/ops/sign-in")
    response = client.post("/ops/sign-in", data={"email": email, "password": PASSWORD, "remember": "y",
                                                 "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert response.status_code == 302
    return response


def saved_cookies(client) -> dict[str, str]:
    """What an attacker (or a browser restored from a backup) keeps: every cookie's value."""
    return {c.key: c.value for c in client._cookies.values()}


def replay(app, cookies: dict[str, str]):
    """A fresh browser carrying exactly the saved cookies."""
    other = app.test_client()
    for name, value in cookies.items():
        other.set_cookie(name, value)
    return other


def sign_out(client):
    page = client.get("/ops/account").get_data(as_text=True)
    return client.post("/ops/sign-out", data={"csrf_token": csrf_from(page)})


def test_the_remember_me_cookie_is_lax_httponly_and_lasts_two_weeks_not_a_year(client):
    make_operator("viewer")
    response = sign_in_remembered(client, "viewer@example.com")
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("remember_token="))
    assert "HttpOnly" in header and "SameSite=Lax" in header
    expires = client.get_cookie("remember_token").expires
    assert expires is not None
    from datetime import datetime, timezone
    days = (expires - datetime.now(timezone.utc)).days
    assert 13 <= days <= 14


def test_sign_out_deletes_the_remember_me_cookie(client):
    make_operator("viewer")
    sign_in_remembered(client, "viewer@example.com")
    assert client.get_cookie("remember_token") is not None
    response = sign_out(client)
    assert response.status_code == 302
    deleted = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("remember_token=")]
    assert deleted and all("Expires=Thu, 01 Jan 1970" in h for h in deleted)
    assert client.get_cookie("remember_token") is None
    # A browser restart drops the session cookie; nothing may sign the operator back in.
    client.delete_cookie("session")
    assert client.get("/ops/incidents").status_code == 302


def test_a_remember_me_cookie_saved_before_sign_out_no_longer_signs_in(app, client):
    make_operator("viewer")
    sign_in_remembered(client, "viewer@example.com")
    saved = saved_cookies(client)
    sign_out(client)
    only_remember = replay(app, {"remember_token": saved["remember_token"]})
    assert only_remember.get("/ops/incidents").status_code == 302


def test_a_session_cookie_saved_before_sign_out_cannot_read_or_write(app, client):
    make_operator("operator")
    sign_in_remembered(client, "operator@example.com")
    form_page = client.get("/ops/account").get_data(as_text=True)  # a page with a CSRF token, kept by the attacker
    saved = saved_cookies(client)
    sign_out(client)
    attacker = replay(app, saved)
    assert attacker.get("/ops/incidents").status_code == 302
    response = attacker.post("/ops/incidents/new", data={"csrf_token": csrf_from(form_page), "name": "Replayed"})
    assert response.status_code in (302, 400)  # sent to sign-in, or the CSRF check refuses: never applied
    from incidents.models import Incident
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Incident)) == 0


def test_sign_out_ends_the_sessions_on_other_devices_too_and_is_audited(app, client):
    make_operator("viewer")
    sign_in_remembered(client, "viewer@example.com")
    laptop = app.test_client()
    sign_in_remembered(laptop, "viewer@example.com")
    assert laptop.get("/ops/incidents").status_code == 200
    sign_out(client)
    assert laptop.get("/ops/incidents").status_code == 302
    entry = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "operator.sign_out")).one()
    assert entry.entity_id == str(db.session.scalar(sa.select(Operator.id)))


def test_signing_in_again_gives_a_different_remember_me_cookie(client):
    make_operator("viewer")
    sign_in_remembered(client, "viewer@example.com")
    first = client.get_cookie("remember_token").value
    sign_out(client)
    sign_in_remembered(client, "viewer@example.com")
    assert client.get_cookie("remember_token").value != first


def test_a_password_change_ends_other_remembered_sessions(app, client):
    make_operator("viewer")
    sign_in_remembered(client, "viewer@example.com")
    phone = app.test_client()
    sign_in_remembered(phone, "viewer@example.com")
    saved = saved_cookies(phone)
    page = client.get("/ops/account").get_data(as_text=True)
    response = client.post("/ops/account", data={"csrf_token": csrf_from(page), "current_password": PASSWORD,
                                                 "new_password": "a brand new passphrase",
                                                 "confirm": "a brand new passphrase"})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert client.get("/ops/incidents").status_code == 200  # the session that changed it goes on
    assert replay(app, {"remember_token": saved["remember_token"]}).get("/ops/incidents").status_code == 302
    assert phone.get("/ops/incidents").status_code == 302


def test_disabling_an_operator_ends_their_remembered_sessions(app, client):
    make_operator("admin")
    make_operator("viewer")
    viewer = app.test_client()
    sign_in_remembered(viewer, "viewer@example.com")
    saved = saved_cookies(viewer)
    sign_in_remembered(client, "admin@example.com")
    target = db.session.scalar(sa.select(Operator).where(Operator.email == "viewer@example.com"))
    page = client.get("/ops/operators").get_data(as_text=True)
    response = client.post(f"/ops/operators/{target.id}/disable", data={"csrf_token": csrf_from(page)})
    assert response.status_code in (302, 303), response.status_code
    db.session.expire_all()
    assert not db.session.get(Operator, target.id).active
    assert replay(app, {"remember_token": saved["remember_token"]}).get("/ops/incidents").status_code == 302
