"""The operator JSON API (/api/ops/v1): bearer-token auth, JSON errors, Idempotency-Key.

Every domain adds its routes to `bp` at import time. The plumbing here applies to all of them:
- `_authenticate` (before_request) checks the bearer token and the role: reads need viewer,
  writes need operator, `@requires(Role.X)` raises that, `@public` skips the token;
- `json_body(schema)` reads a JSON object and checks it against its OpenAPI request schema;
- `@transactional` commits once per request and honours Idempotency-Key on POST.
Only the Authorization header authenticates here, never the session cookie, which is why
exempting the blueprint from CSRF is safe.
"""
import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from functools import wraps

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, g, jsonify, make_response, request
from jsonschema import Draft202012Validator
from sqlalchemy.exc import IntegrityError

from core.db import db, utcnow
from core.errors import ServiceError, ValidationError
from core.text import unstorable_fields
from core.web import csrf, json_error
from ops import openapi
from ops.audit import Actor
from ops.auth import client_ip
from ops.models import ApiToken, IdempotencyRecord, Role
from ops.service import token_for_secret

bp = Blueprint("api", __name__, url_prefix="/api/ops/v1")
csrf.exempt(bp)  # bearer tokens only: a browser cannot be tricked into sending one

READ_METHODS = {"GET", "HEAD", "OPTIONS"}
BODY_METHODS = {"POST", "PUT", "PATCH"}
IDEMPOTENCY_KEY_MAX = 255
# last_used_at is written at most this often per token, so reads stay read-only most of the time.
LAST_USED_RESOLUTION = timedelta(minutes=1)


# ---- decorators a route can carry ---------------------------------------------------------------

def public(view):
    """Route decorator: no bearer token needed (the OpenAPI document)."""
    view.api_public = True
    return view


def requires(role: Role):
    """Route decorator: raise the role needed above the default (viewer to read, operator to write)."""

    def decorator(view):
        view.api_role = Role(role)
        return view

    return decorator


def accepts(*mimetypes: str):
    """Route decorator: body media types accepted besides JSON (e.g. "text/csv"); others get 415."""

    def decorator(view):
        view.api_accepts = frozenset(mimetypes)
        return view

    return decorator


def transactional(view):
    """Route decorator for writes: one commit per request; on POST an Idempotency-Key makes a
    retry return the first answer (stored in the same transaction as the change)."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or key is None:
            response = make_response(view(*args, **kwargs))
            db.session.commit()
            return response
        return _idempotent(view, key, args, kwargs)

    wrapped.api_transactional = True
    return wrapped


# ---- authentication and roles -------------------------------------------------------------------

def _unauthorized(message: str, error: str | None = None) -> Response:
    response = json_error(401, message)
    challenge = 'Bearer realm="lifeboat"'
    if error:
        challenge += f', error="{error}"'
    response.headers["WWW-Authenticate"] = challenge
    return response


def _view_attr(name: str, default=None):
    view = current_app.view_functions.get(request.endpoint)
    return getattr(view, name, default)


@bp.before_request
def _authenticate():
    """Bearer token -> g.api_actor (the audit Actor) and g.api_token_id; role check per method."""
    g.api_actor = None
    if _view_attr("api_public"):
        return None
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return _unauthorized("Send an API token in the header: Authorization: Bearer <token>.")
    token = token_for_secret(db.session, secret.strip())
    if token is None:
        return _unauthorized("This API token is unknown, revoked, or its operator is disabled.", "invalid_token")
    operator = token.operator
    needed = _view_attr("api_role") or (Role.VIEWER if request.method in READ_METHODS else Role.OPERATOR)
    if not operator.can(needed):
        return json_error(403, f"This token's operator is a {operator.role.value}; this needs the "
                               f"{Role(needed).value} role.")
    g.api_token_id = token.id
    g.api_actor = Actor(operator_id=operator.id, label=f"{operator.email} (token {token.prefix})", ip=client_ip())
    _touch(token)
    return _check_content_type()


@bp.teardown_request
def _forget_token(_exc=None) -> None:
    """Drop the token's identity when the request ends: an app context that outlives the request
    (tests, CLI-driven dispatch) must not carry it into the next, cookie-authenticated one."""
    g.pop("api_actor", None)
    g.pop("api_token_id", None)


def _touch(token: ApiToken) -> None:
    """Record when a token was last used, at most once a minute, in its own short transaction."""
    now = utcnow()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    db.session.execute(sa.update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
    db.session.commit()


def _check_content_type():
    if request.method not in BODY_METHODS:
        return None
    has_body = bool(request.content_length) or request.headers.get("Transfer-Encoding") == "chunked"
    if not (has_body or request.mimetype) or request.is_json:
        return None
    sent = request.mimetype or "no Content-Type"
    if extra := _view_attr("api_accepts"):
        if request.mimetype in extra:
            return None
        return json_error(415, f"Send the body with Content-Type: application/json or {' or '.join(sorted(extra))} "
                               f"(got {sent}).")
    return json_error(415, f"Send the body as JSON with Content-Type: application/json (got {sent}).")


# ---- request bodies -----------------------------------------------------------------------------

def json_body(schema_name: str) -> dict:
    """The request's JSON object, checked against the named OpenAPI request schema (400/422 otherwise)."""
    data = read_json(request.get_data())
    if not isinstance(data, dict):
        raise ServiceError("The body must be a JSON object.")
    fields = unstorable_fields(data) or schema_errors(openapi.schema(schema_name), data)
    if fields:
        raise ValidationError("Please correct the highlighted fields.", fields)
    return whole_numbers(data)


