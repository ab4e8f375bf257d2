"""Operator console pages for incidents, maintenance and components.

Each write: a Flask-WTF form parses the request, the service function validates and writes, its
ValidationError fields are shown beside the form fields (422, everything typed kept), and a
success commits once, flashes and redirects (Post/Redirect/Get)."""
from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from core.db import db, utcnow
from core.errors import ValidationError
from incidents import events, forms, hub, service
from incidents.models import CLOSED_STATUSES, IncidentKind, IncidentStatus
from notifications import broadcasts
from notifications.models import cause
from ops.auth import current_actor, role_required
from ops.models import Role

bp = Blueprint("incidents_console", __name__, url_prefix="/ops")

INCIDENT, MAINTENANCE = IncidentKind.INCIDENT, IncidentKind.MAINTENANCE
CLOSING = {INCIDENT: IncidentStatus.RESOLVED, MAINTENANCE: IncidentStatus.COMPLETED}
# Request fields that steer the confirmation step and must not be echoed back into it.
_CONTROL_FIELDS = {"csrf_token", "confirmed", "back"}


def _age(since) -> str:
    """'3 h 12 min' since a moment: what an operator wants to see at a glance."""
    minutes = max(0, int((utcnow() - since).total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {mins} min" if hours else f"{mins} min"


@bp.context_processor
def _helpers():
    return {"age": _age, "can_write": _can_write(),
            "incident_hub": lambda incident: hub.links_for(incident, current_user)}


def _can_write() -> bool:
    """Viewers see the pages without forms or buttons; the routes refuse their writes anyway."""
    return bool(current_user.is_authenticated and current_user.can(Role.OPERATOR))


def _invalid(template: str, status: int = 422, **context):
    return render_template(template, **context), status


# ---- incidents ----------------------------------------------------------------------------------

@bp.get("/incidents")
@role_required(Role.VIEWER)
def dashboard():
    session = db.session
    return render_template(
        "ops/incidents.html",
        open_incidents=service.open_incidents(session),
        resolved=service.closed_incidents(session, limit=20),
        counts=service.console_counts(session, since=utcnow() - timedelta(days=7)),
    )


@bp.route("/incidents/new", methods=["GET", "POST"])
@role_required(Role.OPERATOR)
def new_incident():
    components = service.list_components(db.session)
    form = forms.IncidentForm()
    form.component_ids.choices = forms.choices((c.id, c.name) for c in components)
    _offer_notify(form, None)
    if form.is_submitted():
        if form.validate():
            try:
                incident = service.create_incident(db.session, actor=current_actor(), data=form.to_data())
            except ValidationError as e:
                db.session.rollback()
                other = forms.attach_errors(form, e.fields, aliases={"component_statuses": "component_ids"})
                return _invalid("ops/incident_new.html", form=form, other_errors=other)
            db.session.commit()
            flash("Incident filed. It is on the public page now.", "success")
            return redirect(url_for(".incident", incident_id=incident.id))
        return _invalid("ops/incident_new.html", form=form, other_errors={})
    return render_template("ops/incident_new.html", form=form, other_errors={})


def _detail(kind: IncidentKind, incident_id: int, form=None, other_errors=None, status: int = 200):
    """The detail page of an incident or maintenance, with its timeline and update form."""
    incident = service.get_incident(db.session, incident_id=incident_id, kind=kind)
    components = service.list_components(db.session)
    if form is None:
        # Preselect the latest status; after a postmortem that is "resolved" (postmortems have their own form).
        latest = IncidentStatus.RESOLVED if incident.status == IncidentStatus.POSTMORTEM else incident.status
        form = forms.update_form(kind, components, status=latest.value)
    _offer_notify(form, incident, kind=kind)
    template = "ops/incident_detail.html" if kind == INCIDENT else "ops/maintenance_detail.html"
    sent = broadcasts.for_cause(db.session, cause("incident", incident.id)) if kind == INCIDENT else []
    return render_template(template, incident=incident, form=form, components=components,
                           other_errors=other_errors or {}, broadcasts=sent), status


_NOBODY = {
    "new": "Nobody to notify yet: a new incident has no affected accounts. After filing it, add them from the "
           "incident's page (Import accounts), then post an update with “Notify subscribers”.",
    INCIDENT: "Nobody to notify yet: this incident has no affected accounts. Add them with “Import accounts”, "
              "then post an update with “Notify subscribers”.",
    MAINTENANCE: "Nobody to notify: maintenance is announced on the public page, its feeds and /api/v2 only; "
                 "messages go to the affected accounts of incidents.",
}


def _offer_notify(form, incident, *, kind: IncidentKind | None = None) -> None:
    """"Notify subscribers" only when somebody is there to notify (events.audience_size), else disabled with
    the reason."""
    forms.offer_notify(form, events.audience_size(db.session, incident), reason=_NOBODY[kind or "new"])


def _post_update(kind: IncidentKind, incident_id: int):
    """Post a timeline update; closing an open incident first asks for confirmation."""
    incident = service.get_incident(db.session, incident_id=incident_id, kind=kind)
    components = service.list_components(db.session)
    form = forms.update_form(kind, components)
    _offer_notify(form, incident, kind=kind)
    if "back" in request.form:  # from the confirmation page: show the form again with the text kept
        return _detail(kind, incident_id, form=form)
    if not form.validate():
        return _detail(kind, incident_id, form=form, status=422)
    closing = form.status.data == CLOSING[kind].value and incident.status not in CLOSED_STATUSES
    if closing and request.form.get("confirmed") != "1":
        fields = [(k, v) for k, v in request.form.items(multi=True) if k not in _CONTROL_FIELDS]
        changes = [(c, form[f"component_{c.id}"].data) for c in components if form[f"component_{c.id}"].data]
        return render_template("ops/incident_confirm.html", incident=incident, form=form, fields=fields,
                               changes=changes, action=request.path)
    try:
        update = service.post_update(db.session, actor=current_actor(), incident_id=incident_id,
                                     data=form.to_data())
    except ValidationError as e:
        db.session.rollback()
        other = forms.attach_errors(form, e.fields)
        return _detail(kind, incident_id, form=form, other_errors=other, status=422)
    db.session.commit()
    done = {IncidentStatus.RESOLVED: "Incident resolved.", IncidentStatus.COMPLETED: "Maintenance completed."}
    said = done.get(update.status) if closing else "Update posted."
    if update.notify:
        n = update.messages_queued or 0
        said += (f" {n:,} message{'' if n == 1 else 's'} queued to subscribers: see Messages below." if n
                 else " Nobody was notified: no subscriber to reach.")
    flash(said, "success")
    endpoint = ".incident" if kind == INCIDENT else ".maintenance"
    return redirect(url_for(endpoint, incident_id=incident_id))


@bp.get("/incidents/<int:incident_id>")
@role_required(Role.VIEWER)
def incident(incident_id: int):
    return _detail(INCIDENT, incident_id)


@bp.post("/incidents/<int:incident_id>/updates")
@role_required(Role.OPERATOR)
def incident_update(incident_id: int):
    return _post_update(INCIDENT, incident_id)


@bp.route("/incidents/<int:incident_id>/postmortem", methods=["GET", "POST"])
@role_required(Role.OPERATOR)
def postmortem(incident_id: int):
    incident = service.get_incident(db.session, incident_id=incident_id, kind=INCIDENT)
    form = forms.PostmortemForm(body=incident.postmortem_body or "")
    if form.validate_on_submit():
        try:
            service.set_postmortem(db.session, actor=current_actor(), incident_id=incident_id,
                                   body=form.body.data)
        except ValidationError as e:
            db.session.rollback()
            other = forms.attach_errors(form, e.fields, aliases={"message": "body"})
            return _invalid("ops/incident_postmortem.html", incident=incident, form=form, other_errors=other)
        db.session.commit()
        flash("Postmortem published.", "success")
        return redirect(url_for(".incident", incident_id=incident_id))
    status = 422 if form.is_submitted() else 200
    return render_template("ops/incident_postmortem.html", incident=incident, form=form, other_errors={}), status


# ---- maintenance --------------------------------------------------------------------------------

@bp.get("/maintenance")
@role_required(Role.VIEWER)
def maintenance_list():
    return render_template("ops/maintenance_list.html",
                           planned=service.open_incidents(db.session, kind=MAINTENANCE),
                           completed=service.closed_incidents(db.session, kind=MAINTENANCE, limit=20))


@bp.route("/maintenance/new", methods=["GET", "POST"])
@role_required(Role.OPERATOR)
def new_maintenance():
    components = service.list_components(db.session)
    form = forms.MaintenanceForm()
    form.component_ids.choices = forms.choices((c.id, c.name) for c in components)
    _offer_notify(form, None, kind=MAINTENANCE)
    if not form.is_submitted():
        return render_template("ops/maintenance_new.html", form=form, other_errors={}, now=utcnow())
    form.validate()
    try:
        # Service rules run even when a date did not parse, so every problem shows at once.
        maintenance = service.schedule_maintenance(db.session, actor=current_actor(), data=form.to_data())
        if form.errors:
            raise ValidationError("Please correct the highlighted fields.", {})
    except ValidationError as e:
        db.session.rollback()
        unparsed = {k: v for k, v in e.fields.items()
                    if not (k in ("scheduled_for", "scheduled_until") and form[k].errors)}
        other = forms.attach_errors(form, unparsed)
        return _invalid("ops/maintenance_new.html", form=form, other_errors=other, now=utcnow())
    db.session.commit()
    flash("Maintenance planned.", "success")
    return redirect(url_for(".maintenance", incident_id=maintenance.id))


@bp.get("/maintenance/<int:incident_id>")
@role_required(Role.VIEWER)
def maintenance(incident_id: int):
    return _detail(MAINTENANCE, incident_id)


@bp.post("/maintenance/<int:incident_id>/updates")
@role_required(Role.OPERATOR)
def maintenance_update(incident_id: int):
    return _post_update(MAINTENANCE, incident_id)


# ---- components ---------------------------------------------------------------------------------

def _components_page(group_form=None, status: int = 200):
    return render_template("ops/components.html", components=service.list_components(db.session),
                           groups=service.list_groups(db.session), group_form=group_form or forms.GroupForm(),
                           status_choices=forms.COMPONENT_STATUS_CHOICES), status


@bp.get("/components")
@role_required(Role.VIEWER)
def components():
    return _components_page()


def _component_form(component=None) -> forms.ComponentForm:
    form = forms.ComponentForm(obj=component) if component else forms.ComponentForm()
    groups = service.list_groups(db.session)
    form.group_id.choices = forms.choices([(None, "No group")] + [(g.id, g.name) for g in groups])
    return form


def _save_component(component=None):
    """Create (component None) or edit a component from the component form."""
    form = _component_form(component)
    if form.validate_on_submit():
        try:
            if component is None:
                saved = service.create_component(db.session, actor=current_actor(),
                                                 data=form.to_data(with_status=True))
            else:
                saved = service.update_component(db.session, actor=current_actor(), component_id=component.id,
                                                 data=form.to_data(with_status=False))
        except ValidationError as e:
            db.session.rollback()
            other = forms.attach_errors(form, e.fields)
            return _invalid("ops/component_form.html", form=form, component=component, other_errors=other)
        db.session.commit()
        flash(f"Component “{saved.name}” saved.", "success")
        return redirect(url_for(".components"))
    status = 422 if form.is_submitted() else 200
    return render_template("ops/component_form.html", form=form, component=component, other_errors={}), status


@bp.route("/components/new", methods=["GET", "POST"])
@role_required(Role.OPERATOR)
def new_component():
    return _save_component()


@bp.route("/components/<int:component_id>/edit", methods=["GET", "POST"])
@role_required(Role.OPERATOR)
def edit_component(component_id: int):
    return _save_component(service.get_component(db.session, component_id=component_id))


@bp.post("/components/<int:component_id>/status")
@role_required(Role.OPERATOR)
def component_status(component_id: int):
    component = service.get_component(db.session, component_id=component_id)
    form = forms.ComponentStatusForm()
    if form.validate_on_submit():
        try:
            service.update_component(db.session, actor=current_actor(), component_id=component_id,
                                     data={"status": form.status.data})
        except ValidationError as e:
            db.session.rollback()
            flash(f"{component.name}: {e.fields.get('status', e.message)}", "error")
            return _components_page(status=422)
        db.session.commit()
        flash(f"{component.name} is now {component.status.label.lower()}.", "success")
    return redirect(url_for(".components"))


@bp.post("/components/groups")
@role_required(Role.OPERATOR)
def new_group():
    form = forms.GroupForm()
    if form.validate_on_submit():
        try:
            group = service.create_group(db.session, actor=current_actor(), data=form.data)
        except ValidationError as e:
            db.session.rollback()
            forms.attach_errors(form, e.fields)
            return _components_page(group_form=form, status=422)
        db.session.commit()
        flash(f"Group “{group.name}” created.", "success")
        return redirect(url_for(".components"))
    return _components_page(group_form=form, status=422)
