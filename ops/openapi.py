"""The OpenAPI 3.1 description of the ops API, built from per-domain pieces.

A domain adds its paths and schemas with `@piece`: a function returning {"tags", "paths", "schemas"}.
Request schemas are self-contained (no $ref), because `ops.api.json_body` checks bodies against them:
what the document says the API accepts is exactly what it accepts.
"""
from collections.abc import Callable

from incidents.models import (
    INCIDENT_STATUSES, ComponentStatus, Impact, IncidentKind, IncidentStatus,
)

_pieces: list[Callable[[], dict]] = []
_cache: dict[int, dict] = {}


def piece(build: Callable[[], dict]) -> Callable[[], dict]:
    """Register a function returning a domain's {"tags", "paths", "schemas"} for the document."""
    _pieces.append(build)
    _cache.clear()
    return build


def document() -> dict:
    """The whole OpenAPI 3.1 document (built once per set of pieces)."""
    if len(_pieces) not in _cache:
        doc = _base()
        for build in _pieces:
            part = build()
            doc["tags"].extend(part.get("tags", []))
            doc["paths"].update(part.get("paths", {}))
            doc["components"]["schemas"].update(part.get("schemas", {}))
        _cache.clear()
        _cache[len(_pieces)] = doc
    return _cache[len(_pieces)]


def schema(name: str) -> dict:
    """One schema of the document by name (request schemas are used to check bodies)."""
    return document()["components"]["schemas"][name]


# ---- building blocks for pieces -----------------------------------------------------------------

DATE_TIME_OUT = {"type": "string", "format": "date-time", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$",
                 "description": "UTC, ISO 8601 with a Z."}
DATE_TIME_IN = {"type": "string", "format": "date-time",
                "description": "ISO 8601 with a time zone, e.g. 2026-11-26T21:00:00Z."}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema_: dict) -> dict:
    """The schema, or null (OpenAPI 3.1 style: a type list, or oneOf for a $ref)."""
    if "$ref" in schema_:
        return {"oneOf": [schema_, {"type": "null"}]}
    return {**schema_, "type": [schema_["type"], "null"]}


def obj(properties: dict, required: list[str] | None = None, **extra) -> dict:
    """A closed object: unknown fields are refused in requests and absent from responses."""
    out = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        out["required"] = required
    return {**out, **extra}


def enum(values) -> dict:
    return {"type": "string", "enum": [getattr(v, "value", v) for v in values]}


def path_id(name: str, what: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": f"The {what}'s id.",
            "schema": {"type": "integer"}}


def query(name: str, schema_: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema_}


def operation(summary: str, tag: str, op_id: str, *, ok: tuple[int, dict | None], body: str | None = None,
              params: list | None = None, not_found: bool = False) -> dict:
    """An authenticated operation with its success answer and every error answer it can give."""
    status, ok_schema = ok
    answer: dict = {"description": {200: "OK", 201: "Created", 204: "Deleted"}[status]}
    if ok_schema is not None:
        answer["content"] = {"application/json": {"schema": ok_schema}}
    if status == 201:
        answer["headers"] = {"Location": {"description": "The new resource's address.",
                                          "schema": {"type": "string"}}}
    responses = {str(status): answer, "401": _error_ref("Unauthorized"), "403": _error_ref("Forbidden")}
    params = list(params or [])
    if not_found:
        responses["404"] = _error_ref("NotFound")
    if any(p.get("in") == "query" for p in params):
        responses["422"] = _error_ref("Unprocessable")
    if body is not None:
        responses |= {"400": _error_ref("BadRequest"), "415": _error_ref("UnsupportedMediaType"),
                      "422": _error_ref("Unprocessable")}
    if body is not None and status == 201:
        params.append({"$ref": "#/components/parameters/IdempotencyKey"})
        responses["409"] = _error_ref("Conflict")
        answer["headers"]["Idempotent-Replayed"] = {
            "description": "\"true\" when this is the stored answer to an earlier request with the same key.",
            "schema": {"type": "string", "enum": ["true"]}}
    op = {"summary": summary, "operationId": op_id, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(body)}}}
    return op


def _error_ref(name: str) -> dict:
    return {"$ref": f"#/components/responses/{name}"}


