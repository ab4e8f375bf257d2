"""Outbound webhook deliveries: events emitted in the change's transaction, signed, sent by the worker to a real
receiver on loopback, retried on 5xx/429/timeouts, final on other 4xx, an endpoint disabled after a day of
failures, targets checked again after DNS resolution, answers read up to a cap."""
import json
import socket
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core.db import db, utcnow
from incidents import service as incidents
from notifications.outbound import delivery
from notifications.outbound.models import WebhookEndpoint
from ops.audit import Actor
from ops.models import AuditEntry
from tests.conftest import make_operator, sign_in
from tests.notifications.outbound.helpers import attempts, deliver, deliveries, make_due, register
from tests.peers import webhook_receiver

ALL = ["incident.created", "incident.updated", "incident.resolved", "component.updated", "maintenance.scheduled"]


def test_an_incident_created_updated_and_resolved_through_the_api_arrives_signed(app, client, admin, private_ok,
                                                                              receiver):
    made = register(admin, receiver.url, ALL)
    component = admin.post("/components", json={"name": "Contacts sync"}).get_json()
    incident = admin.post("/incidents", json={
        "name": "Storage failure", "message": "Looking into it.", "component_ids": [component["id"]],
        "component_statuses": {str(component["id"]): "major_outage"}}).get_json()
    admin.post(f"/incidents/{incident['id']}/updates", json={"status": "identified", "message": "Found it."})
    admin.post(f"/incidents/{incident['id']}/updates", json={"status": "resolved", "message": "Fixed."})
    assert deliver() == 5
    bodies = [r.verify(made["secret"]) for r in receiver.received]
    # filed, its component going to major_outage, identified, resolved, and the component back to operational
    assert sorted(b["type"] for b in bodies) == ["component.updated", "component.updated", "incident.created",
                                                 "incident.resolved", "incident.updated"]
    by_type = {}
    for b in bodies:
        by_type.setdefault(b["type"], []).append(b)
    assert set(by_type) == {"incident.created", "component.updated", "incident.updated", "incident.resolved"}
    # data is the /api/v2 shape: the same keys as the public incidents.json
    public = client.get("/api/v2/incidents.json").get_json()["incidents"][0]
    resolved = by_type["incident.resolved"][0]["data"]
    assert set(resolved["incident"]) == set(public) and resolved["incident"]["status"] == "resolved"
    assert resolved["incident"]["id"] == str(incident["id"])
    assert resolved["incident_update"]["status"] == "resolved" and resolved["incident_update"]["body"] == "Fixed."
    created = by_type["incident.created"][0]
    assert created["data"]["incident"]["name"] == "Storage failure"
    assert created["timestamp"].endswith("Z")
    statuses = sorted(b["data"]["affected_component"]["new_status"] for b in by_type["component.updated"])
    assert statuses == ["major_outage", "operational"]
    components = client.get("/api/v2/components.json").get_json()["components"]
    assert set(by_type["component.updated"][0]["data"]["component"]) == set(components[0])
    # each delivery has a unique webhook-id; a retry would carry the same one
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 5


def test_maintenance_and_component_edits_are_events_too(app, admin, private_ok, receiver):
    made = register(admin, receiver.url, ["maintenance.scheduled", "component.updated"])
    component = admin.post("/components", json={"name": "Photos"}).get_json()
    admin.patch(f"/components/{component['id']}", json={"description": "Pictures"})
    admin.post("/maintenances", json={"name": "Upgrade", "message": "Planned.",
                                      "scheduled_for": "2030-01-01T01:00:00Z",
                                      "scheduled_until": "2030-01-01T03:00:00Z"})
    admin.post("/incidents", json={"name": "Not subscribed", "message": "m"})
    deliver()
    bodies = {r.verify(made["secret"])["type"]: json.loads(r.body) for r in receiver.received}
    assert set(bodies) == {"component.updated", "maintenance.scheduled"}
    assert bodies["component.updated"]["data"]["component"]["description"] == "Pictures"
    assert bodies["component.updated"]["data"]["affected_component"] is None
    planned = bodies["maintenance.scheduled"]["data"]["scheduled_maintenance"]
    assert planned["scheduled_for"] == "2030-01-01T01:00:00.000Z" and planned["status"] == "scheduled"


