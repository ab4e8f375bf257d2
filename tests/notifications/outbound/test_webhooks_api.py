"""Outbound webhooks through the ops API: register (the secret once), list, change, rotate, delete, test; what
a request may hold, and who may do it."""
import json
import re

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.notifications.outbound.helpers import api_as, deliver, deliveries, register

SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]+={0,2}$")


def test_registering_answers_a_whsec_secret_once_and_reads_never_show_it(app, admin):
    made = register(admin, "https://hooks.example.com/lifeboat", ["incident.created", "incident.resolved"],
                    description="Paging bridge")
    assert SECRET.match(made["secret"])
    import base64
    assert 24 <= len(base64.b64decode(made["secret"][len("whsec_"):])) <= 32
    assert made["events"] == ["incident.created", "incident.resolved"] and made["enabled"] is True
    listed = admin.get("/webhooks")
    one = admin.get(f"/webhooks/{made['id']}")
    assert made["secret"] not in listed.get_data(as_text=True) and "secret" not in listed.get_json()["webhooks"][0]
    assert made["secret"] not in one.get_data(as_text=True) and one.get_json()["deliveries"] == []
    audit = admin.client.application.test_client()  # the audit log never holds it either
    from core.db import db
    from ops.models import AuditEntry
    entries = db.session.query(AuditEntry).filter(AuditEntry.action.like("webhook.%")).all()
    assert entries and all(made["secret"] not in json.dumps([e.before, e.after]) for e in entries)
    del audit


def test_change_rotate_and_delete(app, admin, private_ok, receiver):
    made = register(admin, receiver.url, ["incident.created"])
    changed = admin.patch(f"/webhooks/{made['id']}", json={"events": ["incident.updated", "incident.created"],
                                                           "description": "Bridge", "enabled": False})
    assert changed.status_code == 200
    assert changed.get_json()["events"] == ["incident.created", "incident.updated"]
    assert changed.get_json()["enabled"] is False
    rotated = admin.post(f"/webhooks/{made['id']}/rotate-secret")
    assert rotated.status_code == 200 and SECRET.match(rotated.get_json()["secret"])
    assert rotated.get_json()["secret"] != made["secret"]
    assert admin.delete(f"/webhooks/{made['id']}").status_code == 204
    assert admin.get(f"/webhooks/{made['id']}").status_code == 404


def test_rotating_the_secret_changes_the_signing_key(app, admin, private_ok, receiver):
    made = register(admin, receiver.url, ["incident.created"])
    admin.post("/incidents", json={"name": "First", "message": "m"})
    new = admin.post(f"/webhooks/{made['id']}/rotate-secret").get_json()["secret"]
    admin.post("/incidents", json={"name": "Second", "message": "m"})
    assert deliver() == 2
    first, second = sorted(receiver.received, key=lambda r: json.loads(r.body)["data"]["incident"]["name"])
    # Every attempt after the rotation is signed with the new key, the earlier event's too.
    for received in (first, second):
        assert received.verify(new)["type"] == "incident.created"
        with pytest.raises(WebhookVerificationError):
            received.verify(made["secret"])


def test_the_test_endpoint_queues_a_signed_test_event(app, admin, private_ok, receiver):
    made = register(admin, receiver.url, ["incident.resolved"])
    queued = admin.post(f"/webhooks/{made['id']}/test")
    assert queued.status_code == 200 and queued.get_json()["event_type"] == "webhook.test"
    assert queued.get_json()["status"] == "pending"
    assert receiver.received == []  # nothing is sent inside the request
    assert deliver() == 1
    body = receiver.received[0].verify(made["secret"])
    assert body["type"] == "webhook.test" and body["data"]["webhook_id"] == made["id"]
    shown = admin.get(f"/webhooks/{made['id']}").get_json()["deliveries"][0]
    assert shown["status"] == "delivered" and shown["log"][0]["status_code"] == 200
    assert shown["log"][0]["response_excerpt"] == "ok"
    admin.patch(f"/webhooks/{made['id']}", json={"enabled": False})
    refused = admin.post(f"/webhooks/{made['id']}/test")
    assert refused.status_code == 409 and "enable it first" in refused.get_json()["error"]["message"]


