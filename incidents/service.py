"""Incident, maintenance and component operations shared by the web console and the JSON API.

Every function takes the session and an Actor, validates plain values, records an audit entry,
and leaves the commit to the caller."""
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from core.db import utcnow
from core.errors import NotFound, ValidationError
from incidents import events, webhook_events
from incidents.models import (
    CLOSED_STATUSES, INCIDENT_STATUSES, MAINTENANCE_STATUSES, Component, ComponentGroup,
    ComponentStatus, ComponentStatusEvent, Impact, Incident, IncidentKind, IncidentStatus,
    IncidentUpdate,
)
from ops.audit import Actor, record, snapshot

NAME_MAX = 200
MESSAGE_MAX = 20_000
ID_MAX = 2**31 - 1  # ids are database INTEGERs: a larger one names no row (and breaks the query)
INCIDENT_FIELDS = ("kind", "name", "impact", "status", "started_at", "resolved_at",
                   "scheduled_for", "scheduled_until", "components")
COMPONENT_FIELDS = ("name", "description", "status", "position", "group_id", "showcase",
                    "only_show_if_degraded")


# ---- small validators ---------------------------------------------------------------------------

def _enum(errors: dict, field: str, enum_cls, value, allowed=None):
    try:
        member = enum_cls(value)
    except ValueError:
        member = None
    choices = allowed or list(enum_cls)
    if member is None or member not in choices:
        errors[field] = f"Choose one of: {', '.join(c.value for c in choices)}."
        return None
    return member


def _text(errors: dict, field: str, value, *, required: bool, max_len: int) -> str:
    value = (value or "").strip() if isinstance(value, str) or value is None else None
    if value is None:
        errors[field] = "Must be text."
        return ""
    if required and not value:
        errors[field] = "This field is required."
    elif len(value) > max_len:
        errors[field] = f"At most {max_len} characters (got {len(value)})."
    return value


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def _components(session, errors: dict, field: str, ids) -> list[Component]:
    if ids is None:
        return []
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        errors[field] = "Must be a list of component ids."
        return []
    found = session.scalars(sa.select(Component).where(Component.id.in_(
        [i for i in ids if 0 < i <= ID_MAX]))).all()
    missing = sorted(set(ids) - {c.id for c in found})
    if missing:
        errors[field] = f"Unknown component id(s): {', '.join(map(str, missing))}."
    return sorted(found, key=lambda c: (c.position, c.id))


def _component_statuses(session, errors: dict, field: str, mapping) -> dict[Component, ComponentStatus]:
    """{"<component id>": "<status>"} -> {Component: ComponentStatus}."""
    if not mapping:
        return {}
    if not isinstance(mapping, dict):
        errors[field] = "Must map component ids to statuses."
        return {}
    out: dict[Component, ComponentStatus] = {}
    for raw_id, raw_status in mapping.items():
        try:
            cid = int(raw_id)
        except (TypeError, ValueError):
            errors[field] = f"{raw_id!r} is not a component id."
            continue
        component = session.get(Component, cid) if 0 < cid <= ID_MAX else None
        if component is None:
            errors[field] = f"Unknown component id {cid}."
            continue
        try:
            out[component] = ComponentStatus(raw_status)
        except ValueError:
            errors[field] = (f"Component {cid}: status must be one of "
                             f"{', '.join(s.value for s in ComponentStatus)}.")
    return out


def _raise(errors: dict):
    if errors:
        raise ValidationError("Please correct the highlighted fields.", errors)


# ---- components ---------------------------------------------------------------------------------

def list_components(session) -> list[Component]:
    """All components in display order (group position, then component position)."""
    return session.scalars(
        sa.select(Component).outerjoin(ComponentGroup)
        .order_by(sa.func.coalesce(ComponentGroup.position, Component.position), ComponentGroup.id,
                  Component.position, Component.id)
    ).all()


def list_groups(session) -> list[ComponentGroup]:
    return session.scalars(sa.select(ComponentGroup).order_by(ComponentGroup.position, ComponentGroup.id)).all()


def get_component(session, *, component_id: int) -> Component:
    component = session.get(Component, component_id)
    if component is None:
        raise NotFound(f"No component with id {component_id}.")
    return component


def _set_component_status(session, component: Component, status: ComponentStatus, *,
                          update: IncidentUpdate | None = None, at: datetime | None = None):
    """Change a component's status and keep the event for history bars and update details."""
    if component.status == status:
        return None
    event = ComponentStatusEvent(component=component, update=update, old_status=component.status,
                                 new_status=status, at=at or utcnow())
    session.add(event)
    component.status = status
    component.updated_at = utcnow()
    return event


