"""Idempotency-Key on POST: a retry returns the first answer and does not do the work twice."""
import threading

import sqlalchemy as sa

from core.db import db
from incidents.models import Component, Incident
from ops import service as ops_service
from ops.audit import Actor
from ops.models import AuditEntry, IdempotencyRecord
from tests.conftest import make_operator
from tests.ops.api_client import PREFIX, ApiClient

BODY = {"name": "Contacts sync failing", "impact": "major", "message": "We are investigating."}


def _count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_a_retry_with_the_same_key_returns_the_first_answer_without_a_second_incident(api):
    first = api.post("/incidents", json=BODY, headers={"Idempotency-Key": "retry-1"})
    again = api.post("/incidents", json=BODY, headers={"Idempotency-Key": "retry-1"})
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert _count(Incident) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action == "incident.create")) == 1


def test_the_stored_answer_is_kept_with_the_change(api):
    response = api.post("/components", json={"name": "Photos"}, headers={"Idempotency-Key": "k"})
    record = db.session.scalar(sa.select(IdempotencyRecord))
    assert (record.key, record.method, record.path, record.status_code) == ("k", "POST", f"{PREFIX}/components", 201)
    assert record.response_body == response.get_data(as_text=True)


def test_without_a_key_two_posts_make_two_incidents(api):
    assert api.post("/incidents", json=BODY).status_code == 201
    assert api.post("/incidents", json=BODY).status_code == 201
    assert _count(Incident) == 2


def test_reusing_a_key_for_a_different_body_is_refused(api):
    assert api.post("/incidents", json=BODY, headers={"Idempotency-Key": "same"}).status_code == 201
    response = api.post("/incidents", json={**BODY, "name": "Something else"}, headers={"Idempotency-Key": "same"})
    assert response.status_code == 422
    assert "different request" in response.get_json()["error"]["message"]
    assert _count(Incident) == 1


def test_reusing_a_key_on_another_route_is_refused(api):
    assert api.post("/components", json={"name": "Photos"}, headers={"Idempotency-Key": "same"}).status_code == 201
    response = api.post("/component-groups", json={"name": "Photos"}, headers={"Idempotency-Key": "same"})
    assert response.status_code == 422


def test_a_key_longer_than_255_characters_is_refused(api):
    response = api.post("/incidents", json=BODY, headers={"Idempotency-Key": "k" * 256})
    assert response.status_code == 400
    assert "255" in response.get_json()["error"]["message"]
    assert _count(Incident) == 0
    assert api.post("/incidents", json=BODY, headers={"Idempotency-Key": "k" * 255}).status_code == 201


def test_a_refused_request_does_not_use_up_its_key(api):
    bad = api.post("/incidents", json={**BODY, "impact": "enormous"}, headers={"Idempotency-Key": "fix-and-retry"})
    assert bad.status_code == 422
    assert _count(IdempotencyRecord) == 0
    assert api.post("/incidents", json=BODY, headers={"Idempotency-Key": "fix-and-retry"}).status_code == 201


def test_keys_belong_to_one_token(client, api):
    other = make_operator("operator", email="other@example.com")
    _token, secret = ops_service.create_token(db.session, actor=Actor.cli("test"), operator_id=other.id)
    db.session.commit()
    api.post("/incidents", json=BODY, headers={"Idempotency-Key": "shared"})
    response = ApiClient(client, secret).post("/incidents", json=BODY, headers={"Idempotency-Key": "shared"})
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
    assert _count(Incident) == 2


def test_concurrent_duplicates_make_one_component_and_never_a_500(app, api_token):
    """Two clients racing with the same key: the unique (token, key) lets one do the work;
    the other answers with the stored result (or 409 while the first is still running)."""
    secret = api_token[1]
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def call():
        with app.test_client() as c:
            barrier.wait()
            response = c.post(f"{PREFIX}/components", json={"name": "Email"},
                              headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "race"})
            statuses.append(response.status_code)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db.session.expire_all()
    assert _count(Component) == 1
    assert set(statuses) <= {201, 409} and 201 in statuses, statuses


def test_every_post_route_honours_idempotency_keys(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIX) and "POST" in rule.methods:
            view = app.view_functions[rule.endpoint]
            # An import runs as a job that commits its own outcome; it is idempotent by nature instead.
            assert getattr(view, "api_transactional", False) or getattr(view, "api_naturally_idempotent", False), \
                f"{rule.rule} is neither @transactional nor naturally idempotent"
