"""Operator console for messages: the broadcast form (server-rendered preview, test send, confirmation
for large audiences), a broadcast's progress, and the message log (what the log provider "sent").

Viewers read; sending and retrying need the operator role. Writes commit once per request."""
import math

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from accounts import audiences
from accounts.models import RecoveryCategory, RecoveryState
from core.db import db
from core.errors import NotFound, ValidationError
from incidents.models import Incident, IncidentKind
from notifications import broadcasts, service
from notifications.models import Channel, Notification
from ops.auth import current_actor, role_required
from ops.models import Role

bp = Blueprint("notifications_console", __name__, url_prefix="/ops")


def _incident(incident_id: int) -> Incident:
    incident = db.session.get(Incident, incident_id)
    if incident is None or incident.kind != IncidentKind.INCIDENT:
        abort(404)
    return incident


def _form_data() -> dict:
    """The broadcast form as the API's request shape (no states and no categories = everyone)."""
    states, categories = request.form.getlist("states"), request.form.getlist("categories")
    audience = {"states": states, "categories": categories} if states or categories else "all"
    return {"message": request.form.get("message", ""), "subject": request.form.get("subject", ""),
            "channels": request.form.getlist("channels"), "audience": audience,
            "urgent": request.form.get("urgent") == "y"}


def _estimate(incident: Incident, data: dict, errors: dict) -> dict | None:
    """Preview numbers (recipients per channel, SMS parts, time to send) or None when the form is wrong."""
    try:
        clean = broadcasts.check_request(data)
    except ValidationError as e:
        errors.update(e.fields)
        clean = None
    try:
        audience = audiences.check_audience(db.session, incident.id, data["audience"])
    except ValidationError as e:
        errors.update(e.fields)
        return None
    channels = clean["channels"] if clean else [c.value for c in Channel]
    counts = audiences.estimate(db.session, incident_id=incident.id, audience=audience, channels=channels)
    out = {"counts": counts, "total": sum(counts.values()), "rate": broadcasts.sms_rate()}
    if clean:
        out["sample"] = broadcasts.preview(clean["message"], sample={"subject": clean["subject"] or incident.name})
        out["seconds"] = math.ceil(counts.get("sms", 0) * out["sample"]["segments"] / out["rate"])
    return out


@bp.route("/incidents/<int:incident_id>/broadcast", methods=["GET", "POST"])
@role_required(Role.OPERATOR)
def broadcast_form(incident_id: int):
    incident = _incident(incident_id)
    categories = db.session.scalars(sa.select(RecoveryCategory).where(RecoveryCategory.incident_id == incident.id)
                                    .order_by(RecoveryCategory.position, RecoveryCategory.id)).all()
    data = _form_data() if request.method == "POST" else {"message": "", "subject": "", "channels": ["sms", "email"],
                                                           "audience": "all", "urgent": False}
    errors: dict = {}
    estimate, status, action = None, 200, request.form.get("action", "preview")
    if request.method == "POST":
        estimate = _estimate(incident, data, errors)
        if not errors and action == "test":
            clean = broadcasts.check_request(data)
            clean["subject"] = clean["subject"] or incident.name
            broadcasts.test_send(db.session, actor=current_actor(), email=current_user.email, clean=clean,
                                 cause=f"incident:{incident.id}")
            db.session.commit()
            flash(f"A test message was queued to {current_user.email}.")
        elif not errors and action == "send":
            if estimate["total"] > broadcasts.CONFIRM_ABOVE and request.form.get("confirm") != "y":
                errors["confirm"] = (f"This goes to {estimate['total']:,} messages: tick the box to confirm.")
            else:
                broadcast = audiences.broadcast_to_incident(db.session, actor=current_actor(),
                                                            incident_id=incident.id, data=data)
                db.session.commit()
                flash(f"Broadcast queued: {broadcast.recipients:,} messages.")
                return redirect(url_for(".broadcast_page", broadcast_id=broadcast.id))
        status = 422 if errors else 200
    return render_template("ops/broadcast_form.html", incident=incident, data=data, errors=errors,
                           estimate=estimate, categories=categories, states=list(RecoveryState),
                           confirm_above=broadcasts.CONFIRM_ABOVE), status


@bp.get("/broadcasts/<int:broadcast_id>")
@role_required(Role.VIEWER)
def broadcast_page(broadcast_id: int):
    try:
        progress = broadcasts.progress(db.session, broadcast_id)
    except NotFound:
        abort(404)
    return render_template("ops/broadcast_progress.html", p=progress, b=progress["broadcast"],
                           can_write=current_user.can(Role.OPERATOR))


@bp.post("/broadcasts/<int:broadcast_id>/retry")
@role_required(Role.OPERATOR)
def broadcast_retry(broadcast_id: int):
    try:
        n = broadcasts.retry_failed(db.session, actor=current_actor(), broadcast_id=broadcast_id)
    except NotFound:
        abort(404)
    db.session.commit()
    flash(f"{n} failed message{'' if n == 1 else 's'} queued again.")
    return redirect(url_for(".broadcast_page", broadcast_id=broadcast_id))


@bp.get("/messages")
@role_required(Role.VIEWER)
def messages():
    channel = request.args.get("channel") or None
    if channel not in (None, "sms", "email"):
        abort(400)
    rows = service.recent(db.session, limit=200, channel=Channel(channel) if channel else None)
    return render_template("ops/messages.html", rows=rows, channel=channel)


@bp.get("/messages/<int:message_id>")
@role_required(Role.VIEWER)
def message(message_id: int):
    row = db.session.get(Notification, message_id)
    if row is None:
        abort(404)
    return render_template("ops/messages_detail.html", m=row)