def _check_component_fields(session, errors: dict, data: dict, partial: bool) -> dict:
    clean = {}
    if not partial or "name" in data:
        clean["name"] = _text(errors, "name", data.get("name"), required=True, max_len=100)
    if "description" in data:
        clean["description"] = _text(errors, "description", data.get("description"), required=False, max_len=2000)
    if "status" in data or not partial:
        clean["status"] = _enum(errors, "status", ComponentStatus, data.get("status", "operational"))
    if "position" in data:
        clean["position"] = _position(errors, data["position"])
    if "group_id" in data:
        gid = data["group_id"]
        if gid in (None, "", 0):
            clean["group_id"] = None
        elif not isinstance(gid, int) or not 0 < gid <= ID_MAX or session.get(ComponentGroup, gid) is None:
            errors["group_id"] = f"Unknown group id {gid}."
        else:
            clean["group_id"] = gid
    for flag in ("showcase", "only_show_if_degraded"):
        if flag in data:
            if not isinstance(data[flag], bool):
                errors[flag] = "Must be true or false."
            else:
                clean[flag] = data[flag]
    if clean.get("name") and _name_taken(session, Component, clean["name"], but=data.get("_id")):
        errors["name"] = "Another component already has this name."
    return clean


MAX_POSITION = 100_000  # far more components than a page shows, and next = max + 1 always fits the column


def _position(errors: dict, value) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().lstrip("-").isdigit():
        errors["position"] = "Must be a whole number."
        return None
    position = int(value)
    if not 0 <= position <= MAX_POSITION:
        errors["position"] = f"Must be between 0 and {MAX_POSITION}."
        return None
    return position


def _name_taken(session, model, name: str, *, but: int | None = None) -> bool:
    """Another row of `model` (components, groups: tens of rows) has this name, ignoring case in any script.

    Compared here rather than with SQL lower(), which folds only ASCII on SQLite ("Überwachung")."""
    wanted = name.casefold()
    return any(other.casefold() == wanted and row_id != but
               for row_id, other in session.execute(sa.select(model.id, model.name)))


def _unique_flush(session, row, what: str) -> None:
    """Flush the row; what another request committed meanwhile is a 4xx, not a 500: a same-named row (422), or
    this row deleted under an update (404)."""
    row_id = row.id
    try:
        with session.begin_nested():
            session.flush()
    except (IntegrityError, StaleDataError):
        if row_id is not None:  # asked on its own connection: a failed flush may have ended the session's transaction
            with session.get_bind().connect() as conn:
                if conn.scalar(sa.select(type(row).id).where(type(row).id == row_id)) is None:
                    raise NotFound(f"No {what} with id {row_id}: it was deleted meanwhile.") from None
        raise ValidationError("Please correct the highlighted fields.",
                              {"name": f"Another {what} already has this name."}) from None


def create_component(session, *, actor: Actor, data: dict) -> Component:
    """Add a component (name, description, status, position, group_id, showcase, only_show_if_degraded)."""
    errors: dict = {}
    clean = _check_component_fields(session, errors, data, partial=False)
    _raise(errors)
    if "position" not in clean:
        clean["position"] = (session.scalar(sa.select(sa.func.max(Component.position))) or 0) + 1
    component = Component(**clean)
    session.add(component)
    _unique_flush(session, component, "component")
    record(session, actor=actor, action="component.create", entity_type="component", entity_id=component.id,
           after=snapshot(component, COMPONENT_FIELDS))
    return component


def update_component(session, *, actor: Actor, component_id: int, data: dict) -> Component:
    """Change some fields of a component; a status change is kept as a status event."""
    component = get_component(session, component_id=component_id)
    errors: dict = {}
    clean = _check_component_fields(session, errors, {**data, "_id": component_id}, partial=True)
    _raise(errors)
    before = snapshot(component, COMPONENT_FIELDS)
    status = clean.pop("status", None)
    for key, value in clean.items():
        setattr(component, key, value)
    change = _set_component_status(session, component, status) if status is not None else None
    _unique_flush(session, component, "component")
    after = snapshot(component, COMPONENT_FIELDS)
    record(session, actor=actor, action="component.update", entity_type="component", entity_id=component.id,
           before=before, after=after)
    if after != before:
        webhook_events.component_changed(session, component, change)
    return component