@pytest.mark.parametrize("url, says", [
    ("http://hooks.example.com/x", "Use https"),
    ("https://127.0.0.1/x", "loopback"),
    ("https://10.1.2.3/x", "private"),
    ("https://[::1]:8443/x", "loopback"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://[::ffff:192.168.1.1]/x", "private"),
    ("https://0.0.0.0/x", "unspecified"),
    ("https://224.0.0.1/x", "multicast"),
    ("https://100.64.0.1/x", "not a public address"),
    ("https://localhost:8443/x", "this machine"),
    ("https://user:pw@hooks.example.com/x", "user name or password"),
    ("ftp://hooks.example.com/x", "Use an https:// URL"),
    ("https:///nohost", "no host"),
])
def test_registration_refuses_plain_http_and_private_addresses(app, admin, url, says):
    response = admin.post("/webhooks", json={"url": url, "events": ["incident.created"]})
    assert response.status_code == 422, response.get_json()
    assert says in response.get_json()["error"]["fields"]["url"]


def test_the_setting_allows_plain_http_and_private_addresses(app, admin, private_ok):
    assert admin.post("/webhooks", json={"url": "http://10.1.2.3:8080/x", "events": ["incident.created"]}
                      ).status_code == 201


@pytest.mark.parametrize("body, field", [
    ({"url": "https://hooks.example.com/x"}, "events"),
    ({"url": "https://hooks.example.com/x", "events": []}, "events"),
    ({"url": "https://hooks.example.com/x", "events": ["incident.exploded"]}, "events[0]"),
    ({"url": "https://hooks.example.com/x", "events": ["incident.created", "incident.created"]}, "events"),
    ({"url": 5, "events": ["incident.created"]}, "url"),
    ({"url": "https://hooks.example.com/x", "events": ["incident.created"], "secret": "whsec_x"}, "secret"),
    ({"url": "https://hooks.example.com/\nx", "events": ["incident.created"]}, "url"),
    ({"url": "https://hooks.example.com/" + "x" * 2000, "events": ["incident.created"]}, "url"),
    ({"url": "https://hooks.example.com/x", "events": ["incident.created"], "description": None}, "description"),
])
def test_bad_bodies_get_a_422_naming_the_field(app, admin, body, field):
    response = admin.post("/webhooks", json=body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["error"]["fields"]


def test_unreadable_bodies_get_a_400_or_415_with_a_message(app, admin):
    for data, content_type, status in (("{", "application/json", 400), ("[]", "application/json", 400),
                                       ("url=x", "text/plain", 415), (b"\xff", "application/json", 400)):
        response = admin.post("/webhooks", data=data, content_type=content_type)
        assert response.status_code == status and response.get_json()["error"]["message"]
    made = register(admin, "https://hooks.example.com/x")
    assert admin.patch(f"/webhooks/{made['id']}", json={"enabled": "yes"}).status_code == 422
    assert admin.patch(f"/webhooks/{made['id']}", json={"url": "https://127.0.0.1/"}).status_code == 422
    assert admin.patch("/webhooks/2147483648", json={}).status_code == 404


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_manage_webhooks(app, client, role):
    api = api_as(client, role)
    response = api.post("/webhooks", json={"url": "https://hooks.example.com/x", "events": ["incident.created"]})
    assert response.status_code == 403 and "admin" in response.get_json()["error"]["message"]
    assert api.get("/webhooks").status_code == 403
    assert deliveries() == []


def test_the_signature_is_the_standard_webhooks_one_byte_for_byte(app, admin, private_ok, receiver):
    made = register(admin, receiver.url, ["incident.created"])
    admin.post("/incidents", json={"name": "Storage failure", "message": "Looking into it."})
    deliver()
    got = receiver.received[0]
    headers = {k.lower(): v for k, v in got.headers.items()}
    assert headers["webhook-id"].startswith("msg_") and headers["content-type"] == "application/json"
    from datetime import datetime, timezone
    at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), timezone.utc)
    assert headers["webhook-signature"] == Webhook(made["secret"]).sign(headers["webhook-id"], at,
                                                                        got.body.decode())


