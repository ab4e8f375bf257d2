"""Broadcast routes of the ops JSON API: read progress, retry failures (sending to an incident's audience is
accounts.broadcast_api: the notifier does not know incidents).

Writes call the same functions as the console (notifications.broadcasts)."""
from flask import jsonify

from core.db import db
from notifications import broadcasts
from notifications.models import BroadcastKind, Channel, NotificationStatus
from ops.api import bp, iso, transactional
from ops.auth import current_actor
from ops.openapi import DATE_TIME_OUT, enum, obj, operation, path_id, ref


def broadcast_json(p: dict) -> dict:
    b = p["broadcast"]
    return {
        "id": b.id, "cause": b.cause, "kind": b.kind, "message": b.message, "subject": b.subject,
        "channels": list(b.channels), "audience": b.audience, "urgent": b.urgent, "recipients": b.recipients,
        "created_by": b.created_by, "created_at": iso(b.created_at), "counts": p["counts"],
        "failures": p["failures"], "sent_last_minute": p["sent_last_minute"], "eta_seconds": p["eta_seconds"],
    }


@bp.get("/broadcasts/<int:broadcast_id>")
def get_broadcast(broadcast_id: int):
    return jsonify(broadcast_json(broadcasts.progress(db.session, broadcast_id)))


@bp.post("/broadcasts/<int:broadcast_id>/retry")
@transactional
def retry_broadcast(broadcast_id: int):
    n = broadcasts.retry_failed(db.session, actor=current_actor(), broadcast_id=broadcast_id)
    db.session.flush()
    return jsonify({"requeued": n, **broadcast_json(broadcasts.progress(db.session, broadcast_id))})


def openapi_piece() -> dict:
    """The broadcasts' paths and schemas of the ops API document (registered by notifications.wiring)."""
    channels = {"type": "array", "items": enum(Channel), "minItems": 1, "uniqueItems": True}
    count = {"type": "integer", "minimum": 0}
    body = {
        "id": {"type": "integer"}, "cause": {"type": "string"},
        "kind": enum(BroadcastKind),
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
        "schemas": {"Broadcast": broadcast, "BroadcastRetried": retried},
        "paths": {
            "/broadcasts/{broadcast_id}": {"get": operation(
                "A broadcast with its progress", "broadcasts", "getBroadcast", ok=(200, ref("Broadcast")),
                params=[broadcast_id], not_found=True)},
            "/broadcasts/{broadcast_id}/retry": {"post": operation(
                "Queue the broadcast's failed messages again (not opt-outs)", "broadcasts", "retryBroadcast",
                ok=(200, ref("BroadcastRetried")), params=[broadcast_id], not_found=True, idempotent=True)},
        },
    }