def delete_component(session, *, actor: Actor, component_id: int) -> None:
    component = get_component(session, component_id=component_id)
    record(session, actor=actor, action="component.delete", entity_type="component", entity_id=component.id,
           before=snapshot(component, COMPONENT_FIELDS))
    session.delete(component)
    session.flush()


def create_group(session, *, actor: Actor, data: dict) -> ComponentGroup:
    errors: dict = {}
    name = _text(errors, "name", data.get("name"), required=True, max_len=100)
    description = _text(errors, "description", data.get("description"), required=False, max_len=2000)
    if name and _name_taken(session, ComponentGroup, name):
        errors["name"] = "Another group already has this name."
    position = _position(errors, data["position"]) if data.get("position") is not None else None
    _raise(errors)
    if position is None:
        position = (session.scalar(sa.select(sa.func.max(ComponentGroup.position))) or 0) + 1
    group = ComponentGroup(name=name, description=description, position=position)
    session.add(group)
    _unique_flush(session, group, "group")
    record(session, actor=actor, action="component_group.create", entity_type="component_group",
           entity_id=group.id, after=snapshot(group, ("name", "description", "position")))
    return group


# ---- incidents and maintenance ------------------------------------------------------------------

def get_incident(session, *, incident_id: int, kind: IncidentKind | None = None) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None or (kind is not None and incident.kind != kind):
        noun = "maintenance" if kind == IncidentKind.MAINTENANCE else "incident"
        raise NotFound(f"No {noun} with id {incident_id}.")
    return incident


def list_incidents(session, *, kind: IncidentKind | None = IncidentKind.INCIDENT, open_only: bool = False,
                   limit: int = 50, offset: int = 0, since: datetime | None = None) -> list[Incident]:
    """Incidents newest first (by start, or by window start for maintenance)."""
    q = sa.select(Incident)
    if kind is not None:
        q = q.where(Incident.kind == kind)
    if open_only:
        q = q.where(Incident.status.not_in(CLOSED_STATUSES))
    if since is not None:
        q = q.where(Incident.started_at >= since)
    order = sa.func.coalesce(Incident.scheduled_for, Incident.started_at).desc()
    return session.scalars(q.order_by(order, Incident.id.desc()).limit(limit).offset(offset)).all()


def _apply_status(incident: Incident, status: IncidentStatus, at: datetime) -> None:
    incident.status = status
    if status == IncidentStatus.MONITORING and incident.monitoring_at is None:
        incident.monitoring_at = at
    if status in CLOSED_STATUSES:
        incident.resolved_at = incident.resolved_at or at
    else:
        incident.resolved_at = None  # reopened
    if status == IncidentStatus.IN_PROGRESS and incident.started_at > at:
        incident.started_at = at


def _open_incidents_touching(session, component: Component, exclude_id: int) -> bool:
    q = (sa.select(sa.func.count()).select_from(Incident).join(Incident.components)
         .where(Component.id == component.id, Incident.id != exclude_id,
                Incident.status.not_in(CLOSED_STATUSES + (IncidentStatus.SCHEDULED,))))
    return bool(session.scalar(q))


def _default_component_statuses(session, incident: Incident, status: IncidentStatus, given: dict) -> dict:
    """What components become when the operator does not say: maintenance in progress puts them
    under maintenance; closing returns them to operational unless another open incident holds them."""
    out = dict(given)
    for component in incident.components:
        if component in out:
            continue
        if status == IncidentStatus.IN_PROGRESS:
            out[component] = ComponentStatus.UNDER_MAINTENANCE
        elif status in CLOSED_STATUSES and not _open_incidents_touching(session, component, incident.id):
            out[component] = ComponentStatus.OPERATIONAL
    return out


def _add_update(session, *, actor: Actor, incident: Incident, status: IncidentStatus, message: str,
                component_statuses: dict, notify: bool, urgent: bool, at: datetime) -> IncidentUpdate:
    update = IncidentUpdate(incident=incident, status=status, body=message, notify=notify, urgent=urgent,
                            messages_queued=0 if notify else None,  # events.update_posted counts them
                            author_id=actor.operator_id, author_label=actor.label, created_at=at, display_at=at)
    session.add(update)
    _apply_status(incident, status, at)
    for component, new_status in _default_component_statuses(session, incident, status, component_statuses).items():
        _set_component_status(session, component, new_status, update=update, at=at)
        if component not in incident.components:
            incident.components.append(component)
    incident.updated_at = at
    return update