MAX_JSON_DEPTH = 32  # our bodies nest 3 levels; deeper is an attack on the parser or the validator


def read_json(raw: bytes):
    """Decode a JSON body; every way it can fail is a ServiceError (400) that says what to fix, never a 500."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ServiceError(f"The body is not UTF-8 text (byte {e.start} cannot be read).") from None
    if not text.strip():
        raise ServiceError("Send a JSON object in the request body.")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ServiceError(f"The body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno} "
                           f"(character {e.pos}).") from None
    except RecursionError:
        raise ServiceError(f"The body nests too deeply (at most {MAX_JSON_DEPTH} levels).") from None
    except ValueError:  # Python refuses to read integers of more than 4,300 digits
        raise ServiceError("The body holds a number too long to read (more than 4,300 digits).") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise ServiceError(f"The body nests too deeply (at most {MAX_JSON_DEPTH} levels).")
    return data


def _no_constant(name: str):
    raise ServiceError(f"The body is not valid JSON: {name} is not a JSON value.")


def _depth(value) -> int:
    """How deeply arrays and objects nest, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def schema_errors(schema: dict, data: dict) -> dict[str, str]:
    """{field: what to fix} for every way `data` breaks a self-contained JSON Schema; nested fields are
    named by their path, e.g. "accounts[2].phone" or "component_statuses.3"."""
    fields: dict[str, str] = {}
    for error in Draft202012Validator(schema).iter_errors(data):
        where = list(error.absolute_path)
        if error.validator == "additionalProperties":
            for name in sorted(set(error.instance) - set(error.schema.get("properties", {}))):
                fields.setdefault(field_path(where + [name]), "Unknown field.")
        elif error.validator == "required":
            for name in error.validator_value:
                if name not in error.instance:
                    fields.setdefault(field_path(where + [name]), "This field is required.")
        else:
            fields.setdefault(field_path(where), _describe(error))
    return fields


def field_path(parts: list) -> str:
    """["accounts", 2, "phone"] -> "accounts[2].phone"; [] -> "body"."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def _describe(error) -> str:
    v = error.validator_value
    if error.validator == "type":
        kinds = v if isinstance(v, list) else [v]
        return f"Must be {' or '.join(_TYPE_NAMES.get(k, k) for k in kinds)}."
    messages = {
        "enum": lambda: f"Choose one of: {', '.join(map(str, v))}.",
        "maxLength": lambda: f"At most {v} characters.",
        "minLength": lambda: "This field is required." if v == 1 else f"At least {v} characters.",
        "minimum": lambda: f"Must be at least {v}.",
        "maximum": lambda: f"Must be at most {v}.",
        "minItems": lambda: f"Give at least {v}.",
        "maxItems": lambda: f"At most {v} items.",
        "uniqueItems": lambda: "List each item once.",
    }
    if error.validator not in messages and isinstance(error.schema, dict) and "x-message" in error.schema:
        return error.schema["x-message"].format(value=error.instance)  # the document's words for this rule
    return messages.get(error.validator, lambda: error.message)()


_TYPE_NAMES = {"string": "text", "integer": "a whole number", "boolean": "true or false", "array": "a list",
               "object": "an object", "null": "null", "number": "a number"}


def parse_datetime(fields: dict, name: str, value) -> datetime | None:
    """An ISO 8601 date-time with a zone ("2026-11-26T21:00:00Z"), or None; errors go to `fields`."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        fields[name] = "Use an ISO 8601 date-time, e.g. 2026-11-26T21:00:00Z."
        return None
    if parsed.tzinfo is None:
        fields[name] = "Include the time zone, e.g. 2026-11-26T21:00:00Z."
        return None
    return parsed


