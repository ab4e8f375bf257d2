"""Behind reverse proxies (PROXY_FIX_HOPS): per-IP limits and the audit log see the client's address."""
import sqlalchemy as sa

from app import create_app
from core.db import db
from ops.models import SignInFailure
from tests.conftest import csrf_from, make_operator


def _fail_sign_in(client, forwarded_for: str) -> None:
    page = client.get("/ops/sign-in")
    response = client.post("/ops/sign-in", headers={"X-Forwarded-For": forwarded_for},
                           data={"email": "operator@example.com", "password": "wrong",
                                 "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert "do not match an active operator" in response.get_data(as_text=True)


def _failure_ips() -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(SignInFailure.ip).order_by(SignInFailure.id)))


def test_without_proxy_hops_a_forwarded_for_header_is_ignored(app, client):
    make_operator("operator")
    client.environ_base["REMOTE_ADDR"] = "10.0.0.2"
    _fail_sign_in(client, "203.0.113.50")
    assert _failure_ips() == ["10.0.0.2"]  # a client cannot pick its own address


def test_with_one_proxy_hop_the_client_address_comes_from_the_proxy(app, database_url):
    make_operator("operator")
    proxied = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True, "PROXY_FIX_HOPS": 1,
                          "SESSION_COOKIE_SECURE": False, "QUIET_HOURS": ""})
    client = proxied.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.0.0.2"  # the proxy
    # The proxy appends the address it saw; whatever the client wrote before it is not trusted.
    _fail_sign_in(client, "198.51.100.9, 203.0.113.50")
    with proxied.app_context():
        db.engine.dispose()
    assert _failure_ips() == ["203.0.113.50"]
