import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core.db import db, utcnow
from ops.models import AuditEntry, Operator, SignInFailure
from tests.conftest import PASSWORD, csrf_from, make_operator, sign_in

THROTTLED = "Too many failed sign-in attempts. Try again after"


def failures(email: str) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(SignInFailure)
                             .where(SignInFailure.email == email))


def add_old_failures(email: str, ip: str, count: int, age: timedelta):
    for _ in range(count):
        db.session.add(SignInFailure(email=email, ip=ip, at=utcnow() - age))
    db.session.commit()


def test_console_routes_require_sign_in(client):
    response = client.get("/ops/incidents")
    assert response.status_code == 302
    assert "/ops/sign-in" in response.headers["Location"]


def test_an_operator_signs_in_and_out(client):
    make_operator("viewer")
    assert sign_in(client, "viewer@example.com").status_code == 302
    assert client.get("/ops/incidents").status_code == 200
    page = client.get("/ops/account").get_data(as_text=True)
    assert client.post("/ops/sign-out", data={"csrf_token": csrf_from(page)}).status_code == 302
    assert client.get("/ops/incidents").status_code == 302


def test_a_wrong_password_is_refused_with_a_message(client):
    make_operator("viewer")
    response = sign_in(client, "viewer@example.com", password="not the password")
    assert response.status_code == 400
    assert "do not match" in response.get_data(as_text=True)
    assert client.get("/ops/incidents").status_code == 302


def test_an_unknown_email_gets_exactly_the_same_answer_as_a_wrong_password(client):
    make_operator("viewer")
    known = sign_in(client, "viewer@example.com", password="not the password")
    unknown = sign_in(client, "nobody@example.com", password="not the password")
    assert known.status_code == unknown.status_code == 400
    def page(response, email):  # the form keeps the typed email; the CSRF token is signed with the time
        return re.sub(r'value="[^"]*"', "", response.get_data(as_text=True).replace(email, "X"))
    assert page(known, "viewer@example.com") == page(unknown, "nobody@example.com")


def test_a_disabled_operator_cannot_sign_in_even_with_the_right_password(client):
    operator = make_operator("viewer")
    operator.active = False
    db.session.commit()
    response = sign_in(client, operator)
    assert response.status_code == 400
    assert "do not match an active operator" in response.get_data(as_text=True)


def test_passwords_are_stored_as_argon2id_hashes(app):
    operator = make_operator("viewer")
    assert operator.password_hash.startswith("$argon2id$")
    assert PASSWORD not in operator.password_hash


