"""Broadcast routes of the ops JSON API: send to an incident's audience, read progress, retry failures.

Writes call the same functions as the console (accounts.audiences, notifications.broadcasts)."""
from flask import jsonify, url_for

from accounts import audiences
from accounts.models import RecoveryState
from core.db import db
from notifications import broadcasts
from notifications.models import Channel, NotificationStatus
from ops.api import bp, created, iso, json_body, transactional
from ops.auth import current_actor
from ops.openapi import CATEGORY_KEY, DATE_TIME_OUT, enum, obj, operation, path_id, piece, ref, text


def broadcast_json(p: dict) -> dict:
    b = p["broadcast"]
    return {
        "id": b.id, "cause": b.cause, "kind": b.kind, "message": b.message, "subject": b.subject,
        "channels": list(b.channels), "audience": b.audience, "urgent": b.urgent, "recipients": b.recipients,
        "created_by": b.created_by, "created_at": iso(b.created_at), "counts": p["counts"],
        "failures": p["failures"], "sent_last_minute": p["sent_last_minute"], "eta_seconds": p["eta_seconds"],
    }


@bp.post("/incidents/<int:incident_id>/broadcasts")
@transactional
def create_broadcast(incident_id: int):
    data = json_body("BroadcastCreate")
    broadcast = audiences.broadcast_to_incident(db.session, actor=current_actor(), incident_id=incident_id,
                                                data=data)
    db.session.flush()
    return created(broadcast_json(broadcasts.progress(db.session, broadcast.id)),
                   url_for("api.get_broadcast", broadcast_id=broadcast.id))


@bp.get("/broadcasts/<int:broadcast_id>")
def get_broadcast(broadcast_id: int):
    return jsonify(broadcast_json(broadcasts.progress(db.session, broadcast_id)))


@bp.post("/broadcasts/<int:broadcast_id>/retry")
@transactional
def retry_broadcast(broadcast_id: int):
    n = broadcasts.retry_failed(db.session, actor=current_actor(), broadcast_id=broadcast_id)
    db.session.flush()
    return jsonify({"requeued": n, **broadcast_json(broadcasts.progress(db.session, broadcast_id))})


@piece
def _broadcasts() -> dict:
    channels = {"type": "array", "items": enum(Channel), "minItems": 1, "uniqueItems": True}
    audience = {"oneOf": [
        {"type": "string", "enum": ["all"]},
        obj({"states": {"type": "array", "items": enum(RecoveryState), "uniqueItems": True},
             "categories": {"type": "array", "items": CATEGORY_KEY, "uniqueItems": True,
                            "description": "The incident's category keys (an unknown one is refused with 422)."}},
            anyOf=[{"required": ["states"], "properties": {"states": {"minItems": 1}}},
                   {"required": ["categories"], "properties": {"categories": {"minItems": 1}}}]),
    ], "x-message": 'Use "all", or an object with "states" (' + ", ".join(s.value for s in RecoveryState)
                    + ') and/or "categories" (category keys) naming at least one.',
        "description": '"all", or accounts by overall state and/or by category (a category in one of '
                       'the states when both are given); at least one state or category.'}
    count = {"type": "integer", "minimum": 0}
    body = {
        "id": {"type": "integer"}, "cause": {"type": "string"},
        "kind": {"type": "string", "enum": ["broadcast", "update", "resolution", "test", "offer"]},
        "message": {"type": "string"}, "subject": {"type": "string"}, "channels": channels,
        "audience": {"type": ["string", "object", "null"]}, "urgent": {"type": "boolean"},
        "recipients": count, "created_by": {"type": "string"}, "created_at": DATE_TIME_OUT,
        "counts": obj({s.value: count for s in NotificationStatus}, [s.value for s in NotificationStatus]),
        "failures": {"type": "array", "items": obj({
            "status": {"type": "string", "enum": ["failed", "undelivered", "suppressed"]},
            "code": {"type": "string"}, "message": {"type": "string"}, "count": count},
            ["status", "code", "message", "count"])},
        "sent_last_minute": count, "eta_seconds": count}
    broadcast = obj(body, list(body))
    retried = obj({"requeued": count, **body}, ["requeued", *body])
    broadcast_id = path_id("broadcast_id", "broadcast")
    return {
        "tags": [{"name": "broadcasts"}],
        "schemas": {
            "Broadcast": broadcast, "BroadcastRetried": retried,
            "BroadcastCreate": obj({
                "message": text(broadcasts.MESSAGE_MAX, blank=False,
                                description="Plain text; may use {{ name }}, {{ link }} (personal page); a "
                                            "message that does not render as a template is refused (422)."),
                "subject": text(broadcasts.SUBJECT_MAX, one_line=True,
                                description="Email subject (default: the incident's name)."),
                "channels": channels, "audience": audience, "urgent": {"type": "boolean"}},
                ["message", "channels"]),
        },
        "paths": {
            "/incidents/{incident_id}/broadcasts": {"post": operation(
                "Send a message to an incident's affected accounts (not to a maintenance's: 404)", "broadcasts",
                "createBroadcast",
                ok=(201, ref("Broadcast")), body="BroadcastCreate", params=[path_id("incident_id", "incident")],
                not_found=True)},
            "/broadcasts/{broadcast_id}": {"get": operation(
                "A broadcast with its progress", "broadcasts", "getBroadcast", ok=(200, ref("Broadcast")),
                params=[broadcast_id], not_found=True)},
            "/broadcasts/{broadcast_id}/retry": {"post": operation(
                "Queue the broadcast's failed messages again (not opt-outs)", "broadcasts", "retryBroadcast",
                ok=(200, ref("BroadcastRetried")), params=[broadcast_id], not_found=True, idempotent=True)},
        },
    }