def test_a_rolled_back_change_emits_nothing(app, admin, private_ok, receiver):
    register(admin, receiver.url, ALL)
    incidents.create_incident(db.session, actor=Actor.cli("test"), data={"name": "Oops", "message": "m"})
    assert len(deliveries()) == 1  # queued in the change's own transaction...
    db.session.rollback()
    assert deliveries() == []  # ...and gone with it
    assert deliver() == 0 and receiver.received == []
    # A request that fails half-way commits nothing either: its incident and its event go together.
    assert admin.post("/incidents", json={"name": "x", "message": "y", "component_ids": [2147483647]}
                      ).status_code == 422
    assert deliveries() == []


def test_a_disabled_endpoint_gets_no_new_events(app, admin, private_ok, receiver):
    made = register(admin, receiver.url, ALL)
    admin.patch(f"/webhooks/{made['id']}", json={"enabled": False})
    admin.post("/incidents", json={"name": "Quiet", "message": "m"})
    assert deliveries() == []


def test_503_then_200_is_retried_with_backoff(app, admin, private_ok, receiver):
    made = register(admin, receiver.url, ["incident.created"])
    receiver.answer(503, b"busy")
    receiver.answer(429, b"slow down")
    admin.post("/incidents", json={"name": "Flaky", "message": "m"})
    before = utcnow()
    assert deliver() == 1
    [d] = deliveries()
    assert d.status.value == "pending" and d.attempts == 1 and d.last_status_code == 503
    assert timedelta(seconds=4) < d.next_attempt_at - before < timedelta(seconds=10)  # the first backoff: 5 s
    assert deliver() == 0  # not due yet
    make_due()
    assert deliver() == 1
    db.session.refresh(d)
    assert d.status.value == "pending" and d.last_status_code == 429
    assert timedelta(seconds=25) < d.next_attempt_at - utcnow() < timedelta(seconds=35)  # then 30 s
    make_due()
    assert deliver() == 1
    db.session.refresh(d)
    assert d.status.value == "delivered" and d.attempts == 3
    log = attempts(d.id)
    assert [(a.status_code, a.outcome) for a in log] == [(503, "retry"), (429, "retry"), (200, "delivered")]
    assert log[0].response_excerpt == "busy" and all(a.latency_ms >= 0 for a in log)
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1  # the same webhook-id on every retry
    for r in receiver.received:
        r.verify(made["secret"])
    assert db.session.get(WebhookEndpoint, made["id"]).failing_since is None  # the success cleared it


def test_the_retries_end_after_about_a_day(app, admin, private_ok, receiver):
    assert timedelta(hours=23) < timedelta(seconds=sum(delivery.RETRY_DELAYS)) < timedelta(hours=26)
    assert all(b >= a for a, b in zip(delivery.RETRY_DELAYS, delivery.RETRY_DELAYS[1:]))  # growing
    register(admin, receiver.url, ["incident.created"])
    admin.post("/incidents", json={"name": "Down", "message": "m"})
    for _ in range(delivery.MAX_ATTEMPTS):
        receiver.answer(500, b"no")
    now = utcnow()
    for _ in range(delivery.MAX_ATTEMPTS):
        assert deliver(now=now) == 1
        [d] = deliveries()
        now = d.next_attempt_at
    assert d.status.value == "failed" and d.attempts == delivery.MAX_ATTEMPTS
    assert attempts(d.id)[-1].outcome == "failed"


