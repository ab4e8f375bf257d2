"""The console's webhooks page: admins register an endpoint (the secret shown once, on a page nobody caches),
enable, disable, rotate, test and delete it with CSRF-protected forms, each audited; others cannot."""
import re

import pytest
import sqlalchemy as sa

from core.db import db
from notifications.outbound.models import WebhookEndpoint
from ops.models import AuditEntry
from tests.conftest import csrf_from, make_operator, post_form, sign_in
from tests.notifications.outbound.helpers import deliver, deliveries
from tests.peers import webhook_receiver


@pytest.fixture
def admin_web(app, client):
    sign_in(client, make_operator("admin", email="admin@example.com"))
    return client


@pytest.fixture
def receiver(app):
    app.config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"] = True
    r = webhook_receiver.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def actions() -> list[str]:
    return [e.action for e in db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action.like("webhook.%"))
                                                 .order_by(AuditEntry.id))]


def test_an_admin_registers_an_endpoint_and_sees_the_secret_once(app, admin_web, receiver):
    home = admin_web.get("/ops/").get_data(as_text=True)
    assert 'href="/ops/webhooks"' in home  # in the console's navigation
    created = post_form(admin_web, "/ops/webhooks", {"url": receiver.url, "events": ["incident.created",
                                                                                      "offer.accepted"],
                                                      "description": "Bridge"})
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    secret = re.search(r'value="(whsec_[^"]+)"', created.get_data(as_text=True)).group(1)
    endpoint = db.session.scalars(sa.select(WebhookEndpoint)).one()
    assert endpoint.secret == secret and endpoint.events == ["incident.created", "offer.accepted"]
    page = admin_web.get("/ops/webhooks").get_data(as_text=True)
    assert receiver.url in page and "Bridge" in page and secret not in page
    assert actions() == ["webhook.create"]


def test_the_buttons_test_rotate_disable_enable_and_delete_and_each_is_audited(app, admin_web, receiver):
    post_form(admin_web, "/ops/webhooks", {"url": receiver.url, "events": ["incident.created"]})
    endpoint = db.session.scalars(sa.select(WebhookEndpoint)).one()
    base, old = f"/ops/webhooks/{endpoint.id}", endpoint.secret
    tested = post_form(admin_web, "/ops/webhooks", {}, action=f"{base}/test", follow_redirects=True)
    assert "A test event is queued" in tested.get_data(as_text=True)
    deliver()
    page = admin_web.get("/ops/webhooks").get_data(as_text=True)
    assert "webhook.test" in page and "delivered" in page and "200" in page  # the delivery log
    rotated = post_form(admin_web, "/ops/webhooks", {}, action=f"{base}/rotate-secret")
    new = re.search(r'value="(whsec_[^"]+)"', rotated.get_data(as_text=True)).group(1)
    assert rotated.headers["Cache-Control"] == "no-store" and new != old
    off = post_form(admin_web, "/ops/webhooks", {}, action=f"{base}/disable", follow_redirects=True)
    assert "is disabled" in off.get_data(as_text=True)
    on = post_form(admin_web, "/ops/webhooks", {}, action=f"{base}/enable", follow_redirects=True)
    assert "is enabled" in on.get_data(as_text=True)
    gone = post_form(admin_web, "/ops/webhooks", {}, action=f"{base}/delete", follow_redirects=True)
    assert "deleted" in gone.get_data(as_text=True) and deliveries() == []
    assert actions() == ["webhook.create", "webhook.test", "webhook.rotate_secret", "webhook.update",
                         "webhook.update", "webhook.delete"]


def test_a_refused_url_is_shown_beside_the_field(app, admin_web):
    response = post_form(admin_web, "/ops/webhooks", {"url": "http://10.0.0.1/x", "events": ["incident.created"]})
    assert response.status_code == 422 and "Use https" in response.get_data(as_text=True)
    response = post_form(admin_web, "/ops/webhooks", {"url": "https://hooks.example.com/x"})
    assert response.status_code == 422 and "Choose at least one event" in response.get_data(as_text=True)
    assert db.session.scalars(sa.select(WebhookEndpoint)).all() == []


