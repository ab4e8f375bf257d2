"""Incident, component and maintenance routes of the ops JSON API.

The shapes follow Statuspage's Incident/Update/Component (integer ids, plus our fields: kind, urgent,
author); ops/openapi.py describes them. Writes call the same service functions as the console."""
from flask import current_app, jsonify, request, url_for

from core.db import db
from core.errors import ValidationError
from incidents import service
from incidents.models import Component, ComponentGroup, Incident, IncidentKind, IncidentUpdate
from ops.api import bp, created, iso, json_body, parse_datetime, query_int, transactional
from ops.auth import current_actor
from ops.openapi import LIMIT, OFFSET


# ---- JSON shapes ---------------------------------------------------------------------------------

def component_json(c: Component) -> dict:
    return {
        "id": c.id, "name": c.name, "description": c.description or "", "status": c.status.value,
        "position": c.position, "group_id": c.group_id, "showcase": c.showcase,
        "only_show_if_degraded": c.only_show_if_degraded,
        "start_date": c.start_date.isoformat() if c.start_date else None,
        "created_at": iso(c.created_at), "updated_at": iso(c.updated_at),
    }


def group_json(g: ComponentGroup) -> dict:
    return {
        "id": g.id, "name": g.name, "description": g.description or "", "position": g.position,
        "components": [c.id for c in g.components],
        "created_at": iso(g.created_at), "updated_at": iso(g.updated_at),
    }


def update_json(u: IncidentUpdate) -> dict:
    changes = [{"code": str(e.component_id), "component_id": e.component_id, "name": e.component.name,
                "old_status": e.old_status.value, "new_status": e.new_status.value}
               for e in u.component_changes]
    return {
        "id": u.id, "incident_id": u.incident_id, "status": u.status.value, "body": u.body,
        "created_at": iso(u.created_at), "updated_at": iso(u.created_at), "display_at": iso(u.display_at),
        "deliver_notifications": u.notify, "urgent": u.urgent, "author": u.author_label or "",
        "affected_components": changes or None,
    }


def incident_json(i: Incident) -> dict:
    updates = sorted(i.updates, key=lambda u: (u.display_at, u.id), reverse=True)
    return {
        "id": i.id, "kind": i.kind.value, "name": i.name, "status": i.status.value, "impact": i.impact.value,
        "shortlink": f"{current_app.config['PUBLIC_BASE_URL']}/incidents/{i.id}",
        "created_at": iso(i.created_at), "updated_at": iso(i.updated_at), "started_at": iso(i.started_at),
        "monitoring_at": iso(i.monitoring_at), "resolved_at": iso(i.resolved_at),
        "scheduled_for": iso(i.scheduled_for), "scheduled_until": iso(i.scheduled_until),
        "components": [component_json(c) for c in i.components],
        "incident_updates": [update_json(u) for u in updates],
    }


# ---- request helpers ----------------------------------------------------------------------------

def _with_datetimes(data: dict, *names: str) -> dict:
    """The body with ISO 8601 strings in `names` turned into aware datetimes (422 when unreadable)."""
    fields: dict = {}
    out = dict(data)
    for name in names:
        if name in data:
            out[name] = parse_datetime(fields, name, data[name])
    if fields:
        raise ValidationError("Please correct the highlighted fields.", fields)
    return out


def _list_args() -> tuple[str | None, int, int]:
    """?status=open|closed&limit=1..100&offset=0..2147483647, checked as the document states them."""
    fields: dict = {}
    state = request.args.get("status")
    if state not in (None, "open", "closed"):
        fields["status"] = "Choose one of: open, closed."
    limit, offset = query_int(fields, "limit", LIMIT), query_int(fields, "offset", OFFSET)
    if fields:
        raise ValidationError("Please correct the query parameters.", fields)
    return state, limit, offset


def _list(kind: IncidentKind, key: str):
    state, limit, offset = _list_args()
    rows = service.find_incidents(db.session, kind=kind, state=state, limit=limit, offset=offset)
    return jsonify({key: [incident_json(i) for i in rows], "limit": limit, "offset": offset})