def _base() -> dict:
    error_responses = {
        "BadRequest": "The body is not JSON, is not an object, or the Idempotency-Key is too long.",
        "Unauthorized": "No bearer token, or it is unknown, revoked, or its operator is disabled.",
        "Forbidden": "The token's operator does not have the role this needs.",
        "NotFound": "No such resource.",
        "Conflict": "A request with the same Idempotency-Key is still in progress.",
        "UnsupportedMediaType": "The body was not sent as application/json.",
        "Unprocessable": "Fields with wrong types or values (see error.fields), or an Idempotency-Key "
                         "reused for a different request.",
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Lifeboat ops API", "version": "1.0.0",
                 "description": "Operator API: incidents, updates, components and maintenance. Send "
                                "`Authorization: Bearer <token>` (create one with `flask --app app tokens "
                                "create EMAIL`). POST honours `Idempotency-Key`: a retry with the same key "
                                "and body answers the first result with `Idempotent-Replayed: true`."},
        "servers": [{"url": "/api/ops/v1"}],
        "security": [{"bearerAuth": []}],
        "tags": [],
        "paths": {
            "/openapi.json": {"get": {
                "summary": "This document", "operationId": "getOpenapi", "tags": ["meta"], "security": [],
                "responses": {"200": {"description": "The OpenAPI 3.1 document.",
                                      "content": {"application/json": {"schema": {"type": "object"}}}}},
            }},
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "An API token (lb_...)."}},
            "parameters": {"IdempotencyKey": {
                "name": "Idempotency-Key", "in": "header", "required": False,
                "description": "Makes a retried POST return the first answer instead of doing the work again.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255}}},
            "responses": {name: {"description": text, "content": {"application/json": {"schema": ref("Error")}}}
                          for name, text in error_responses.items()}
                         | {"Unauthorized": {
                             "description": error_responses["Unauthorized"],
                             "headers": {"WWW-Authenticate": {"description": 'Bearer realm="lifeboat"',
                                                              "schema": {"type": "string"}}},
                             "content": {"application/json": {"schema": ref("Error")}}}},
            "schemas": {"Error": obj({"error": obj({
                "status": {"type": "integer"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"},
                           "description": "What to fix, per field."},
            }, ["status", "message"])}, ["error"])},
        },
    }


# ---- incidents, updates, components, groups, maintenance ----------------------------------------

