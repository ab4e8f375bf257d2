"""The OpenAPI 3.1 description of the ops API, built from per-domain pieces.

A domain adds its paths and schemas with `@piece`: a function returning {"tags", "paths", "schemas"}.
Request schemas are self-contained (no $ref), because `ops.api.json_body` checks bodies against them:
what the document says the API accepts is exactly what it accepts.
"""
from collections.abc import Callable

from incidents.models import (
    INCIDENT_STATUSES, MAINTENANCE_STATUSES, ComponentStatus, Impact, IncidentKind, IncidentStatus,
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
# A request schema says everything the server checks that JSON Schema can say; "x-message" beside a
# rule is the field error the API answers when that rule is broken ({value!r} is the value sent).

ID_MAX = 2**31 - 1  # ids and offsets are database INTEGERs
END = r"(?![\s\S])"  # the end of the text: `$` would also match before a final line break in Python's re


def whole(regex: str) -> str:
    """A pattern the whole text must match, read the same way by ECMA 262 and Python's re."""
    return f"^(?:{regex}){END}"


def _at_most(limit: int) -> str:
    """A regex for the whole numbers 1..limit written without leading zeros."""
    def digits(low: int, high: int) -> str:
        return str(low) if low == high else f"[{low}-{high}]"

    s = str(limit)
    parts = [f"[1-9][0-9]{{0,{len(s) - 2}}}"] if len(s) > 1 else []
    for i, digit in enumerate(map(int, s)):
        low, rest = (1 if i == 0 else 0), len(s) - i - 1
        if not rest:
            parts.append(s[:i] + digits(low, digit))
        elif digit > low:
            parts.append(s[:i] + digits(low, digit - 1) + ("[0-9]" if rest == 1 else f"[0-9]{{{rest}}}"))
    return "|".join(parts)


ID = {"type": "integer", "minimum": 1, "maximum": ID_MAX}
# An id written as text (a JSON object's key): 1..2147483647, leading zeros allowed.
ID_KEY = {"type": "string", "pattern": whole(f"0*(?:{_at_most(ID_MAX)})"), "x-message": "{value!r} is not an id."}
LIMIT = {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}
OFFSET = {"type": "integer", "minimum": 0, "maximum": ID_MAX, "default": 0}
# A data category's key as the server stores it (accounts.service._KEY).
CATEGORY_KEY = {"type": "string", "pattern": whole("[a-z][a-z0-9_]{0,31}"),
                "x-message": "{value!r} is not a category key: lower-case letters, digits and _ (at most 32), "
                             "starting with a letter."}
DATE_TIME_OUT = {"type": "string", "format": "date-time", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$",
                 "description": "UTC, ISO 8601 with a Z."}
DATE_TIME_IN = {
    "type": "string", "format": "date-time",
    "pattern": whole(r"(?:19[7-9][0-9]|2[0-9]{3})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
                     r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
                     r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"),
    "x-message": "Use an ISO 8601 date-time with a time zone, e.g. 2026-11-26T21:00:00Z (years 1970 to 2999).",
    "description": "RFC 3339 date-time with a time zone (Z or ±hh:mm), years 1970 to 2999, "
                   "e.g. 2026-11-26T21:00:00Z (a date that does not exist, like 31 April, is refused with 422)."}


# Characters no store here can hold (core.text.UNSTORABLE): NUL and the other C0 controls but tab, line feed
# and carriage return, U+FFFE and U+FFFF. A JSON body holding one anywhere is refused (422), and so is one holding
# a lone surrogate, which a pattern cannot name portably (the info description says it).
UNSTORABLE = r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
# A character that is not white space as the server strips it (str.isspace), spelled out: "\S" reads
# differently in ECMA 262 (U+001C-U+001F and U+0085 are not white space there, U+FEFF is).
NOT_BLANK = r"[^\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def text(max_length: int, *, blank: bool = True, one_line: bool = False, **extra) -> dict:
    """A string of at most `max_length` characters, none of them UNSTORABLE. blank=False: more than white
    space (the server strips text and refuses it empty); one_line: no line breaks."""
    rules = [] if blank else [{"pattern": NOT_BLANK, "x-message": "This field is required."}]
    rules.append({"not": {"type": "string", "pattern": UNSTORABLE},
                  "x-message": "Contains a control character that cannot be stored. Remove it."})
    if one_line:
        rules.append({"not": {"type": "string", "pattern": r"[\r\n]"},
                      "x-message": "Must be on one line (no line breaks)."})
    return {"type": "string", **({} if blank else {"minLength": 1}), "maxLength": max_length, "allOf": rules,
            **extra}


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
    return {"name": name, "in": "path", "required": True,
            "description": f"The {what}'s id, 1 to {ID_MAX} (an unknown id, or any other value, is not found: 404).",
            "schema": dict(ID)}


def query(name: str, schema_: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema_}


def operation(summary: str, tag: str, op_id: str, *, ok: tuple[int, dict | None], body: str | None = None,
              params: list | None = None, not_found: bool = False, idempotent: bool | None = None,
              conflict: bool = False) -> dict:
    """An authenticated operation with its success answer and every error answer it can give.

    Always 401 and 403; 404 with `not_found` or a path parameter; 422 with query parameters; with a `body`
    (its request schema's name) 400, 413, 415 and 422; 409 with `conflict` (the resource's state forbids it)
    and for every write (another request changed the same rows meanwhile). `idempotent`: a POST that honours
    Idempotency-Key (by default those answering 201); the key adds 400, 409, 413, 415 and 422 (a body sent
    with a key is read to compare retries)."""
    status, ok_schema = ok
    answer: dict = {"description": {200: "OK", 201: "Created", 204: "Deleted"}[status]}
    if ok_schema is not None:
        answer["content"] = {"application/json": {"schema": ok_schema}}
    if status == 201:
        answer["headers"] = {"Location": {"description": "The new resource's address.",
                                          "schema": {"type": "string"}}}
    responses = {str(status): answer, "401": _error_ref("Unauthorized"), "403": _error_ref("Forbidden")}
    params = list(params or [])
    if not_found or any(p.get("in") == "path" for p in params):
        responses["404"] = _error_ref("NotFound")
    if any(p.get("in") == "query" for p in params):
        responses["422"] = _error_ref("Unprocessable")
    if idempotent is None:
        idempotent = body is not None and status == 201
    if conflict or body is not None or idempotent or status == 204:
        responses["409"] = _error_ref("Conflict")
    if body is not None:
        responses |= {"400": _error_ref("BadRequest"), "413": _error_ref("PayloadTooLarge"),
                      "415": _error_ref("UnsupportedMediaType"), "422": _error_ref("Unprocessable")}
    if idempotent:
        params.append({"$ref": "#/components/parameters/IdempotencyKey"})
        responses |= {"400": _error_ref("BadRequest"), "409": _error_ref("Conflict"),
                      "413": _error_ref("PayloadTooLarge"), "415": _error_ref("UnsupportedMediaType"),
                      "422": _error_ref("Unprocessable")}
        answer.setdefault("headers", {})["Idempotent-Replayed"] = {
            "description": "\"true\" when this is the stored answer to an earlier request with the same key.",
            "schema": {"type": "string", "enum": ["true"]}}
    op = {"summary": summary, "operationId": op_id, "tags": [tag],
          "responses": dict(sorted(responses.items()))}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(body)}}}
    return op


