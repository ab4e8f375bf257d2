"""The incidents' outbound webhook events: their types (registered from incidents.wiring) and how each is
emitted, with `data` in the public /api/v2 shapes (incidents.serializers), in the caller's transaction."""
from flask import current_app

from incidents import serializers
from incidents.models import ComponentStatusEvent, Component, Incident, IncidentStatus, IncidentUpdate
from notifications.outbound import events

CREATED, UPDATED, RESOLVED = "incident.created", "incident.updated", "incident.resolved"
COMPONENT_UPDATED, MAINTENANCE_SCHEDULED = "component.updated", "maintenance.scheduled"

TYPES = (
    events.EventType(CREATED, "An incident was filed. data: {incident} (the /api/v2 Incident)."),
    events.EventType(UPDATED, "An update was posted to an incident's timeline (not one resolving it). "
                              "data: {incident, incident_update}."),
    events.EventType(RESOLVED, "An update resolved an incident. data: {incident, incident_update}."),
    events.EventType(COMPONENT_UPDATED, "A component changed (its status, by an operator or an incident "
                                        "update, or its other fields). data: {component, affected_component}."),
    events.EventType(MAINTENANCE_SCHEDULED, "Maintenance was planned. data: {scheduled_maintenance} (the "
                                            "/api/v2 Incident with scheduled_for and scheduled_until)."),
)


def register() -> None:
    """Register the incidents' event types with the notifier (from incidents.wiring)."""
    for event_type in TYPES:
        events.register(event_type)


def _page() -> serializers.PageSettings:
    return serializers.PageSettings.from_config(current_app.config)


def incident_filed(session, incident: Incident) -> None:
    """incident.created, and component.updated for each component status it set."""
    events.emit(session, CREATED, lambda: {"incident": serializers.incident(incident, _page())})
    _component_changes(session, incident.updates)


def update_posted(session, update: IncidentUpdate, *, was: IncidentStatus) -> None:
    """incident.resolved when this update resolved the incident, else incident.updated; and component.updated
    for each component status it changed (maintenance updates emit only those)."""
    incident = update.incident
    if incident.kind.value == "incident":
        resolved = update.status == IncidentStatus.RESOLVED and was != IncidentStatus.RESOLVED
        events.emit(session, RESOLVED if resolved else UPDATED, lambda: {
            "incident": serializers.incident(incident, _page()),
            "incident_update": serializers.incident_update(update)})
    _component_changes(session, [update])


def maintenance_scheduled(session, maintenance: Incident) -> None:
    """maintenance.scheduled, with the /api/v2 scheduled maintenance."""
    events.emit(session, MAINTENANCE_SCHEDULED,
                lambda: {"scheduled_maintenance": serializers.incident(maintenance, _page())})


def component_changed(session, component: Component, change: ComponentStatusEvent | None = None) -> None:
    """component.updated; `change` is the status change, if the status changed."""
    events.emit(session, COMPONENT_UPDATED, lambda: {
        "component": serializers.component(component, _page()),
        "affected_component": serializers.affected_component(change) if change is not None else None})


def _component_changes(session, updates) -> None:
    for update in updates:
        for change in update.component_changes:
            component_changed(session, change.component, change)