def test_a_4xx_other_than_429_is_final(app, admin, private_ok, receiver):
    register(admin, receiver.url, ["incident.created"])
    receiver.answer(410, b"gone")
    admin.post("/incidents", json={"name": "Once", "message": "m"})
    assert deliver() == 1
    [d] = deliveries()
    assert d.status.value == "failed" and d.last_status_code == 410 and d.finished_at is not None
    assert "410" in d.last_error
    make_due()
    assert deliver() == 0 and len(receiver.received) == 1


def test_an_endpoint_failing_for_a_day_is_disabled_and_the_operators_are_told(app, client, admin, private_ok,
                                                                             receiver):
    made = register(admin, receiver.url, ["incident.created"], description="Bridge")
    for _ in range(4):
        receiver.answer(500, b"down")
    admin.post("/incidents", json={"name": "A", "message": "m"})
    admin.post("/incidents", json={"name": "B", "message": "m"})
    now = utcnow()
    deliver(now=now)
    endpoint = db.session.get(WebhookEndpoint, made["id"])
    assert endpoint.enabled and endpoint.failing_since is not None
    # Still failing a day later: the next failure disables it.
    deliver(now=now + timedelta(hours=25))
    db.session.refresh(endpoint)
    assert not endpoint.enabled and "a day or more" in endpoint.disabled_reason
    assert {d.status.value for d in deliveries()} == {"failed"}  # what was waiting is not sent
    entry = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "webhook.disable")).one()
    assert entry.entity_id == str(made["id"]) and entry.actor.startswith("notifier")
    shown = admin.get(f"/webhooks/{made['id']}").get_json()
    assert shown["enabled"] is False and shown["disabled_reason"]
    # The console: a notice on the home page for every operator, the state on the webhooks page for admins.
    viewer = make_operator("viewer", email="viewer@example.com")
    web = app.test_client()
    sign_in(web, viewer)
    home = web.get("/ops/").get_data(as_text=True)
    assert "Webhooks disabled" in home and "Webhook %d (Bridge)" % made["id"] in home
    assert receiver.url not in home  # URLs may carry credentials: admins only
    admin_web = app.test_client()
    sign_in(admin_web, make_operator("admin", email="boss@example.com"))
    page = admin_web.get("/ops/webhooks").get_data(as_text=True)
    assert "Disabled" in page and "a day or more" in page
    assert deliver(now=now + timedelta(hours=26)) == 0
    # /metrics, for alerting: one endpoint disabled, nothing waiting.
    app.config["METRICS_TOKEN"] = "m" * 20
    metrics = client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 20}).get_data(as_text=True)
    assert 'lifeboat_webhook_endpoints{state="disabled"} 1.0' in metrics
    assert 'lifeboat_webhook_deliveries{status="pending"} 0.0' in metrics
    # Enabled again by an admin: the failure clock starts afresh.
    admin.patch(f"/webhooks/{made['id']}", json={"enabled": True})
    db.session.refresh(endpoint)
    assert endpoint.enabled and endpoint.failing_since is None and endpoint.disabled_reason is None


def test_a_name_that_resolves_to_loopback_is_refused_at_send_time(app, admin, receiver):
    # Registered as a public-looking name; at send time it resolves to 127.0.0.1 (a rebinding DNS, say).
    made = register(admin, f"https://hooks.example.test:{receiver.port}/hook", ["incident.created"])
    admin.post("/incidents", json={"name": "Rebound", "message": "m"})

    def rebinding(host, port, **kw):
        assert host == "hooks.example.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    assert deliver(resolver=rebinding) == 1
    [d] = deliveries(made["id"])
    assert d.status.value == "failed" and "resolves to 127.0.0.1, a loopback address" in d.last_error
    assert receiver.received == []  # never contacted
    assert attempts(d.id)[0].status_code is None


def test_with_the_setting_on_the_resolved_address_is_the_one_connected_to(app, admin, private_ok, receiver):
    made = register(admin, f"http://hooks.example.test:{receiver.port}/hook?x=1", ["incident.created"])
    admin.post("/incidents", json={"name": "Pinned", "message": "m"})
    seen = []

    def resolver(host, port, **kw):
        seen.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    assert deliver(resolver=resolver) == 1
    assert seen == ["hooks.example.test"]  # resolved once, then that address is connected to
    got = receiver.received[0]
    assert got.headers["Host"] == f"hooks.example.test:{receiver.port}" and got.path == "/hook?x=1"
    got.verify(made["secret"])