@piece
def _incidents() -> dict:
    component_statuses = {"type": "object", "propertyNames": {"pattern": "^[0-9]+$"},
                          "additionalProperties": enum(ComponentStatus),
                          "description": 'New component statuses: {"<component id>": "<status>"}.'}
    name = {"type": "string", "minLength": 1, "maxLength": 200}
    message = {"type": "string", "minLength": 1, "maxLength": 20000, "description": "Markdown, shown publicly."}
    ids = {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}
    notify = {"type": "boolean", "description": "Send this update to subscribers."}
    update_request = obj({
        "status": enum(IncidentStatus), "message": message, "component_statuses": component_statuses,
        "notify": notify, "urgent": {"type": "boolean"}, "impact": enum(Impact)}, ["message"])
    component_fields = {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "description": {"type": "string", "maxLength": 2000}, "status": enum(ComponentStatus),
        "position": {"type": "integer"}, "group_id": {"type": ["integer", "null"]},
        "showcase": {"type": "boolean"}, "only_show_if_degraded": {"type": "boolean"}}
    list_params = [query("status", enum(["open", "closed"]), "Only open or only closed ones."),
                   query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}, "Page size."),
                   query("offset", {"type": "integer", "minimum": 0, "default": 0}, "Rows to skip.")]
    incident_id, maintenance_id = path_id("incident_id", "incident"), path_id("maintenance_id", "maintenance")
    component_id = path_id("component_id", "component")
    schemas = {
        "Component": obj({
            "id": {"type": "integer"}, "name": {"type": "string"}, "description": {"type": "string"},
            "status": enum(ComponentStatus), "position": {"type": "integer"},
            "group_id": {"type": ["integer", "null"]}, "showcase": {"type": "boolean"},
            "only_show_if_degraded": {"type": "boolean"},
            "start_date": {"type": ["string", "null"], "format": "date"},
            "created_at": DATE_TIME_OUT, "updated_at": DATE_TIME_OUT}),
        "ComponentGroup": obj({
            "id": {"type": "integer"}, "name": {"type": "string"}, "description": {"type": "string"},
            "position": {"type": "integer"}, "components": {"type": "array", "items": {"type": "integer"}},
            "created_at": DATE_TIME_OUT, "updated_at": DATE_TIME_OUT}),
        "AffectedComponent": obj({
            "code": {"type": "string"}, "component_id": {"type": "integer"}, "name": {"type": "string"},
            "old_status": enum(ComponentStatus), "new_status": enum(ComponentStatus)}),
        "IncidentUpdate": obj({
            "id": {"type": "integer"}, "incident_id": {"type": "integer"}, "status": enum(IncidentStatus),
            "body": {"type": "string"}, "created_at": DATE_TIME_OUT, "updated_at": DATE_TIME_OUT,
            "display_at": DATE_TIME_OUT, "deliver_notifications": {"type": "boolean"},
            "urgent": {"type": "boolean"}, "author": {"type": "string"},
            "affected_components": {"type": ["array", "null"], "items": ref("AffectedComponent")}}),
        "Incident": obj({
            "id": {"type": "integer"}, "kind": enum(IncidentKind), "name": {"type": "string"},
            "status": enum(IncidentStatus), "impact": enum(Impact), "shortlink": {"type": "string"},
            "created_at": DATE_TIME_OUT, "updated_at": DATE_TIME_OUT, "started_at": DATE_TIME_OUT,
            "monitoring_at": nullable(DATE_TIME_OUT), "resolved_at": nullable(DATE_TIME_OUT),
            "scheduled_for": nullable(DATE_TIME_OUT), "scheduled_until": nullable(DATE_TIME_OUT),
            "components": {"type": "array", "items": ref("Component")},
            "incident_updates": {"type": "array", "items": ref("IncidentUpdate"),
                                 "description": "The timeline, newest first."}}),
        "IncidentList": obj({"incidents": {"type": "array", "items": ref("Incident")},
                             "limit": {"type": "integer"}, "offset": {"type": "integer"}}),
        "MaintenanceList": obj({"maintenances": {"type": "array", "items": ref("Incident")},
                                "limit": {"type": "integer"}, "offset": {"type": "integer"}}),
        "ComponentList": obj({"components": {"type": "array", "items": ref("Component")}}),
        "ComponentGroupList": obj({"component_groups": {"type": "array", "items": ref("ComponentGroup")}}),
        "IncidentCreate": obj({
            "name": name, "impact": enum(Impact), "status": enum(INCIDENT_STATUSES[:4]), "message": message,
            "component_ids": ids, "component_statuses": component_statuses, "notify": notify,
            "urgent": {"type": "boolean"}, "started_at": DATE_TIME_IN}, ["name", "message"]),
        "IncidentUpdateCreate": update_request,
        "MaintenanceCreate": obj({
            "name": name, "message": message, "impact": enum(Impact), "component_ids": ids, "notify": notify,
            "scheduled_for": DATE_TIME_IN, "scheduled_until": DATE_TIME_IN},
            ["name", "message", "scheduled_for", "scheduled_until"]),
        "ComponentCreate": obj(component_fields, ["name"]),
        "ComponentPatch": obj(component_fields),
        "ComponentGroupCreate": obj({"name": component_fields["name"], "description": component_fields["description"],
                                     "position": {"type": "integer"}}, ["name"]),
    }
    # Every response property is always present.
    for name_, s in schemas.items():
        if not name_.endswith(("Create", "Patch")):
            s["required"] = list(s["properties"])
    return {
        "tags": [{"name": "incidents"}, {"name": "components"}, {"name": "maintenance"}],
        "schemas": schemas,
        "paths": {
            "/incidents": {
                "get": operation("List incidents, newest first", "incidents", "listIncidents",
                                 ok=(200, ref("IncidentList")), params=list_params),
                "post": operation("File an incident", "incidents", "createIncident",
                                  ok=(201, ref("Incident")), body="IncidentCreate"),
            },
            "/incidents/{incident_id}": {"get": operation(
                "An incident with its timeline", "incidents", "getIncident", ok=(200, ref("Incident")),
                params=[incident_id], not_found=True)},
            "/incidents/{incident_id}/updates": {"post": operation(
                "Post an update to the timeline", "incidents", "createIncidentUpdate",
                ok=(201, ref("IncidentUpdate")), body="IncidentUpdateCreate", params=[incident_id], not_found=True)},
            "/components": {
                "get": operation("List components in display order", "components", "listComponents",
                                 ok=(200, ref("ComponentList"))),
                "post": operation("Add a component", "components", "createComponent",
                                  ok=(201, ref("Component")), body="ComponentCreate"),
            },
            "/components/{component_id}": {
                "get": operation("A component", "components", "getComponent", ok=(200, ref("Component")),
                                 params=[component_id], not_found=True),
                "patch": operation("Change some fields of a component", "components", "updateComponent",
                                   ok=(200, ref("Component")), body="ComponentPatch", params=[component_id],
                                   not_found=True),
                "delete": operation("Delete a component", "components", "deleteComponent", ok=(204, None),
                                    params=[component_id], not_found=True),
            },
            "/component-groups": {
                "get": operation("List component groups", "components", "listComponentGroups",
                                 ok=(200, ref("ComponentGroupList"))),
                "post": operation("Add a component group", "components", "createComponentGroup",
                                  ok=(201, ref("ComponentGroup")), body="ComponentGroupCreate"),
            },
            "/maintenances": {
                "get": operation("List scheduled maintenance, latest window first", "maintenance",
                                 "listMaintenances", ok=(200, ref("MaintenanceList")), params=list_params),
                "post": operation("Schedule maintenance", "maintenance", "createMaintenance",
                                  ok=(201, ref("Incident")), body="MaintenanceCreate"),
            },
            "/maintenances/{maintenance_id}": {"get": operation(
                "A maintenance with its timeline", "maintenance", "getMaintenance", ok=(200, ref("Incident")),
                params=[maintenance_id], not_found=True)},
            "/maintenances/{maintenance_id}/updates": {"post": operation(
                "Post a maintenance update (in_progress, verifying, completed)", "maintenance",
                "createMaintenanceUpdate", ok=(201, ref("IncidentUpdate")), body="IncidentUpdateCreate",
                params=[maintenance_id], not_found=True)},
        },
    }
