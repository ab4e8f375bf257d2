"""Operator console for offers: define a program with a preview (eligible accounts, liability), then a
dashboard per program to issue, announce, remind, download the accepted list, fulfil by CSV and revoke;
edit a program (within the service's finance rules) and close it with a reason.

Viewers read; every write needs the operator role and commits once per request."""
import csv
import io
from datetime import datetime, timezone

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from accounts.models import RecoveryState
from core.db import db
from core.errors import Conflict, ServiceError, ValidationError
from incidents.models import Impact, Incident
from offers import grants, notify, service
from offers.models import OfferKind, OfferProgram, ProgramStatus
from ops.auth import current_actor, role_required
from ops.models import Role

bp = Blueprint("offers_console", __name__, url_prefix="/ops")


def _incident(incident_id: int) -> Incident:
    incident = db.session.get(Incident, incident_id)
    if incident is None:
        abort(404)
    return incident


def _whole_or_text(raw: str | None):
    """A form's number field: "" -> None, digits -> int, anything else as typed (the service refuses it)."""
    raw = (raw or "").strip()
    return int(raw) if raw.isdigit() else raw or None


def _form_data(*, terms: bool = True) -> tuple[dict, dict]:
    """The form as the service's input, and field errors only the form can make (the date).

    Without `terms` (the edit form of a program that has grants shows them disabled, so the browser
    does not send them), only the always-editable fields are read."""
    f, errors = request.form, {}
    until = None
    try:
        until = datetime.fromisoformat(f.get("valid_until", "")).replace(tzinfo=timezone.utc)
    except ValueError:
        errors["valid_until"] = "Use a date and time (UTC)."
    data = {"name": f.get("name", ""), "description": f.get("description", ""), "valid_until": until,
            "budget_cap": f.get("budget_cap", "").strip() or None}
    if "remind_days_before" in f:  # absent: the default; empty: no automatic reminder
        data["remind_days_before"] = _whole_or_text(f.get("remind_days_before"))
    if terms:
        data |= {"kind": f.get("kind"), "value": f.get("value", ""), "currency": f.get("currency", "").upper(),
                 "months": None, "eligible_states": f.getlist("eligible_states"),
                 "exclude_states": f.getlist("exclude_states"), "min_impact": f.get("min_impact") or None}
        if data["kind"] == OfferKind.FREE_MONTHS:
            data["months"] = _whole_or_text(f.get("months"))
    return data, errors


def _choices() -> dict:
    return {"kinds": list(OfferKind), "states": list(RecoveryState), "impacts": list(Impact)}


@bp.route("/incidents/<int:incident_id>/offers", methods=["GET", "POST"])
@role_required(Role.VIEWER)
def programs(incident_id: int):
    incident = _incident(incident_id)
    data, errors, preview, status = {"currency": "USD", "kind": "gift_card",
                                     "remind_days_before": service.REMIND_DEFAULT}, {}, None, 200
    if request.method == "POST":
        if not current_user.can(Role.OPERATOR):  # viewers may look, not define
            abort(403)
        data, errors = _form_data()
        data["valid_until_text"] = request.form.get("valid_until", "")  # shown back as typed
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
                           preview=preview, counts=grants.counts_by_program(db.session, incident.id),
                           **_choices()), status


@bp.get("/offers/<int:program_id>")
@role_required(Role.VIEWER)
def program(program_id: int):
    stats = grants.dashboard(db.session, program_id)
    p = stats["program"]
    return render_template("ops/offers_program.html", program=p, stats=stats, incident=_incident(p.incident_id),
                           preview=service.preview(db.session, p), what=notify.what(p))