def create_incident(session, *, actor: Actor, data: dict) -> Incident:
    """File an incident: name, impact, status, message, component_ids, component_statuses, notify, urgent."""
    errors: dict = {}
    name = _text(errors, "name", data.get("name"), required=True, max_len=NAME_MAX)
    impact = _enum(errors, "impact", Impact, data.get("impact", "minor"))
    status = _enum(errors, "status", IncidentStatus, data.get("status", "investigating"),
                   allowed=INCIDENT_STATUSES[:4])
    message = _text(errors, "message", data.get("message"), required=True, max_len=MESSAGE_MAX)
    components = _components(session, errors, "component_ids", data.get("component_ids"))
    statuses = _component_statuses(session, errors, "component_statuses", data.get("component_statuses"))
    started_at = _aware(data.get("started_at"))
    if started_at is not None and started_at > utcnow():
        errors["started_at"] = "The start cannot be in the future."
    _raise(errors)
    now = utcnow()
    incident = Incident(kind=IncidentKind.INCIDENT, name=name, impact=impact, status=status,
                        started_at=started_at or now, created_by_id=actor.operator_id, created_at=now)
    incident.components = list(components)
    session.add(incident)
    update = _add_update(session, actor=actor, incident=incident, status=status, message=message,
                         component_statuses=statuses, notify=bool(data.get("notify")),
                         urgent=bool(data.get("urgent")), at=now)
    session.flush()
    events.update_posted(session, actor=actor, update=update)  # subscribers queue messages in this transaction
    webhook_events.incident_filed(session, incident)  # outbound webhooks, in this transaction too
    record(session, actor=actor, action="incident.create", entity_type="incident", entity_id=incident.id,
           after={**snapshot(incident, INCIDENT_FIELDS), "message": message})
    return incident


def post_update(session, *, actor: Actor, incident_id: int, data: dict) -> IncidentUpdate:
    """Append to the timeline: status, message, component_statuses, notify, urgent, impact (optional)."""
    incident = get_incident(session, incident_id=incident_id)
    allowed = MAINTENANCE_STATUSES if incident.kind == IncidentKind.MAINTENANCE else INCIDENT_STATUSES
    errors: dict = {}
    status = _enum(errors, "status", IncidentStatus, data.get("status", incident.status.value), allowed=allowed)
    message = _text(errors, "message", data.get("message"), required=True, max_len=MESSAGE_MAX)
    statuses = _component_statuses(session, errors, "component_statuses", data.get("component_statuses"))
    impact = _enum(errors, "impact", Impact, data["impact"]) if data.get("impact") else None
    if status == IncidentStatus.POSTMORTEM and incident.status not in (IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM):
        errors["status"] = "Resolve the incident before publishing a postmortem."
    _raise(errors)
    before, was = snapshot(incident, INCIDENT_FIELDS), incident.status
    if impact is not None:
        incident.impact = impact
    update = _add_update(session, actor=actor, incident=incident, status=status, message=message,
                         component_statuses=statuses, notify=bool(data.get("notify")),
                         urgent=bool(data.get("urgent")), at=utcnow())
    if status == IncidentStatus.POSTMORTEM:
        incident.postmortem_body = message
        incident.postmortem_published_at = update.created_at
    session.flush()
    events.update_posted(session, actor=actor, update=update)  # subscribers queue messages in this transaction
    webhook_events.update_posted(session, update, was=was)
    record(session, actor=actor, action=f"{incident.kind.value}.update", entity_type=incident.kind.value,
           entity_id=incident.id, before=before,
           after={**snapshot(incident, INCIDENT_FIELDS), "update_id": update.id, "message": message})
    return update


def schedule_maintenance(session, *, actor: Actor, data: dict) -> Incident:
    """Plan maintenance: name, message, scheduled_for, scheduled_until, component_ids, impact, notify."""
    errors: dict = {}
    name = _text(errors, "name", data.get("name"), required=True, max_len=NAME_MAX)
    message = _text(errors, "message", data.get("message"), required=True, max_len=MESSAGE_MAX)
    impact = _enum(errors, "impact", Impact, data.get("impact", "none"))
    components = _components(session, errors, "component_ids", data.get("component_ids"))
    start, end = _aware(data.get("scheduled_for")), _aware(data.get("scheduled_until"))
    if start is None:
        errors["scheduled_for"] = "When does the window start?"
    if end is None:
        errors["scheduled_until"] = "When does the window end?"
    elif start is not None and end <= start:
        errors["scheduled_until"] = "The window must end after it starts."
    _raise(errors)
    now = utcnow()
    incident = Incident(kind=IncidentKind.MAINTENANCE, name=name, impact=impact, status=IncidentStatus.SCHEDULED,
                        started_at=start, scheduled_for=start, scheduled_until=end,
                        created_by_id=actor.operator_id, created_at=now)
    incident.components = list(components)
    session.add(incident)
    _add_update(session, actor=actor, incident=incident, status=IncidentStatus.SCHEDULED, message=message,
                component_statuses={}, notify=bool(data.get("notify")), urgent=False, at=now)
    session.flush()
    webhook_events.maintenance_scheduled(session, incident)
    record(session, actor=actor, action="maintenance.create", entity_type="maintenance", entity_id=incident.id,
           after={**snapshot(incident, INCIDENT_FIELDS), "message": message})
    return incident


