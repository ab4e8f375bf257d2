"""Incidents' datasets for ops.exports: incidents, their timeline updates, and components' status history."""
import sqlalchemy as sa

from incidents.models import ComponentStatusEvent, Incident, IncidentUpdate
from ops import exports


def register() -> None:
    exports.register(exports.Dataset(
        "incidents", "Incidents and maintenance windows, every field.",
        lambda: sa.select(*Incident.__table__.columns), personal=False))
    exports.register(exports.Dataset(
        "incident_updates", "Each incident's timeline: every update posted, with its status and author.",
        lambda: sa.select(*IncidentUpdate.__table__.columns), personal=False))
    exports.register(exports.Dataset(
        "component_status_history", "Every change of a component's status, with its time and cause.",
        lambda: sa.select(*ComponentStatusEvent.__table__.columns), personal=False))
