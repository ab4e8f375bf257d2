"""/metrics answers a bearer token only: METRICS_TOKEN, or a live ops API token. Anything else is a 401 that
says what to send; no answer sets a cookie or may be cached."""
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.db import db
from ops import service as ops_service
from ops.audit import Actor
from ops.models import ApiToken
from tests.conftest import make_operator, sign_in

METRICS_TOKEN = "m3tr1cs-t0ken-for-the-scraper"


@pytest.fixture
def metrics_app(app):
    app.config["METRICS_TOKEN"] = METRICS_TOKEN
    return app


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def api_token(role: str = "viewer", email: str = "prometheus@example.com"):
    operator = make_operator(role, email=email)
    token, secret = ops_service.create_token(db.session, actor=Actor.cli("test"), operator_id=operator.id,
                                             name="prometheus")
    db.session.commit()
    return token, secret


def assert_refused(response, error: str | None = None):
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)
    assert "lifeboat_" not in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers


def test_without_a_token_metrics_is_401_and_says_what_to_send(metrics_app, client):
    response = client.get("/metrics")
    assert_refused(response)
    assert "Authorization: Bearer" in response.get_data(as_text=True)


@pytest.mark.parametrize("header", ["Bearer", "Bearer   ", "Basic " + "dXNlcjpwYXNz", METRICS_TOKEN,
                                    "Token " + METRICS_TOKEN])
def test_a_malformed_authorization_header_is_401(metrics_app, client, header):
    assert_refused(client.get("/metrics", headers={"Authorization": header}))


def test_a_wrong_token_is_401_invalid_token(metrics_app, client):
    assert_refused(client.get("/metrics", headers=bearer("not-the-token-at-all-1234")), "invalid_token")
    assert_refused(client.get("/metrics", headers=bearer(METRICS_TOKEN[:-1])), "invalid_token")
    assert_refused(client.get("/metrics", headers=bearer(METRICS_TOKEN + "x")), "invalid_token")


def test_metrics_token_opens_metrics_in_the_prometheus_text_format(metrics_app, client):
    response = client.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert response.status_code == 200
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    names = {family.name for family in text_string_to_metric_families(response.get_data(as_text=True))}
    assert {"lifeboat_notifier_queue_messages", "lifeboat_notifier_sends", "lifeboat_notifier_oldest_due_seconds",
            "lifeboat_notifier_provider_latency_seconds", "lifeboat_notifier_workers_alive"} <= names


def test_a_scraper_asking_for_openmetrics_gets_it(metrics_app, client):
    response = client.get("/metrics", headers={**bearer(METRICS_TOKEN),
                                               "Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).rstrip().endswith("# EOF")


def test_any_live_ops_api_token_opens_metrics_and_is_marked_used(app, client):
    token, secret = api_token("viewer")
    assert app.config.get("METRICS_TOKEN") in ("", None)  # works without METRICS_TOKEN too
    assert client.get("/metrics", headers=bearer(secret)).status_code == 200
    db.session.expire_all()
    assert db.session.get(ApiToken, token.id).last_used_at is not None


def test_a_revoked_api_token_or_a_disabled_operator_is_401(app, client):
    token, secret = api_token("viewer")
    ops_service.revoke_token(db.session, actor=Actor.cli("test"), token_id=token.id)
    db.session.commit()
    assert_refused(client.get("/metrics", headers=bearer(secret)), "invalid_token")

    other, other_secret = api_token("viewer", email="scraper2@example.com")
    ops_service.set_active(db.session, actor=Actor.cli("test"), operator_id=other.operator_id, active=False)
    db.session.commit()
    assert_refused(client.get("/metrics", headers=bearer(other_secret)), "invalid_token")


def test_a_too_short_metrics_token_is_ignored(app, client):
    app.config["METRICS_TOKEN"] = "short"
    assert_refused(client.get("/metrics", headers=bearer("short")), "invalid_token")


def test_a_signed_in_console_session_is_not_enough(metrics_app, client):
    assert sign_in(client, make_operator("admin")).status_code == 302
    assert_refused(client.get("/metrics"))