def test_the_answer_is_read_up_to_the_size_cap(app, admin, private_ok, receiver):
    register(admin, receiver.url, ["incident.created"])
    receiver.answer(200, b"x" * (1024 * 1024))
    admin.post("/incidents", json={"name": "Chatty", "message": "m"})
    assert deliver() == 1
    [d] = deliveries()
    [a] = attempts(d.id)
    assert d.status.value == "delivered" and len(a.response_excerpt) == 1024
    assert "the rest was not read" in a.error


def test_an_answer_slower_than_the_time_cap_is_a_timeout_and_retried(app, admin, private_ok, receiver):
    app.config["WEBHOOKS_TIMEOUT_SECONDS"] = 0.5
    register(admin, receiver.url, ["incident.created"])
    receiver.answer(200, b"late", delay=2)
    admin.post("/incidents", json={"name": "Slow", "message": "m"})
    assert deliver() == 1
    [d] = deliveries()
    [a] = attempts(d.id)
    assert d.status.value == "pending" and a.outcome == "retry" and "timeout" in a.error
    assert a.latency_ms < 1500


def test_a_connection_refused_is_retried(app, admin, private_ok):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    register(admin, f"http://127.0.0.1:{port}/x", ["incident.created"])
    admin.post("/incidents", json={"name": "Nobody home", "message": "m"})
    assert deliver() == 1
    [d] = deliveries()
    assert d.status.value == "pending" and "connect" in d.last_error


def test_the_notifier_worker_delivers_them(app, admin, private_ok, receiver):
    from notifications import worker

    made = register(admin, receiver.url, ["incident.created"])
    admin.post("/incidents", json={"name": "Via the worker", "message": "m"})
    db.session.commit()
    worker.run_once()
    assert receiver.received[0].verify(made["secret"])["data"]["incident"]["name"] == "Via the worker"


def _certificate(tmp_path, name: str) -> tuple[str, str]:
    """A self-signed certificate for `name` (openssl), as the receiver's and as the only CA we trust."""
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


@pytest.mark.parametrize("certified, delivered", [("hooks.example.test", True), ("other.example.test", False)])
def test_https_connects_to_the_checked_address_with_the_names_sni_and_certificate(app, admin, tmp_path, certified,
                                                                                 delivered):
    cert, key = _certificate(tmp_path, certified)
    tls = webhook_receiver.start(tls=(cert, key))
    try:
        made = register(admin, f"https://hooks.example.test:{tls.port}/hook", ["incident.created"])
        admin.post("/incidents", json={"name": "Over TLS", "message": "m"})

        def resolver(host, port, **kw):  # the name resolves to the receiver (allowed: the setting is on)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

        app.config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"] = True
        assert deliver(resolver=resolver, ca_certs=cert) == 1
        [d] = deliveries()
        if delivered:  # connected to 127.0.0.1, yet the certificate was checked against the URL's name
            assert d.status.value == "delivered"
            got = tls.received[0]
            assert got.headers["Host"] == f"hooks.example.test:{tls.port}"
            got.verify(made["secret"])
        else:  # a certificate for another name: refused by TLS, retried later, nothing received
            assert d.status.value == "pending" and tls.received == []
            assert "certificate" in d.last_error.lower() or "hostname" in d.last_error.lower()
    finally:
        tls.server.shutdown()
        tls.server.server_close()