def _error_ref(name: str) -> dict:
    return {"$ref": f"#/components/responses/{name}"}


def _base() -> dict:
    error_responses = {
        "BadRequest": "The body is not UTF-8 JSON, not a JSON object or nests too deeply (32 levels), or the "
                      "Idempotency-Key is blank, longer than 255 characters or holds control characters.",
        "Unauthorized": "No bearer token, or it is unknown, revoked, or its operator is disabled.",
        "Forbidden": "The token's operator does not have the role this needs.",
        "NotFound": "No such resource (ids are whole numbers from 1 to 2147483647: any other is not found).",
        "Conflict": "The resource's state does not allow this (error.message says why), another request changed "
                    "or deleted the same rows at the same moment, or a request with the same Idempotency-Key is "
                    "still in progress.",
        "PayloadTooLarge": "The body is larger than the server accepts (MAX_CONTENT_LENGTH, 16 MB by default).",
        "UnsupportedMediaType": "The body was not sent as application/json.",
        "Unprocessable": "Fields or query parameters with wrong types or values (see error.fields), or an "
                         "Idempotency-Key reused for a different request.",
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Lifeboat ops API", "version": "1.0.0",
                 "description": "Operator API: incidents, updates, components and maintenance. Send "
                                "`Authorization: Bearer <token>` (create one with `flask --app app tokens "
                                "create EMAIL`). POST honours `Idempotency-Key`: a retry with the same key "
                                "and body answers the first result with `Idempotent-Replayed: true`. Request "
                                "schemas state the server's checks; `x-message` beside a rule is the field "
                                "error answered when it is broken. No string in a JSON body (field names "
                                "included) may hold a character no store can hold: NUL and the other C0 "
                                "controls but tab, line feed and carriage return, lone surrogates, U+FFFE, "
                                "U+FFFF (422); query parameters lose such characters silently."},
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
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NOT_BLANK,
                           "not": {"pattern": r"[\x00-\x1f\x7f]"},
                           "description": "Not blank, no control characters."}}},
            "responses": {name: {"description": text_, "content": {"application/json": {"schema": ref("Error")}}}
                          for name, text_ in error_responses.items()}
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
    component_statuses = {"type": "object", "propertyNames": ID_KEY, "additionalProperties": enum(ComponentStatus),
                          "description": 'New component statuses: {"<component id>": "<status>"} (an unknown '
                                         'component is refused with 422).'}
    name = text(200, blank=False)
    message = text(20000, blank=False, description="Markdown, shown publicly.")
    ids = {"type": "array", "items": ID, "uniqueItems": True,
           "description": "Component ids (an unknown one is refused with 422)."}
    notify = {"type": "boolean", "description": "Send this update to subscribers."}

    def update_request(statuses, description: str) -> dict:
        return obj({
            "status": enum(statuses), "message": message, "component_statuses": component_statuses,
            "notify": notify, "urgent": {"type": "boolean"}, "impact": enum(Impact)}, ["message"],
            description=description)

    from incidents.service import MAX_POSITION  # imported late: incidents.service loads much of the app

    position = {"type": "integer", "minimum": 0, "maximum": MAX_POSITION, "description": "Display order."}
    component_fields = {
        "name": text(100, blank=False, description="Unique among components (whatever the letter case)."),
        "description": text(2000), "status": enum(ComponentStatus), "position": position,
        "group_id": {"type": ["integer", "null"], "minimum": 0, "maximum": ID_MAX,
                     "description": "A component group's id (an unknown one is refused with 422); 0 or null: "
                                    "no group."},
        "showcase": {"type": "boolean"}, "only_show_if_degraded": {"type": "boolean"}}
    list_params = [query("status", enum(["open", "closed"]), "Only open or only closed ones."),
                   query("limit", LIMIT, "Page size."), query("offset", OFFSET, "Rows to skip.")]
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
            "urgent": {"type": "boolean"},
            "started_at": {**DATE_TIME_IN, "description": "When it started: not in the future (422). "
                                                          + DATE_TIME_IN["description"]}}, ["name", "message"]),
        "IncidentUpdateCreate": update_request(
            INCIDENT_STATUSES, "An incident update; status postmortem only once the incident is resolved (422 "
                               "otherwise)."),
        "MaintenanceUpdateCreate": update_request(MAINTENANCE_STATUSES, "A maintenance update."),
        "MaintenanceCreate": obj({
            "name": name, "message": message, "impact": enum(Impact), "component_ids": ids, "notify": notify,
            "scheduled_for": DATE_TIME_IN,
            "scheduled_until": {**DATE_TIME_IN, "description": "After scheduled_for (422 otherwise). "
                                                               + DATE_TIME_IN["description"]}},
            ["name", "message", "scheduled_for", "scheduled_until"]),
        "ComponentCreate": obj(component_fields, ["name"]),
        "ComponentPatch": obj(component_fields),
        "ComponentGroupCreate": obj({
            "name": text(100, blank=False, description="Unique among groups (whatever the letter case)."),
            "description": component_fields["description"], "position": position}, ["name"]),
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
                "Post a maintenance update (scheduled, in_progress, verifying, completed)", "maintenance",
                "createMaintenanceUpdate", ok=(201, ref("IncidentUpdate")), body="MaintenanceUpdateCreate",
                params=[maintenance_id], not_found=True)},
        },
    }