def test_sign_in_without_a_csrf_token_is_refused_with_a_400_page(client):
    make_operator("viewer")
    response = client.post("/ops/sign-in", data={"email": "viewer@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert "form session expired" in response.get_data(as_text=True)
    assert client.get("/ops/incidents").status_code == 302


def test_the_session_cookie_is_http_only_and_same_site(client):
    make_operator("viewer")
    response = sign_in(client, "viewer@example.com")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_signing_in_starts_a_fresh_session(client):
    make_operator("viewer")
    client.get("/ops/sign-in")
    with client.session_transaction() as s:
        s["planted"] = "by an attacker"
    sign_in(client, "viewer@example.com")
    with client.session_transaction() as s:
        assert "planted" not in s


def test_too_many_failures_for_an_account_lock_it_even_with_the_right_password(client):
    make_operator("viewer")
    for _ in range(5):
        assert sign_in(client, "viewer@example.com", password="wrong guess").status_code == 400
    response = sign_in(client, "viewer@example.com")
    assert response.status_code == 429
    assert THROTTLED in response.get_data(as_text=True)
    assert "in about 15 minutes" in response.get_data(as_text=True)
    assert 800 < int(response.headers["Retry-After"]) <= 900
    assert client.get("/ops/incidents").status_code == 302


def test_an_unknown_email_is_throttled_like_a_real_one(client):
    for _ in range(5):
        sign_in(client, "nobody@example.com", password="wrong guess")
    assert sign_in(client, "nobody@example.com", password="wrong guess").status_code == 429


def test_attempts_while_locked_do_not_extend_the_lock(client):
    make_operator("viewer")
    for _ in range(8):
        sign_in(client, "viewer@example.com", password="wrong guess")
    assert failures("viewer@example.com") == 5


def test_the_lock_says_when_to_try_again_and_ends_with_the_window(client):
    make_operator("viewer")
    add_old_failures("viewer@example.com", "10.9.9.9", 5, timedelta(minutes=10))
    response = sign_in(client, "viewer@example.com")
    assert response.status_code == 429
    assert "in about 5 minutes" in response.get_data(as_text=True)

    db.session.execute(sa.update(SignInFailure).values(at=utcnow() - timedelta(minutes=16)))
    db.session.commit()
    assert sign_in(client, "viewer@example.com").status_code == 302


def test_too_many_failures_from_one_ip_lock_that_ip_for_every_account(app, client):
    app.config["SIGNIN_MAX_FAILURES_PER_IP"] = 3
    make_operator("viewer")
    client.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    for n in range(3):
        sign_in(client, f"guess{n}@example.com", password="wrong guess")
    response = sign_in(client, "viewer@example.com")
    assert response.status_code == 429
    assert THROTTLED in response.get_data(as_text=True)

    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.1"
    assert sign_in(other, "viewer@example.com").status_code == 302


def test_old_failures_from_an_ip_no_longer_count(app, client):
    app.config["SIGNIN_MAX_FAILURES_PER_IP"] = 3
    make_operator("viewer")
    client.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    add_old_failures("someone@example.com", "203.0.113.7", 3, timedelta(seconds=app.config["SIGNIN_WINDOW_SECONDS"] + 5))
    assert sign_in(client, "viewer@example.com").status_code == 302


def test_a_successful_sign_in_clears_the_accounts_failures(client):
    make_operator("viewer")
    for _ in range(4):
        sign_in(client, "viewer@example.com", password="wrong guess")
    assert failures("viewer@example.com") == 4
    assert sign_in(client, "viewer@example.com").status_code == 302
    assert failures("viewer@example.com") == 0


def test_sign_ins_and_failures_are_in_the_audit_log(client):
    operator = make_operator("viewer")
    client.environ_base["REMOTE_ADDR"] = "192.0.2.44"
    sign_in(client, operator, password="wrong guess")
    sign_in(client, "nobody@example.com", password="wrong guess")
    sign_in(client, operator)
    entries = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action.like("operator.sign_in%"))
                                 .order_by(AuditEntry.id)).all()
    assert [(e.action, e.operator_id, e.ip) for e in entries] == [
        ("operator.sign_in_failed", operator.id, "192.0.2.44"),
        ("operator.sign_in_failed", None, "192.0.2.44"),
        ("operator.sign_in", operator.id, "192.0.2.44"),
    ]
    assert entries[1].after == {"email": "nobody@example.com", "reason": "bad_credentials"}
    assert db.session.get(Operator, operator.id).last_sign_in_at is not None


@pytest.mark.parametrize("target", ["//evil.com", "https://evil.com", "/\\evil.com", "http:/evil.com",
                                    "javascript:alert(1)"])
def test_sign_in_never_redirects_off_site(client, target):
    make_operator("viewer")
    page = client.get("/ops/sign-in")
    response = client.post("/ops/sign-in", query_string={"next": target},
                           data={"email": "viewer@example.com", "password": PASSWORD,
                                 "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert response.status_code == 302
    assert response.headers["Location"] == "/ops/"


def test_sign_in_returns_to_the_page_that_asked_for_it(client):
    make_operator("viewer")
    login_page = client.get("/ops/incidents").headers["Location"]
    page = client.get(login_page)
    response = client.post(login_page, data={"email": "viewer@example.com", "password": PASSWORD,
                                              "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert response.headers["Location"] == "/ops/incidents"


def test_failures_older_than_the_window_are_pruned(client):
    add_old_failures("someone@example.com", "10.1.1.1", 3, timedelta(hours=1))
    sign_in(client, "nobody@example.com", password="wrong guess")
    assert failures("someone@example.com") == 0
    assert failures("nobody@example.com") == 1