def test_a_failed_delivery_can_be_sent_again_with_the_same_webhook_id(app, admin, private_ok, receiver):
    made = register(admin, receiver.url, ["incident.created"])
    receiver.answer(400, b"bad")  # a receiver bug: final
    admin.post("/incidents", json={"name": "Fix me", "message": "m"})
    deliver()
    [d] = deliveries()
    assert d.status.value == "failed"
    path = f"/webhooks/{made['id']}/deliveries/{d.id}/redeliver"
    again = admin.post(path)
    assert again.status_code == 200 and again.get_json()["status"] == "pending", again.get_json()
    assert admin.post(path).status_code == 409  # already waiting
    assert admin.post(f"/webhooks/{made['id']}/deliveries/999/redeliver").status_code == 404
    deliver()
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] and first.body == second.body
    second.verify(made["secret"])
    shown = admin.get(f"/webhooks/{made['id']}").get_json()["deliveries"][0]
    assert shown["status"] == "delivered" and [a["status_code"] for a in shown["log"]] == [200, 400]
    admin.patch(f"/webhooks/{made['id']}", json={"enabled": False})
    assert admin.post(path).status_code == 409  # disabled: enable it first


def test_a_name_that_resolves_to_a_private_address_is_refused_at_registration_too(app):
    import socket

    from core.db import db
    from core.errors import ValidationError
    from notifications.outbound import service, targets
    from ops.audit import Actor

    def private(host, port, **kw):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.168.1.20", port))]

    def unknown(host, port, **kw):
        raise socket.gaierror(-2, "Name or service not known")

    def slow(host, port, **kw):
        import time
        time.sleep(targets.REGISTRATION_LOOKUP_SECONDS + 0.5)
        return private(host, port)

    data = {"url": "https://intranet.example.com/hook", "events": ["incident.created"]}
    with pytest.raises(ValidationError) as refused:
        service.create(db.session, actor=Actor.cli("test"), data=data, allow_private=False, resolver=private)
    assert "resolves to 192.168.1.20, a private address" in refused.value.fields["url"]
    # A name that does not resolve yet, or not quickly, is accepted: the check at every send decides.
    assert service.create(db.session, actor=Actor.cli("test"), data=data, allow_private=False, resolver=unknown)
    assert service.create(db.session, actor=Actor.cli("test"), data=data, allow_private=False, resolver=slow)
    # With the setting on, nothing is looked up.
    assert service.create(db.session, actor=Actor.cli("test"), data=data, allow_private=True, resolver=private)


def test_a_rotation_can_keep_signing_with_the_old_secret_for_a_while(app, admin, private_ok, receiver):
    from datetime import timedelta

    from core.db import utcnow

    made = register(admin, receiver.url, ["incident.created"])
    assert admin.post(f"/webhooks/{made['id']}/rotate-secret?keep_previous_hours=73").status_code == 422
    assert admin.post(f"/webhooks/{made['id']}/rotate-secret?keep_previous_hours=x").status_code == 422
    rotated = admin.post(f"/webhooks/{made['id']}/rotate-secret?keep_previous_hours=24").get_json()
    new = rotated["secret"]
    assert rotated["previous_secret_until"] is not None
    admin.post("/incidents", json={"name": "During the overlap", "message": "m"})
    admin.post("/incidents", json={"name": "After it", "message": "m"})
    [_first, second] = deliveries()
    deliver()  # now: both signatures
    during = receiver.received[0]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert during.verify(new) and during.verify(made["secret"])  # the receiver may still hold the old one
    assert admin.post(f"/webhooks/{made['id']}/deliveries/{second.id}/redeliver").status_code == 200
    deliver(now=utcnow() + timedelta(hours=25))  # past the overlap: the new secret only
    after = receiver.received[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1 and after.verify(new)
    with pytest.raises(WebhookVerificationError):
        after.verify(made["secret"])