def whole_numbers(value):
    """The body with numbers such as 4.0 as ints: JSON Schema's "integer" takes them, so the server does too
    (Python reads them as floats, which the service checks would refuse as not whole)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return value


def query_int(fields: dict, name: str, schema: dict) -> int:
    """The query parameter `name` as its documented integer schema says (default, minimum, maximum); an
    absent one is the default, a bad one goes to `fields`. Only ASCII digits with an optional minus sign
    count as a whole number (int() would also take "+1", " 1", "1_0" and other scripts' digits)."""
    raw = request.args.get(name)
    if raw is None:
        return schema["default"]
    if not re.fullmatch(r"-?[0-9]+", raw):
        fields[name] = "Must be a whole number."
        return schema["default"]
    value, low, high = int(raw), schema["minimum"], schema["maximum"]
    if not low <= value <= high:
        fields[name] = f"Must be from {low} to {high}."
    return value


def query_id(fields: dict, name: str) -> int | None:
    """An optional id in the query string (1 to ID_MAX), or None; a bad one goes to `fields`."""
    raw = request.args.get(name)
    if raw is None:
        return None
    if not re.fullmatch(r"[0-9]{1,10}", raw) or not 1 <= int(raw) <= openapi.ID_MAX:
        fields[name] = f"Must be an id: a whole number from 1 to {openapi.ID_MAX}."
        return None
    return int(raw)


def query_datetime(fields: dict, name: str) -> datetime | None:
    """An optional date-time in the query string, as openapi.DATE_TIME_IN states it."""
    raw = request.args.get(name)
    if raw is None:
        return None
    if not re.match(openapi.DATE_TIME_IN["pattern"], raw):
        fields[name] = openapi.DATE_TIME_IN["x-message"]
        return None
    parsed = parse_datetime(fields, name, raw.replace("Z", "+00:00"))
    return parsed.astimezone(timezone.utc) if parsed else None


def list_args() -> tuple[int, str | None]:
    """limit and cursor of a cursor-paginated list (core.paging), checked as openapi states them; raises
    ValidationError with the fields to fix."""
    fields: dict = {}
    limit = query_int(fields, "limit", openapi.PAGE_LIMIT)
    cursor = request.args.get("cursor")
    if cursor is not None and not re.match(openapi.CURSOR["pattern"], cursor):
        fields["cursor"] = "Use next_cursor from an answer as it is."
    if fields:
        raise ValidationError("Some query parameters are not valid.", fields)
    return limit, cursor


def iso(value: datetime | None) -> str | None:
    """UTC ISO 8601 with a "Z", as every date-time leaves the API."""
    return None if value is None else value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def created(body: dict, location: str) -> Response:
    """A 201 answer with the new resource and its Location."""
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = location
    return response


# ---- Idempotency-Key ----------------------------------------------------------------------------

def _idempotent(view, key: str, args, kwargs) -> Response:
    if not key.strip() or len(key) > IDEMPOTENCY_KEY_MAX or any(ord(c) < 32 or ord(c) == 127 for c in key):
        return json_error(400, f"The Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} characters, without "
                               f"control characters.")
    digest = hashlib.sha256(b"%s %s\n%s" % (request.method.encode(), request.path.encode(),
                                            request.get_data())).hexdigest()
    if (earlier := _earlier_answer(key, digest)) is not None:
        return earlier
    # Claim the key first: a concurrent duplicate then fails on the unique constraint before doing the work.
    record = IdempotencyRecord(token_id=g.api_token_id, key=key, method=request.method, path=request.path,
                               request_hash=digest, status_code=0, response_body="")
    db.session.add(record)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return _earlier_answer(key, digest) or json_error(
            409, "A request with this Idempotency-Key is in progress. Retry shortly to get its answer.")
    try:
        response = make_response(view(*args, **kwargs))
    except Exception:
        db.session.rollback()  # errors are not stored: nothing changed, so a retry may run again
        raise
    record.status_code = response.status_code
    record.response_body = response.get_data(as_text=True)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return _earlier_answer(key, digest) or json_error(
            409, "A request with this Idempotency-Key is in progress. Retry shortly to get its answer.")
    return response


def _earlier_answer(key: str, digest: str) -> Response | None:
    """The stored answer for this token and key, a 422 if the key was used for another request, or None."""
    record = db.session.scalar(sa.select(IdempotencyRecord).where(
        IdempotencyRecord.token_id == g.api_token_id, IdempotencyRecord.key == key))
    if record is None:
        return None
    if record.request_hash != digest:
        return json_error(422, "This Idempotency-Key was already used for a different request. "
                               "Use a new key for a new request.", {"Idempotency-Key": "Already used."})
    response = Response(record.response_body, status=record.status_code, mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    return response


# ---- the OpenAPI description --------------------------------------------------------------------

@bp.get("/openapi.json")
@public
def openapi_document():
    """The OpenAPI 3.1 description of this API (public, no token needed)."""
    return jsonify(openapi.document())
