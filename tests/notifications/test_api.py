"""Broadcast routes of the ops API, checked against the OpenAPI document."""
import sqlalchemy as sa

from core.db import db
from notifications.models import Broadcast, Notification, NotificationStatus
from ops import service as ops_service
from ops.audit import Actor
from tests.conftest import make_operator
from tests.notifications.helpers import add_accounts, make_incident, rows
from tests.ops.api_client import ApiClient


def _incident_with(n=3):
    incident = make_incident()
    add_accounts(incident, n)
    db.session.commit()
    return incident


def test_a_broadcast_is_created_with_201_and_its_progress_can_be_read(app, api):  # noqa: F811
    incident = _incident_with(3)
    response = api.post(f"/incidents/{incident.id}/broadcasts",
                        json={"message": "Fixed. {{ name }}", "channels": ["sms", "email"], "urgent": True})
    assert response.status_code == 201
    body = response.get_json()
    assert body["recipients"] == 6 and body["counts"]["queued"] == 6 and body["kind"] == "broadcast"
    assert response.headers["Location"].endswith(f"/api/ops/v1/broadcasts/{body['id']}")
    assert all(r.urgent for r in rows(broadcast_id=body["id"]))
    again = api.get(f"/broadcasts/{body['id']}")
    assert again.status_code == 200 and again.get_json()["counts"]["queued"] == 6
    assert api.get("/broadcasts/999").status_code == 404
    assert api.post("/incidents/999/broadcasts", json={"message": "x", "channels": ["sms"]}).status_code == 404


def test_the_same_request_with_an_idempotency_key_queues_once(app, api):  # noqa: F811
    incident = _incident_with(2)
    request = {"json": {"message": "Hi", "channels": ["sms"]}, "headers": {"Idempotency-Key": "k-1"}}
    first = api.post(f"/incidents/{incident.id}/broadcasts", **request)
    second = api.post(f"/incidents/{incident.id}/broadcasts", **request)
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true" and second.get_json()["id"] == first.get_json()["id"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Broadcast)) == 1
    assert len(rows()) == 2


def test_bad_channels_and_audiences_answer_422_with_fields(app, api):  # noqa: F811
    incident = _incident_with(1)
    url = f"/incidents/{incident.id}/broadcasts"
    r = api.post(url, json={"message": "x", "channels": ["fax"]})
    assert r.status_code == 422 and r.get_json()["error"]["fields"] == {"channels[0]": "Choose one of: sms, email."}
    r = api.post(url, json={"message": "x", "channels": []})
    assert r.status_code == 422 and "channels" in r.get_json()["error"]["fields"]
    r = api.post(url, json={"message": "x", "channels": ["sms"], "audience": "everyone"})
    assert r.status_code == 422 and any(k.startswith("audience") for k in r.get_json()["error"]["fields"])
    r = api.post(url, json={"message": "x", "channels": ["sms"], "audience": {"states": ["sunk"]}})
    assert r.status_code == 422 and any(k.startswith("audience") for k in r.get_json()["error"]["fields"])
    r = api.post(url, json={"message": "x", "channels": ["sms"], "audience": {"categories": ["music"]}})
    assert r.status_code == 422 and "categories" in r.get_json()["error"]["fields"]["audience"]
    r = api.post(url, json={"message": "{{ name.__class__ }}", "channels": ["sms"]})
    assert r.status_code == 422 and "message" in r.get_json()["error"]["fields"]
    assert rows() == []


def test_retry_requeues_failed_messages(app, api):  # noqa: F811
    incident = _incident_with(2)
    created = api.post(f"/incidents/{incident.id}/broadcasts", json={"message": "x", "channels": ["sms"]})
    bid = created.get_json()["id"]
    db.session.execute(sa.update(Notification).values(status=NotificationStatus.FAILED, error_code="30003",
                                                      error_message="Unreachable"))
    db.session.commit()
    assert api.get(f"/broadcasts/{bid}").get_json()["failures"] == [
        {"status": "failed", "code": "30003", "message": "Unreachable", "count": 2}]
    retried = api.post(f"/broadcasts/{bid}/retry")
    assert retried.status_code == 200 and retried.get_json()["requeued"] == 2
    assert retried.get_json()["counts"]["queued"] == 2


def test_a_viewer_reads_but_cannot_send(app, client):
    incident = _incident_with(1)
    viewer = make_operator("viewer", email="v@example.com")
    _t, secret = ops_service.create_token(db.session, actor=Actor.cli("test"), operator_id=viewer.id)
    db.session.commit()
    api = ApiClient(client, secret)  # noqa: F811
    assert api.post(f"/incidents/{incident.id}/broadcasts",
                    json={"message": "x", "channels": ["sms"]}).status_code == 403
    assert api.get("/broadcasts/1").status_code == 404


def test_every_broadcast_operation_answers_as_documented(app, api):  # noqa: F811
    incident = _incident_with(1)
    bid = api.post(f"/incidents/{incident.id}/broadcasts", json={"message": "x", "channels": ["sms"]}).get_json()["id"]
    api.get(f"/broadcasts/{bid}")
    api.post(f"/broadcasts/{bid}/retry")
    api.post("/broadcasts/999/retry")
    ours = {(path, method) for path, item in api.doc["paths"].items() for method, op in item.items()
            if "broadcasts" in op.get("tags", [])}
    assert len(ours) == 3 and ours <= api.seen
    paths = api.doc["paths"]
    assert set(paths["/incidents/{incident_id}/broadcasts"]) == {"post"}
    assert set(paths["/broadcasts/{broadcast_id}"]) == {"get"}
    assert set(paths["/broadcasts/{broadcast_id}/retry"]) == {"post"}
    assert api.doc["components"]["schemas"]["BroadcastCreate"]["required"] == ["message", "channels"]