def test_a_form_without_its_csrf_token_changes_nothing(app, admin_web, receiver):
    post_form(admin_web, "/ops/webhooks", {"url": receiver.url, "events": ["incident.created"]})
    endpoint = db.session.scalars(sa.select(WebhookEndpoint)).one()
    assert admin_web.post(f"/ops/webhooks/{endpoint.id}/delete").status_code == 400
    assert admin_web.post("/ops/webhooks", data={"url": receiver.url, "events": ["incident.created"]}
                          ).status_code == 400
    assert len(db.session.scalars(sa.select(WebhookEndpoint)).all()) == 1


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_open_or_use_the_page(app, client, role):
    sign_in(client, make_operator(role))
    assert client.get("/ops/webhooks").status_code == 403
    token = csrf_from(client.get("/ops/account").get_data(as_text=True))
    assert client.post("/ops/webhooks", data={"csrf_token": token, "url": "https://hooks.example.com/x",
                                              "events": ["incident.created"]}).status_code == 403
    assert 'href="/ops/webhooks"' not in client.get("/ops/").get_data(as_text=True)


def test_send_again_queues_a_finished_delivery_and_is_audited(app, admin_web, receiver):
    post_form(admin_web, "/ops/webhooks", {"url": receiver.url, "events": ["incident.created"]})
    endpoint = db.session.scalars(sa.select(WebhookEndpoint)).one()
    post_form(admin_web, "/ops/webhooks", {}, action=f"/ops/webhooks/{endpoint.id}/test")
    deliver()
    [d] = deliveries()
    page = admin_web.get("/ops/webhooks").get_data(as_text=True)
    action = f"/ops/webhooks/{endpoint.id}/deliveries/{d.id}/redeliver"
    assert f'action="{action}"' in page and "Send again" in page
    done = post_form(admin_web, "/ops/webhooks", {}, action=action, follow_redirects=True)
    assert "queued again" in done.get_data(as_text=True)
    deliver()
    assert len(receiver.received) == 2 and actions()[-1] == "webhook.redeliver"


def test_an_admin_changes_the_url_events_and_description_on_the_page(app, admin_web, receiver):
    post_form(admin_web, "/ops/webhooks", {"url": receiver.url, "events": ["incident.created"]})
    endpoint = db.session.scalars(sa.select(WebhookEndpoint)).one()
    page = admin_web.get("/ops/webhooks").get_data(as_text=True)
    assert f'action="/ops/webhooks/{endpoint.id}/edit"' in page
    changed = post_form(admin_web, "/ops/webhooks", {"url": receiver.url + "2", "description": "New",
                                                     "events": ["incident.resolved", "offer.accepted"]},
                        action=f"/ops/webhooks/{endpoint.id}/edit", follow_redirects=True)
    assert f"Webhook {endpoint.id} is changed." in changed.get_data(as_text=True)
    db.session.refresh(endpoint)
    assert (endpoint.url, endpoint.description, endpoint.events) == (
        receiver.url + "2", "New", ["incident.resolved", "offer.accepted"])
    app.config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"] = False
    refused = post_form(admin_web, "/ops/webhooks", {"url": "https://127.0.0.1/x", "events": ["incident.created"]},
                        action=f"/ops/webhooks/{endpoint.id}/edit", follow_redirects=True)
    assert "loopback" in refused.get_data(as_text=True)
    db.session.refresh(endpoint)
    assert endpoint.url == receiver.url + "2" and actions() == ["webhook.create", "webhook.update"]


def test_the_console_rotation_that_keeps_the_old_secret_for_a_day(app, admin_web, receiver):
    post_form(admin_web, "/ops/webhooks", {"url": receiver.url, "events": ["incident.created"]})
    endpoint = db.session.scalars(sa.select(WebhookEndpoint)).one()
    old = endpoint.secret
    rotated = post_form(admin_web, "/ops/webhooks", {"keep_previous_hours": "24"},
                        action=f"/ops/webhooks/{endpoint.id}/rotate-secret")
    assert "signed with the old secret too for 24 hours" in rotated.get_data(as_text=True)
    db.session.refresh(endpoint)
    assert endpoint.previous_secret == old and endpoint.secret != old and endpoint.previous_secret_until
    assert "Also signing with the previous secret until" in admin_web.get("/ops/webhooks").get_data(as_text=True)
