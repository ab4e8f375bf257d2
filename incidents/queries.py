"""Read-only queries behind the public page, the Statuspage JSON and the console dashboard."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from core.db import utcnow
from incidents.models import (
    CLOSED_STATUSES, Component, ComponentGroup, ComponentStatus, ComponentStatusEvent, Impact, Incident,
    IncidentKind, IncidentStatus, IncidentUpdate,
)

_WITH_TIMELINE = (
    selectinload(Incident.components),
    selectinload(Incident.updates).selectinload(IncidentUpdate.component_changes),
)

DESCRIPTIONS = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major Service Outage",
    "maintenance": "Service Under Maintenance",
}


def unresolved_incidents(session) -> list[Incident]:
    """Open incidents (not maintenance), newest first, with timeline and components loaded."""
    return session.scalars(
        sa.select(Incident).options(*_WITH_TIMELINE)
        .where(Incident.kind == IncidentKind.INCIDENT, Incident.status.not_in(CLOSED_STATUSES))
        .order_by(Incident.started_at.desc(), Incident.id.desc())
    ).all()


def upcoming_maintenance(session) -> list[Incident]:
    """Maintenance still in the `scheduled` state, soonest first."""
    return session.scalars(
        sa.select(Incident).options(*_WITH_TIMELINE)
        .where(Incident.kind == IncidentKind.MAINTENANCE, Incident.status == IncidentStatus.SCHEDULED)
        .order_by(Incident.scheduled_for, Incident.id)
    ).all()


def active_maintenance(session) -> list[Incident]:
    """Maintenance in progress or being verified."""
    return session.scalars(
        sa.select(Incident).options(*_WITH_TIMELINE)
        .where(Incident.kind == IncidentKind.MAINTENANCE,
               Incident.status.in_((IncidentStatus.IN_PROGRESS, IncidentStatus.VERIFYING)))
        .order_by(Incident.scheduled_for, Incident.id)
    ).all()


def incidents_with_timeline(session, *, kind: IncidentKind, limit: int = 50,
                            since: datetime | None = None) -> list[Incident]:
    """Newest incidents (or maintenance) of any status, with timelines, for history and JSON lists."""
    q = sa.select(Incident).options(*_WITH_TIMELINE).where(Incident.kind == kind)
    if since is not None:
        q = q.where(sa.func.coalesce(Incident.scheduled_for, Incident.started_at) >= since)
    order = sa.func.coalesce(Incident.scheduled_for, Incident.started_at).desc()
    return session.scalars(q.order_by(order, Incident.id.desc()).limit(limit)).all()


def overall_status(session) -> tuple[str, str]:
    """(indicator, description) as Statuspage computes them: the worst of open incidents' impact
    and component statuses; maintenance in progress shows when nothing is broken."""
    worst_impact = max((i.impact.rank for i in unresolved_incidents(session)), default=0)
    statuses = set(session.scalars(sa.select(Component.status).distinct()).all())
    from_components = 0
    if ComponentStatus.MAJOR_OUTAGE in statuses:
        from_components = 3
    elif ComponentStatus.PARTIAL_OUTAGE in statuses:
        from_components = 2
    elif ComponentStatus.DEGRADED_PERFORMANCE in statuses:
        from_components = 1
    indicator = list(Impact)[max(worst_impact, from_components)].value
    if indicator == "none" and (ComponentStatus.UNDER_MAINTENANCE in statuses or active_maintenance(session)):
        return "maintenance", DESCRIPTIONS["maintenance"]
    return indicator, DESCRIPTIONS[indicator]


def last_change_at(session) -> datetime:
    """When anything public last changed: for Last-Modified and the page's updated_at."""
    candidates = [
        session.scalar(sa.select(sa.func.max(Incident.updated_at))),
        session.scalar(sa.select(sa.func.max(IncidentUpdate.created_at))),
        session.scalar(sa.select(sa.func.max(Component.updated_at))),
    ]
    return max((c for c in candidates if c is not None), default=None) or utcnow()


# ---- public status page (incidents/public_views.py) ----------------------------------------------------

def incident_with_timeline(session, *, incident_id: int) -> Incident | None:
    """One incident or maintenance with its components and whole timeline loaded, or None."""
    return session.scalar(sa.select(Incident).options(*_WITH_TIMELINE).where(Incident.id == incident_id))


def incidents_between(session, *, start: datetime, end: datetime) -> list[Incident]:
    """Incidents and maintenance that began in [start, end), newest first, with timelines."""
    began = sa.func.coalesce(Incident.scheduled_for, Incident.started_at)
    return session.scalars(
        sa.select(Incident).options(*_WITH_TIMELINE)
        .where(began >= start, began < end)
        .order_by(began.desc(), Incident.id.desc())
    ).all()


def has_incidents_before(session, *, before: datetime) -> bool:
    """Whether any incident or maintenance began before `before` (for an "older" link)."""
    began = sa.func.coalesce(Incident.scheduled_for, Incident.started_at)
    return session.scalar(sa.select(Incident.id).where(began < before).limit(1)) is not None


def recent_updates(session, *, limit: int = 100) -> list[IncidentUpdate]:
    """The newest timeline updates of all incidents and maintenance, for the Atom feed."""
    return session.scalars(
        sa.select(IncidentUpdate)
        .options(selectinload(IncidentUpdate.incident),
                 selectinload(IncidentUpdate.component_changes).selectinload(ComponentStatusEvent.component))
        .order_by(IncidentUpdate.display_at.desc(), IncidentUpdate.id.desc()).limit(limit)
    ).all()


def components_by_group(session) -> list[tuple[ComponentGroup | None, list[Component]]]:
    """Components in display order, as (group, components) sections; ungrouped runs get group None."""
    components = session.scalars(
        sa.select(Component).outerjoin(ComponentGroup).options(selectinload(Component.group))
        .order_by(sa.func.coalesce(ComponentGroup.position, Component.position), ComponentGroup.id,
                  Component.position, Component.id)
    ).all()
    sections: list[tuple[ComponentGroup | None, list[Component]]] = []
    for component in components:
        if sections and sections[-1][0] is component.group:
            sections[-1][1].append(component)
        else:
            sections.append((component.group, [component]))
    return sections
