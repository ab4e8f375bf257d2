"""The OpenAPI 3.1 description of the ops API, built from per-domain pieces.

Each domain adds its paths and schemas from its init_app with `piece(build)`: `build` returns
{"tags", "paths", "schemas"}, so this module knows no domain (incidents' piece is incidents/openapi.py).
Request schemas are self-contained (no $ref), because `ops.api.json_body` checks bodies against them:
what the document says the API accepts is exactly what it accepts.
"""
from collections.abc import Callable

_pieces: list[Callable[[], dict]] = []
_cache: dict[int, dict] = {}


def piece(build: Callable[[], dict]) -> Callable[[], dict]:
    """Register a function returning a domain's {"tags", "paths", "schemas"} for the document (registering
    the same function again, as each app built in a process does, keeps one)."""
    if build not in _pieces:
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
# Cursor-paginated lists (core.paging): a page of up to 1000, and the opaque cursor an answer gave.
PAGE_LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
CURSOR = {"type": "string", "pattern": whole("[A-Za-z0-9_-]{1,32}"), "x-message": "{value!r} is not a cursor."}
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
