"""The OpenAPI document is valid, describes every route, and matches what the API really answers.

`ApiClient` (used by the other API tests too) checks every answer against the document: the status
must be documented for that operation and the body must validate against its schema."""
import re
from urllib.parse import unquote

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from core.db import db
from ops import service as ops_service
from ops.audit import Actor
from tests.conftest import make_operator

PREFIX = "/api/ops/v1"
DOC_URI = "urn:lifeboat:ops-openapi"
WRITE_OR_READ = {"GET", "POST", "PATCH", "PUT", "DELETE"}


def _template(rule: str) -> str:
    """"/api/ops/v1/incidents/<int:incident_id>" -> "/incidents/{incident_id}"."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)[len(PREFIX):]


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


class ApiClient:
    """Calls the ops API with a bearer token and checks each answer against the OpenAPI document."""

    def __init__(self, client, secret: str | None):
        self.client = client
        self.secret = secret
        self.doc = client.get(f"{PREFIX}/openapi.json").get_json()
        self.registry = Registry().with_resource(
            DOC_URI, Resource.from_contents(self.doc, default_specification=DRAFT202012))
        self.seen: set[tuple[str, str]] = set()

    def request(self, method: str, path: str, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if self.secret:
            headers.setdefault("Authorization", f"Bearer {self.secret}")
        response = self.client.open(PREFIX + path, method=method, headers=headers, **kwargs)
        self.check(method, path.split("?")[0], response)
        return response

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def check(self, method: str, path: str, response) -> None:
        """Assert the answer is documented for this operation and matches its schema.

        The operation is found the way an OpenAPI client finds it, in the document: a path parameter is one
        path segment (a "/" inside a value travels as %2F). An address no path describes must answer 404, a
        method its path does not describe 405, both with the JSON error; a documented operation must answer
        a status it documents (405 is allowed too when a path parameter breaks its documented schema: the
        URL then belongs to another route, as GET .../accounts/A1%2Frecovery does)."""
        template = self.template(path)
        if template is None or method.lower() not in self.doc["paths"][template]:
            assert response.status_code == (404 if template is None else 405), (method, path, response.status_code)
            self._validate(response.get_json(), _pointer("components", "schemas", "Error"))
            return
        operation = self.doc["paths"][template][method.lower()]
        status = str(response.status_code)
        if status == "405" and not self.path_params_fit(template, path):
            self._validate(response.get_json(), _pointer("components", "schemas", "Error"))
            return
        assert status in operation["responses"], f"{method} {template} answered {status}, which is not documented"
        self.seen.add((template, method.lower()))
        answer = operation["responses"][status]
        pointer = _pointer("paths", template, method.lower(), "responses", status)
        if "$ref" in answer:
            name = answer["$ref"].rsplit("/", 1)[1]
            answer, pointer = self.doc["components"]["responses"][name], _pointer("components", "responses", name)
        if "content" not in answer:
            assert response.get_data() == b""
            return
        assert response.mimetype == "application/json"
        self._validate(response.get_json(), pointer + _pointer("content", "application/json", "schema"))

    def template(self, path: str) -> str | None:
        """The documented path template that `path` (as sent, percent-encoded) matches, literal ones first."""
        matches = [t for t in self.doc["paths"] if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(t)), path)]
        return min(matches, key=lambda t: t.count("{"), default=None)

    def path_params_fit(self, template: str, path: str) -> bool:
        """Whether each path parameter's value (decoded) fits the schema the document gives it."""
        names = re.findall(r"\{([^}]+)\}", template)
        values = re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template)), path).groups()
        params = {p["name"]: p["schema"] for item in self.doc["paths"][template].values()
                  for p in item.get("parameters", []) if p.get("in") == "path"}
        for name, raw in zip(names, values):
            value = unquote(raw)
            if params[name].get("type") == "integer":
                if not re.fullmatch(r"-?[0-9]+", value):
                    return False
                value = int(value)
            if not Draft202012Validator(params[name]).is_valid(value):
                return False
        return True

    def _validate(self, body, pointer: str) -> None:
        validator = Draft202012Validator({"$ref": DOC_URI + "#" + pointer}, registry=self.registry,
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, errors


@pytest.fixture
def api(client, api_token):
    """An ApiClient with an operator's token."""
    return ApiClient(client, api_token[1])


def api_operations(app) -> set[tuple[str, str]]:
    """(template, method) for every route of the ops API."""
    return {(_template(rule.rule), method.lower())
            for rule in app.url_map.iter_rules() if rule.rule.startswith(PREFIX + "/")
            for method in rule.methods & WRITE_OR_READ}


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
