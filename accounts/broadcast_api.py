"""Sending to an incident's audience through the ops JSON API (POST /api/ops/v1/incidents/<id>/broadcasts).

The audience is the incident's affected accounts by recovery state or category, which the notifier does not
know, so the route and its request schema live here; reading and retrying a broadcast are the notifier's
(notifications.api). Writes call the same function as the console (accounts.audiences)."""
from flask import url_for

from accounts import audiences
from accounts.models import RecoveryState
from core.db import db
from notifications import broadcasts
from notifications.api import broadcast_json
from notifications.models import Channel
from ops.api import bp, created, json_body, transactional
from ops.auth import current_actor
from ops.openapi import CATEGORY_KEY, enum, obj, operation, path_id, ref, text


@bp.post("/incidents/<int:incident_id>/broadcasts")
@transactional
def create_broadcast(incident_id: int):
    data = json_body("BroadcastCreate")
    broadcast = audiences.broadcast_to_incident(db.session, actor=current_actor(), incident_id=incident_id,
                                                data=data)
    db.session.flush()
    return created(broadcast_json(broadcasts.progress(db.session, broadcast.id)),
                   url_for("api.get_broadcast", broadcast_id=broadcast.id))


def openapi_piece() -> dict:
    """The request schema and path of sending to an incident's audience (registered by accounts.wiring)."""
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
    return {
        "schemas": {
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
        },
    }
