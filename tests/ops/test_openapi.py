"""The OpenAPI document is valid, describes every route, and matches what the API really answers (through
tests/ops/api_client.ApiClient, which checks every answer against the document)."""
import re

from openapi_spec_validator import validate

from core.db import db
from ops import service as ops_service
from ops.audit import Actor
from tests.conftest import make_operator
from tests.ops.api_client import PREFIX, ApiClient, api_operations


def test_the_document_is_public_and_a_valid_openapi_3_1_description(client):
    response = client.get(f"{PREFIX}/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"].startswith("3.1")
    validate(doc)
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "An API token (lb_...)."}


def test_every_api_route_is_documented_and_every_documented_operation_exists(app, client):
    doc = client.get(f"{PREFIX}/openapi.json").get_json()
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert api_operations(app) == documented


def test_every_operation_but_the_document_needs_a_token(app, client):
    api = ApiClient(client, None)
    for template, method in sorted(api_operations(app)):
        path = re.sub(r"\{[^}]+\}", "1", template)
        response = api.request(method.upper(), path, json={} if method in ("post", "patch") else None)
        expected = 200 if template == "/openapi.json" else 401
        assert response.status_code == expected, (method, template)


def test_request_schemas_describe_what_the_api_refuses(api):
    doc = api.doc
    incident_create = doc["components"]["schemas"]["IncidentCreate"]
    assert incident_create["additionalProperties"] is False
    assert set(incident_create["required"]) == {"name", "message"}
    response = api.post("/incidents", json={"name": "x", "message": "y", "impact": "apocalyptic"})
    assert response.status_code == 422
    assert "impact" in response.get_json()["error"]["fields"]


def test_a_whole_session_of_calls_matches_the_document_for_every_operation(app, client, api_token):
    """Walk every operation, success and the usual errors; ApiClient checks each answer."""
    api = ApiClient(client, api_token[1])
    api.get("/openapi.json")
    group = api.post("/component-groups", json={"name": "Sync", "description": "Device sync"}).get_json()
    api.get("/component-groups")
    contacts = api.post("/components", json={"name": "Contacts", "group_id": group["id"]}).get_json()
    photos = api.post("/components", json={"name": "Photos"}).get_json()
    assert api.patch(f"/components/{photos['id']}", json={"description": "Pictures"}).status_code == 200
    api.get("/components")
    api.get(f"/components/{contacts['id']}")
    incident = api.post("/incidents", json={
        "name": "Storage failure", "impact": "critical", "message": "We are looking into it.",
        "component_ids": [contacts["id"]], "component_statuses": {str(contacts["id"]): "major_outage"},
    }).get_json()
    api.post(f"/incidents/{incident['id']}/updates", json={"status": "resolved", "message": "Restored."})
    api.get("/incidents?status=closed")
    api.get(f"/incidents/{incident['id']}")
    maintenance = api.post("/maintenances", json={
        "name": "Database upgrade", "message": "Planned.", "component_ids": [photos["id"]],
        "scheduled_for": "2030-01-01T01:00:00Z", "scheduled_until": "2030-01-01T03:00:00+01:00",
    }).get_json()
    api.post(f"/maintenances/{maintenance['id']}/updates", json={"status": "in_progress", "message": "Started."})
    api.get("/maintenances")
    api.get(f"/maintenances/{maintenance['id']}")
    assert api.delete(f"/components/{photos['id']}").status_code == 204
    # and the error answers, which must be documented too
    assert api.get("/incidents/999").status_code == 404
    assert api.post("/incidents", data="{", content_type="application/json").status_code == 400
    assert api.post("/incidents", data="name=x", content_type="text/plain").status_code == 415
    assert api.post("/incidents", json={"name": 3}).status_code == 422
    assert api.request("PUT", "/incidents", json={}).status_code == 405
    # This session covers the incident domain; each other domain's tests cover its own operations.
    doc = api.get("/openapi.json").get_json()
    ours = {(path, method) for path, item in doc["paths"].items() for method, op in item.items()
            if set(op.get("tags", [])) & {"meta", "incidents", "components", "maintenance"}}
    assert len(ours) > 10 and ours <= api_operations(app) and ours <= api.seen


def test_a_viewer_token_answers_are_documented_too(client):
    viewer = make_operator("viewer", email="viewer@example.com")
    _token, secret = ops_service.create_token(db.session, actor=Actor.cli("test"), operator_id=viewer.id)
    db.session.commit()
    api = ApiClient(client, secret)
    assert api.get("/incidents").status_code == 200
    assert api.post("/components", json={"name": "Email"}).status_code == 403
