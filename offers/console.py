"""Operator console for offers: define a program with a preview (eligible accounts, liability), then a
dashboard per program to issue, announce, remind, download the accepted list, fulfil by CSV and revoke.

Viewers read; every write needs the operator role and commits once per request."""
import csv
import io
from datetime import datetime, timezone

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from accounts.models import RecoveryState
from core.db import db
from core.errors import ServiceError, ValidationError
from incidents.models import Impact, Incident
from offers import grants, notify, service
from offers.models import OfferKind, OfferProgram
from ops.auth import current_actor, role_required
from ops.models import Role

bp = Blueprint("offers_console", __name__, url_prefix="/ops")


def _incident(incident_id: int) -> Incident:
    incident = db.session.get(Incident, incident_id)
    if incident is None:
        abort(404)
    return incident


def _form_data() -> tuple[dict, dict]:
    """The form as the service's input, and field errors only the form can make (the date)."""
    f, errors = request.form, {}
    until = None
    try:
        until = datetime.fromisoformat(f.get("valid_until", "")).replace(tzinfo=timezone.utc)
    except ValueError:
        errors["valid_until"] = "Use a date and time (UTC)."
    data = {"name": f.get("name", ""), "description": f.get("description", ""), "kind": f.get("kind"),
            "value": f.get("value", ""), "currency": f.get("currency", "").upper(), "months": None,
            "eligible_states": f.getlist("eligible_states"), "exclude_states": f.getlist("exclude_states"),
            "min_impact": f.get("min_impact") or None, "valid_until": until, "budget_cap": f.get("budget_cap")}
    if data["kind"] == OfferKind.FREE_MONTHS:
        data["months"] = int(f["months"]) if f.get("months", "").isdigit() else f.get("months") or None
    return data, errors


@bp.route("/incidents/<int:incident_id>/offers", methods=["GET", "POST"])
@role_required(Role.VIEWER)
def programs(incident_id: int):
    incident = _incident(incident_id)
    data, errors, preview, status = {"currency": "USD", "kind": "gift_card"}, {}, None, 200
    if request.method == "POST":
        if not current_user.can(Role.OPERATOR):  # viewers may look, not define
            abort(403)
        data, errors = _form_data()
        try:
            dry = request.form.get("action") != "create"
            program = service.create_program(db.session, actor=current_actor(), incident_id=incident.id,
                                             data=data, dry_run=dry)
            if not errors and not dry:
                db.session.commit()
                flash(f"Offer program “{program.name}” created. Issue it when the preview looks right.")
                return redirect(url_for("offers_console.program", program_id=program.id), code=303)
            preview = None if errors else service.preview(db.session, program)
        except ValidationError as e:
            errors = {**e.fields, **errors}  # the form's own message about the date is the clearer one
        status = 422 if errors else 200
    existing = db.session.scalars(sa.select(OfferProgram).where(OfferProgram.incident_id == incident.id)
                                  .order_by(OfferProgram.id)).all()
    return render_template("ops/offers.html", incident=incident, programs=existing, data=data, errors=errors,
                           preview=preview, kinds=list(OfferKind), states=list(RecoveryState),
                           impacts=list(Impact)), status


@bp.get("/offers/<int:program_id>")
@role_required(Role.VIEWER)
def program(program_id: int):
    stats = grants.dashboard(db.session, program_id)
    p = stats["program"]
    return render_template("ops/offers_program.html", program=p, stats=stats, incident=_incident(p.incident_id),
                           preview=service.preview(db.session, p), what=notify.what(p))


@bp.post("/offers/<int:program_id>/<any(issue, announce, remind, expire):action>")
@role_required(Role.OPERATOR)
def act(program_id: int, action: str):
    service.get_program(db.session, program_id)
    try:
        if action == "issue":
            r = service.issue(db.session, actor=current_actor(), program_id=program_id)
            message = f"Issued {r['issued']} grants." + (
                f" {r['not_issued']} eligible accounts were not issued: the budget cap is reached."
                if r["not_issued"] else "")
        elif action == "announce":
            message = f"Queued {notify.announce(db.session, actor=current_actor(), program_id=program_id)} messages."
        elif action == "remind":
            message = f"Queued {notify.remind(db.session, actor=current_actor(), program_id=program_id)} reminders."
        else:
            message = f"Expired {grants.expire(db.session)} grants past their validity."
    except ServiceError as e:
        db.session.rollback()
        flash(e.message, "error")
        return redirect(url_for("offers_console.program", program_id=program_id), code=303)
    db.session.commit()
    flash(message)
    return redirect(url_for("offers_console.program", program_id=program_id), code=303)


@bp.get("/offers/<int:program_id>/accepted.csv")
@role_required(Role.VIEWER)
def export(program_id: int):
    text = grants.export_csv(db.session, program_id)
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="offer-{program_id}-accepted.csv"'})


@bp.post("/offers/<int:program_id>/fulfil")
@role_required(Role.OPERATOR)
def fulfil(program_id: int):
    upload = request.files.get("file")
    try:
        reader = csv.DictReader(io.StringIO(upload.read().decode("utf-8-sig"))) if upload else None
        if reader is None or "code" not in (reader.fieldnames or []):
            raise ValidationError("Upload a CSV file with a `code` column.", {"file": "Needs a code column."})
        r = grants.mark_fulfilled(db.session, actor=current_actor(), program_id=program_id,
                                  codes=[row["code"] for row in reader])
    except (ServiceError, UnicodeDecodeError) as e:
        flash(getattr(e, "message", "The file is not UTF-8 text."), "error")
        return redirect(url_for("offers_console.program", program_id=program_id), code=303)
    db.session.commit()
    skipped = "; ".join(f"{c}: {why}" for c, why in sorted(r["not_fulfilled"].items())[:20])
    flash(f"Marked {r['fulfilled']} grants fulfilled." + (f" Not fulfilled: {skipped}" if skipped else ""))
    return redirect(url_for("offers_console.program", program_id=program_id), code=303)


@bp.post("/offers/<int:program_id>/revoke")
@role_required(Role.OPERATOR)
def revoke(program_id: int):
    try:
        grant = grants.find_grant(db.session, request.form.get("code", ""))
        if grant.program_id != program_id:
            raise ValidationError("That code belongs to another program.", {"code": "Not in this program."})
        grants.revoke(db.session, actor=current_actor(), grant_id=grant.id, reason=request.form.get("reason", ""))
    except ServiceError as e:
        db.session.rollback()
        flash(e.fields.get("reason") and f"{e.message} {e.fields['reason']}" or e.message, "error")
        return redirect(url_for("offers_console.program", program_id=program_id), code=303)
    db.session.commit()
    flash(f"Offer {service.display_code(grant.code)} revoked; the subscriber is told why.")
    return redirect(url_for("offers_console.program", program_id=program_id), code=303)
