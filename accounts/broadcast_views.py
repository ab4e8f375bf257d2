"""The broadcast form of an incident (/ops/incidents/<id>/broadcast): server-rendered preview, test send,
confirmation for large audiences. Its audience is the incident's affected accounts by recovery state or
category, which the notifier does not know, so the route lives here and joins the notifier's console
blueprint (notifications.views.bp: its endpoint stays notifications_console.broadcast_form).

Sending needs the operator role. Writes commit once per request."""
import hashlib
import hmac
import json

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from accounts import audiences
from accounts.models import RecoveryCategory, RecoveryState
from core.db import db
from core.errors import ValidationError
from incidents.models import Incident, IncidentKind
from notifications import broadcasts
from notifications.models import Channel, cause
from notifications.views import bp
from ops.auth import current_actor, role_required
from ops.models import Role


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
    sample = broadcasts.preview(clean["message"], sample={"subject": clean["subject"] or incident.name}) \
        if clean else None
    who = audiences.recipients(incident.id, audience)
    out = broadcasts.send_estimate(db.session, {c: who for c in channels}, sample["sms"] if sample else None)
    if sample:
        out["sample"] = sample
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
                                 cause=cause("incident", incident.id))
            db.session.commit()
            flash(f"A test message was queued to {current_user.email}.")
        elif not errors and action == "send":
            if request.form.get("reviewed") != _digest(incident, data, estimate):
                # Not sent from this very preview (first press, or the text, audience or count changed since):
                # show what it would do, with the button that sends it.
                flash("Check the preview below, then press “Send” under it to queue the messages.")
            else:
                broadcast = audiences.broadcast_to_incident(db.session, actor=current_actor(),
                                                            incident_id=incident.id, data=data)
                db.session.commit()
                flash(f"Broadcast queued: {broadcast.recipients:,} messages.")
                return redirect(url_for(".broadcast_page", broadcast_id=broadcast.id))
        status = 422 if errors else 200
    reviewed = _digest(incident, data, estimate) if estimate and not errors else None
    return render_template("ops/broadcast_form.html", incident=incident, data=data, errors=errors,
                           estimate=estimate, categories=categories, states=list(RecoveryState),
                           reviewed=reviewed), status


def _digest(incident: Incident, data: dict, estimate: dict | None) -> str:
    """What the preview showed (the form and the message count), keyed: "Send" acts only with the digest of
    the preview the operator saw, so an edit after it, or accounts added since, asks for another look."""
    seen = json.dumps([incident.id, data, estimate and estimate["counts"]], sort_keys=True, default=str)
    return hmac.new(current_app.config["SECRET_KEY"].encode(), seen.encode(), hashlib.sha256).hexdigest()
