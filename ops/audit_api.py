"""The audit log in the ops JSON API: `GET /api/ops/v1/audit`, newest first, filtered, cursor-paginated
(admins only: entries hold before/after records with personal data). Reading it is itself audited, like the
CSV export (`/ops/audit.csv`, `flask audit export`)."""
import sqlalchemy as sa
from flask import jsonify, request

from core import paging
from core.db import db
from core.errors import ValidationError
from ops import audit
from ops.api import bp, iso, list_args, query_datetime, query_id, requires
from ops.auth import current_actor
from ops.models import AuditEntry, Role
from ops.openapi import CURSOR, DATE_TIME_IN, DATE_TIME_OUT, ID, PAGE_LIMIT, obj, operation, query, ref

_WORD = {"type": "string", "minLength": 1, "maxLength": 64}


def entry_json(e: AuditEntry) -> dict:
    return {"id": e.id, "at": iso(e.at), "actor": e.actor, "operator_id": e.operator_id, "action": e.action,
            "entity_type": e.entity_type, "entity_id": e.entity_id, "entity_label": e.entity_label, "ip": e.ip,
            "before": e.before, "after": e.after}


@bp.get("/audit")
@requires(Role.ADMIN)
def list_audit():
    fields: dict = {}
    operator_id = query_id(fields, "operator")
    since, until = query_datetime(fields, "since"), query_datetime(fields, "until")
    words = {name: request.args.get(name) for name in ("action", "entity_type", "entity_id")}
    for name, value in words.items():
        if value is not None and not 1 <= len(value) <= 64:
            fields[name] = "1 to 64 characters."
    if fields:
        raise ValidationError("Some query parameters are not valid.", fields)
    limit, cursor = list_args()
    q = sa.select(AuditEntry)
    if words["action"]:
        q = q.where(AuditEntry.action.startswith(words["action"], autoescape=True))
    if words["entity_type"]:
        q = q.where(AuditEntry.entity_type == words["entity_type"])
    if words["entity_id"]:
        q = q.where(AuditEntry.entity_id == words["entity_id"])
    if operator_id is not None:
        q = q.where(AuditEntry.operator_id == operator_id)
    if since is not None:
        q = q.where(AuditEntry.at >= since)
    if until is not None:
        q = q.where(AuditEntry.at < until)
    try:
        page = paging.page(db.session, q, AuditEntry.id, limit=limit, cursor=cursor)
    except paging.BadCursor as e:
        raise ValidationError(str(e), {"cursor": str(e)}) from None
    body = {"entries": [entry_json(e) for e in page.rows], "next_cursor": page.next_cursor, "limit": limit}
    if not cursor:  # one entry per reading, not one per page
        audit.record_export(db.session, actor=current_actor(), via="api", action=words["action"],
                            operator_id=operator_id)
        db.session.commit()
    return jsonify(body)


def openapi_piece() -> dict:
    maybe = {"type": ["string", "null"]}
    entry = {"id": {"type": "integer"}, "at": DATE_TIME_OUT, "actor": {"type": "string"},
             "operator_id": {"type": ["integer", "null"]}, "action": {"type": "string"},
             "entity_type": {"type": "string"}, "entity_id": maybe, "entity_label": maybe, "ip": maybe,
             "before": {"type": ["object", "null"]}, "after": {"type": ["object", "null"]}}
    listed = obj({"entries": {"type": "array", "items": ref("AuditEntry")}, "next_cursor": maybe,
                  "limit": {"type": "integer"}}, ["entries", "next_cursor", "limit"])
    params = [
        query("action", _WORD, "Actions starting with this (e.g. `offer.` or `incident.update`)."),
        query("entity_type", _WORD, "Only entries about this kind of entity (incident, component, ...)."),
        query("entity_id", _WORD, "Only entries about this entity id (with entity_type)."),
        query("operator", ID, "Only this operator's entries."),
        query("since", DATE_TIME_IN, "At or after this time."),
        query("until", DATE_TIME_IN, "Before this time."),
        query("limit", PAGE_LIMIT, "How many per page."),
        query("cursor", CURSOR, "next_cursor of the previous page."),
    ]
    return {
        "tags": [{"name": "audit"}],
        "schemas": {"AuditEntry": obj(entry, list(entry)), "AuditList": listed},
        "paths": {"/audit": {"get": operation(
            "The audit log, newest first: who did what, when, with the record before and after (admins; the "
            "reading is audited)", "audit", "listAudit", ok=(200, ref("AuditList")), params=params)}},
    }