@bp.route("/offers/<int:program_id>/edit", methods=["GET", "POST"])
@role_required(Role.OPERATOR)
def edit(program_id: int):
    p = service.get_program(db.session, program_id)
    if p.status == ProgramStatus.CLOSED:
        flash("This program is closed; it can no longer be edited.", "error")
        return redirect(url_for("offers_console.program", program_id=p.id), code=303)
    granted = service.grant_count(db.session, p.id)
    data, errors, status = service.as_input(p), {}, 200
    if request.method == "POST":
        # The terms are sent only when the form showed them editable (no grants when it was drawn);
        # if grants appeared since, the service refuses a change to them, saying why.
        changes, errors = _form_data(terms=request.form.get("terms") == "1")
        if errors.get("valid_until") or request.form.get("valid_until") == f"{p.valid_until:%Y-%m-%dT%H:%M}":
            changes.pop("valid_until")  # unchanged (the form shows minutes) or unreadable (said beside it)
        data = {**data, **changes, "valid_until_text": request.form.get("valid_until", "")}
        try:
            service.update_program(db.session, actor=current_actor(), program_id=p.id, data=changes)
        except ValidationError as e:
            errors = {**e.fields, **errors}
        except Conflict as e:  # closed since the form was drawn
            db.session.rollback()
            flash(e.message, "error")
            return redirect(url_for("offers_console.program", program_id=p.id), code=303)
        if not errors:
            db.session.commit()
            flash(f"Offer program “{p.name}” saved.")
            return redirect(url_for("offers_console.program", program_id=p.id), code=303)
        db.session.rollback()
        status = 422
    return render_template("ops/offers_edit.html", program=p, incident=_incident(p.incident_id), data=data,
                           errors=errors, granted=granted, **_choices()), status


@bp.route("/offers/<int:program_id>/close", methods=["GET", "POST"])
@role_required(Role.OPERATOR)
def close(program_id: int):
    p = service.get_program(db.session, program_id)
    reason, expire_open, errors = "", False, {}
    if request.method == "POST":
        reason, expire_open = request.form.get("reason", ""), request.form.get("expire_open") == "y"
        try:
            r = service.close_program(db.session, actor=current_actor(), program_id=p.id, reason=reason,
                                      expire_open=expire_open)
        except ValidationError as e:
            db.session.rollback()
            errors = e.fields
        else:
            db.session.commit()
            n = r["expired"]
            ended = f" {n:,} open offer{'s' if n != 1 else ''} ended now." if n else ""
            flash(f"This program was already closed; nothing else changed.{ended}" if r["already_closed"]
                  else f"Offer program “{p.name}” closed: it issues and sends nothing more.{ended}")
            return redirect(url_for("offers_console.program", program_id=p.id), code=303)
    elif p.status == ProgramStatus.CLOSED:
        flash("This program is already closed.")
        return redirect(url_for("offers_console.program", program_id=p.id), code=303)
    return render_template("ops/offers_close.html", program=p, incident=_incident(p.incident_id),
                           stats=grants.dashboard(db.session, p.id), reason=reason, expire_open=expire_open,
                           ended=notify.estimate(db.session, program_id=p.id, action="ended", reason=reason),
                           errors=errors), 422 if errors else 200


CONFIRM = {  # action: (page title, confirm button)
    "issue": ("Issue offers?", "Issue the offers"),
    "announce": ("Tell subscribers about this offer?", "Queue the messages"),
    "remind": ("Send a reminder?", "Queue the reminders"),
    "expire": ("Expire offers past their validity?", "Expire them"),
}


def _confirm(p: OfferProgram, action: str):
    """The page before a mass action: what it will do (grants and liability, or messages, SMS parts and the
    time they take), and a confirm button; nothing happens until it is pressed."""
    context: dict = {}
    if action in ("announce", "remind"):
        service.check_can_message(p)  # a closed program: said at once, not after a confirmation
        context["estimate"] = notify.estimate(db.session, program_id=p.id, action=action)
    elif action == "issue":
        context["preview"] = service.preview(db.session, p)
    else:
        context["expirable"] = grants.expirable(db.session)
    title, button = CONFIRM[action]
    return render_template("ops/offers_confirm.html", program=p, incident=_incident(p.incident_id), action=action,
                           title=title, button=button, what=notify.what(p), **context)


@bp.post("/offers/<int:program_id>/<any(issue, announce, remind, expire):action>")
@role_required(Role.OPERATOR)
def act(program_id: int, action: str):
    """A mass action: the first POST shows what it would do; only the confirmation (confirmed=1) acts. The
    ops API and the CLI act in one call."""
    p = service.get_program(db.session, program_id)
    try:
        if request.form.get("confirmed") != "1":
            return _confirm(p, action)
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
    grants.record_export(db.session, actor=current_actor(), program_id=program_id, via="web")
    db.session.commit()
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