def set_postmortem(session, *, actor: Actor, incident_id: int, body: str) -> Incident:
    """Save (and publish) the postmortem text of a resolved incident."""
    return post_update(session, actor=actor, incident_id=incident_id,
                       data={"status": IncidentStatus.POSTMORTEM.value, "message": body}).incident


# ---- operator console (incidents/views.py) -------------------------------------------------------

def closed_incidents(session, *, kind: IncidentKind = IncidentKind.INCIDENT, limit: int = 20) -> list[Incident]:
    """Resolved incidents (or completed maintenance), most recently closed first, with timelines loaded."""
    from sqlalchemy.orm import selectinload

    return session.scalars(
        sa.select(Incident).options(selectinload(Incident.updates), selectinload(Incident.components))
        .where(Incident.kind == kind, Incident.status.in_(CLOSED_STATUSES))
        .order_by(Incident.resolved_at.desc(), Incident.id.desc()).limit(limit)
    ).all()


def open_incidents(session, *, kind: IncidentKind = IncidentKind.INCIDENT) -> list[Incident]:
    """Open incidents (or maintenance not completed): worst impact first, then newest, with timelines."""
    from sqlalchemy.orm import selectinload

    rows = session.scalars(
        sa.select(Incident).options(selectinload(Incident.updates), selectinload(Incident.components))
        .where(Incident.kind == kind, Incident.status.not_in(CLOSED_STATUSES))
        .order_by(sa.func.coalesce(Incident.scheduled_for, Incident.started_at).desc(), Incident.id.desc())
    ).all()
    if kind == IncidentKind.MAINTENANCE:
        return sorted(rows, key=lambda i: (i.scheduled_for or i.started_at, i.id))  # soonest window first
    return sorted(rows, key=lambda i: -i.impact.rank)  # stable: newest first within an impact


def console_counts(session, *, since: datetime) -> dict[str, int]:
    """Counts for the top of the console dashboard."""
    def count(*where):
        return session.scalar(sa.select(sa.func.count()).select_from(Incident).where(*where)) or 0

    is_open = Incident.status.not_in(CLOSED_STATUSES)
    return {
        "open": count(Incident.kind == IncidentKind.INCIDENT, is_open),
        "major_or_critical": count(Incident.kind == IncidentKind.INCIDENT, is_open,
                                   Incident.impact.in_((Impact.MAJOR, Impact.CRITICAL))),
        "resolved_recently": count(Incident.kind == IncidentKind.INCIDENT, Incident.status.in_(CLOSED_STATUSES),
                                   Incident.resolved_at >= since),
        "maintenance_open": count(Incident.kind == IncidentKind.MAINTENANCE, is_open),
        "components_not_operational": session.scalar(
            sa.select(sa.func.count()).select_from(Component)
            .where(Component.status != ComponentStatus.OPERATIONAL)) or 0,
    }


# ---- ops JSON API (incidents/api.py) -------------------------------------------------------------

def find_incidents(session, *, kind: IncidentKind = IncidentKind.INCIDENT, state: str | None = None,
                   limit: int = 50, offset: int = 0) -> list[Incident]:
    """Incidents (or maintenance) newest first, optionally only "open" or "closed", with timelines loaded."""
    from sqlalchemy.orm import selectinload

    q = sa.select(Incident).where(Incident.kind == kind).options(
        selectinload(Incident.components),
        selectinload(Incident.updates).selectinload(IncidentUpdate.component_changes)
        .selectinload(ComponentStatusEvent.component))
    if state == "open":
        q = q.where(Incident.status.not_in(CLOSED_STATUSES))
    elif state == "closed":
        q = q.where(Incident.status.in_(CLOSED_STATUSES))
    order = sa.func.coalesce(Incident.scheduled_for, Incident.started_at).desc()
    return session.scalars(q.order_by(order, Incident.id.desc()).limit(limit).offset(offset)).all()