def test_an_outcome_for_a_delivery_deleted_meanwhile_is_dropped_quietly(app, admin, private_ok, receiver):
    made = register(admin, receiver.url, ["incident.created"])
    admin.post("/incidents", json={"name": "Gone", "message": "m"})
    claimed = delivery.claim(db.session, now=utcnow(), limit=5)
    assert len(claimed) == 1
    admin.delete(f"/webhooks/{made['id']}")  # deleted while its delivery is in flight
    from notifications.outbound.transport import Answer

    db.session.commit()
    assert delivery.finish(db.session, claimed[0], Answer(200, 5, "ok"), now=utcnow()) == "lost"
    db.session.commit()
    assert deliveries() == []


def test_a_lease_that_ran_out_lets_another_worker_attempt_it_and_the_late_outcome_is_not_recorded(
        app, admin, private_ok, receiver):
    register(admin, receiver.url, ["incident.created"])
    admin.post("/incidents", json={"name": "Slow worker", "message": "m"})
    now = utcnow()
    [first] = delivery.claim(db.session, now=now, limit=5)
    assert delivery.claim(db.session, now=now, limit=5) == []  # leased: nobody else takes it
    later = now + delivery.LEASE + timedelta(seconds=1)
    [second] = delivery.claim(db.session, now=later, limit=5)  # the first worker died, say
    assert second.id == first.id and second.attempts == 2
    from notifications.outbound.transport import Answer

    assert delivery.finish(db.session, first, Answer(200, 5, "ok"), now=later) == "lost"
    assert delivery.finish(db.session, second, Answer(200, 5, "ok"), now=later) == "delivered"
    db.session.commit()
    [d] = deliveries()
    assert d.status.value == "delivered" and sorted(a.attempt for a in attempts(d.id)) == [1, 2]


@pytest.mark.slow  # starts the real notifier command
def test_the_running_notifier_process_delivers_within_seconds_and_stops_cleanly(app, admin, database_url, receiver,
                                                                               twilio_standin):
    import signal

    from tests.notifications.processes import start_notifier, wait_until

    app.config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"] = True
    made = register(admin, receiver.url, ["incident.created"])
    admin.post("/incidents", json={"name": "Live", "message": "m"})
    db.session.commit()
    process = start_notifier(database_url, twilio_standin, WEBHOOKS_ALLOW_PRIVATE_TARGETS="true")
    try:
        assert wait_until(lambda: receiver.received, 20, process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        process.kill()
    assert receiver.received[0].verify(made["secret"])["data"]["incident"]["name"] == "Live"
    db.session.expire_all()
    assert [d.status.value for d in deliveries()] == ["delivered"]


def test_finished_deliveries_are_pruned_after_the_retention_with_their_log(app, admin, private_ok, receiver):
    from core import periodic

    register(admin, receiver.url, ["incident.created"])
    receiver.answer(503)
    admin.post("/incidents", json={"name": "Delivered", "message": "m"})
    admin.post("/incidents", json={"name": "Waiting", "message": "m"})
    deliver()  # one delivered, one waiting for its retry
    assert sorted(d.status.value for d in deliveries()) == ["delivered", "pending"]
    result = periodic.run_due(now=utcnow() + timedelta(days=31))["webhooks.prune"]
    assert result == "1 finished webhook deliveries deleted"
    [left] = deliveries()
    assert left.status.value == "pending" and len(attempts(left.id)) == 1
    from notifications.outbound.models import WebhookAttempt
    assert db.session.query(WebhookAttempt).count() == 1  # the delivered one's attempt went with it


def test_two_workers_draining_at_once_send_each_delivery_once(app, admin, private_ok, receiver):
    import threading

    register(admin, receiver.url, ["incident.created"])
    register(admin, receiver.url, ["incident.created"])
    for i in range(15):
        admin.post("/incidents", json={"name": f"Busy {i}", "message": "m"})
    db.session.commit()
    workers = [delivery.Deliverer.from_config(app.config, db.engine, batch=4, concurrency=2) for _ in range(2)]
    done = []
    threads = [threading.Thread(target=lambda w=w: done.append(w.run_once())) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(done) == 30 and len(receiver.received) == 30
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 30
    db.session.expire_all()
    assert {d.status.value for d in deliveries()} == {"delivered"}