# ---- incidents ----------------------------------------------------------------------------------

@bp.get("/incidents")
def list_incidents():
    return _list(IncidentKind.INCIDENT, "incidents")


@bp.post("/incidents")
@transactional
def create_incident():
    data = _with_datetimes(json_body("IncidentCreate"), "started_at")
    incident = service.create_incident(db.session, actor=current_actor(), data=data)
    return created(incident_json(incident), url_for("api.get_incident", incident_id=incident.id))


@bp.get("/incidents/<int:incident_id>")
def get_incident(incident_id: int):
    return jsonify(incident_json(service.get_incident(db.session, incident_id=incident_id,
                                                      kind=IncidentKind.INCIDENT)))


@bp.post("/incidents/<int:incident_id>/updates")
@transactional
def create_incident_update(incident_id: int):
    service.get_incident(db.session, incident_id=incident_id, kind=IncidentKind.INCIDENT)
    update = service.post_update(db.session, actor=current_actor(), incident_id=incident_id,
                                 data=json_body("IncidentUpdateCreate"))
    return created(update_json(update), url_for("api.get_incident", incident_id=incident_id))


# ---- components and groups ----------------------------------------------------------------------

@bp.get("/components")
def list_components():
    return jsonify({"components": [component_json(c) for c in service.list_components(db.session)]})


@bp.post("/components")
@transactional
def create_component():
    component = service.create_component(db.session, actor=current_actor(), data=json_body("ComponentCreate"))
    return created(component_json(component), url_for("api.get_component", component_id=component.id))


@bp.get("/components/<int:component_id>")
def get_component(component_id: int):
    return jsonify(component_json(service.get_component(db.session, component_id=component_id)))


@bp.patch("/components/<int:component_id>")
@transactional
def update_component(component_id: int):
    service.get_component(db.session, component_id=component_id)
    component = service.update_component(db.session, actor=current_actor(), component_id=component_id,
                                         data=json_body("ComponentPatch"))
    return jsonify(component_json(component))


@bp.delete("/components/<int:component_id>")
@transactional
def delete_component(component_id: int):
    service.delete_component(db.session, actor=current_actor(), component_id=component_id)
    return "", 204


@bp.get("/component-groups")
def list_component_groups():
    return jsonify({"component_groups": [group_json(g) for g in service.list_groups(db.session)]})


@bp.post("/component-groups")
@transactional
def create_component_group():
    group = service.create_group(db.session, actor=current_actor(), data=json_body("ComponentGroupCreate"))
    return created(group_json(group), url_for("api.list_component_groups"))


# ---- maintenance --------------------------------------------------------------------------------

@bp.get("/maintenances")
def list_maintenances():
    return _list(IncidentKind.MAINTENANCE, "maintenances")


@bp.post("/maintenances")
@transactional
def create_maintenance():
    data = _with_datetimes(json_body("MaintenanceCreate"), "scheduled_for", "scheduled_until")
    maintenance = service.schedule_maintenance(db.session, actor=current_actor(), data=data)
    return created(incident_json(maintenance), url_for("api.get_maintenance", maintenance_id=maintenance.id))


@bp.get("/maintenances/<int:maintenance_id>")
def get_maintenance(maintenance_id: int):
    return jsonify(incident_json(service.get_incident(db.session, incident_id=maintenance_id,
                                                      kind=IncidentKind.MAINTENANCE)))


@bp.post("/maintenances/<int:maintenance_id>/updates")
@transactional
def create_maintenance_update(maintenance_id: int):
    service.get_incident(db.session, incident_id=maintenance_id, kind=IncidentKind.MAINTENANCE)
    update = service.post_update(db.session, actor=current_actor(), incident_id=maintenance_id,
                                 data=json_body("MaintenanceUpdateCreate"))
    return created(update_json(update), url_for("api.get_maintenance", maintenance_id=maintenance_id))
