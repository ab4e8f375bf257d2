"""Components, incidents (and scheduled maintenance), timeline updates, component status events."""
import enum
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import UTCDateTime, db, str_enum, utcnow


class ComponentStatus(enum.StrEnum):
    OPERATIONAL = "operational"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    UNDER_MAINTENANCE = "under_maintenance"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @property
    def severity(self) -> int:
        """Order for "worst of": maintenance sits between operational and degraded."""
        return {
            "operational": 0, "under_maintenance": 1, "degraded_performance": 2,
            "partial_outage": 3, "major_outage": 4,
        }[self.value]


class Impact(enum.StrEnum):
    NONE = "none"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return ["none", "minor", "major", "critical"].index(self.value)


class IncidentKind(enum.StrEnum):
    INCIDENT = "incident"
    MAINTENANCE = "maintenance"


class IncidentStatus(enum.StrEnum):
    """Statuses of incidents and of maintenance, as Statuspage names them."""

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"
    POSTMORTEM = "postmortem"
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    VERIFYING = "verifying"
    COMPLETED = "completed"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


INCIDENT_STATUSES = (
    IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING,
    IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM,
)
MAINTENANCE_STATUSES = (
    IncidentStatus.SCHEDULED, IncidentStatus.IN_PROGRESS, IncidentStatus.VERIFYING, IncidentStatus.COMPLETED,
)
CLOSED_STATUSES = (IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM, IncidentStatus.COMPLETED)


class ComponentGroup(db.Model):
    __tablename__ = "component_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    components: Mapped[list["Component"]] = relationship(
        back_populates="group", order_by="Component.position, Component.id"
    )


class Component(db.Model):
    __tablename__ = "components"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    status: Mapped[ComponentStatus] = mapped_column(
        str_enum(ComponentStatus), default=ComponentStatus.OPERATIONAL
    )
    position: Mapped[int] = mapped_column(default=0)
    group_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("component_groups.id", ondelete="SET NULL"), index=True
    )
    showcase: Mapped[bool] = mapped_column(default=True)
    only_show_if_degraded: Mapped[bool] = mapped_column(default=False)
    start_date: Mapped[date | None] = mapped_column(sa.Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    group: Mapped[ComponentGroup | None] = relationship(back_populates="components")


incident_components = sa.Table(
    "incident_components",
    db.metadata,
    sa.Column("incident_id", sa.ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("component_id", sa.ForeignKey("components.id", ondelete="CASCADE"), primary_key=True),
)


class Incident(db.Model):
    """An incident, or (kind=maintenance) a scheduled maintenance window."""

    __tablename__ = "incidents"
    __table_args__ = (sa.Index("ix_incidents_kind_status", "kind", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[IncidentKind] = mapped_column(str_enum(IncidentKind, 16), default=IncidentKind.INCIDENT)
    name: Mapped[str] = mapped_column(sa.String(200))
    impact: Mapped[Impact] = mapped_column(str_enum(Impact, 16), default=Impact.NONE)
    status: Mapped[IncidentStatus] = mapped_column(str_enum(IncidentStatus))
    postmortem_body: Mapped[str | None] = mapped_column(sa.Text)
    postmortem_published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    monitoring_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scheduled_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("operators.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    components: Mapped[list[Component]] = relationship(
        secondary=incident_components, order_by="Component.position, Component.id"
    )
    updates: Mapped[list["IncidentUpdate"]] = relationship(
        back_populates="incident", order_by="IncidentUpdate.display_at.desc(), IncidentUpdate.id.desc()",
        cascade="all, delete-orphan",
    )

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES

    @property
    def latest_update(self) -> "IncidentUpdate | None":
        return self.updates[0] if self.updates else None


class IncidentUpdate(db.Model):
    """One entry of an incident's append-only timeline."""

    __tablename__ = "incident_updates"
    __table_args__ = (sa.Index("ix_incident_updates_incident_display", "incident_id", "display_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(sa.ForeignKey("incidents.id", ondelete="CASCADE"))
    status: Mapped[IncidentStatus] = mapped_column(str_enum(IncidentStatus))
    body: Mapped[str] = mapped_column(sa.Text)  # Markdown, rendered sanitised
    notify: Mapped[bool] = mapped_column(default=False)  # "deliver_notifications"
    # With notify: the messages its posting queued (0 when nobody could be told); None without notify.
    messages_queued: Mapped[int | None] = mapped_column()
    urgent: Mapped[bool] = mapped_column(default=False)
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("operators.id", ondelete="SET NULL"))
    author_label: Mapped[str] = mapped_column(sa.String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    display_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    incident: Mapped[Incident] = relationship(back_populates="updates")
    component_changes: Mapped[list["ComponentStatusEvent"]] = relationship(
        back_populates="update", order_by="ComponentStatusEvent.id"
    )


class ComponentStatusEvent(db.Model):
    """A component's status changed: from an incident update, or set directly by an operator.

    The history bars and uptime figures are computed from these events."""

    __tablename__ = "component_status_events"
    __table_args__ = (sa.Index("ix_component_status_events_component_at", "component_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    component_id: Mapped[int] = mapped_column(sa.ForeignKey("components.id", ondelete="CASCADE"))
    update_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("incident_updates.id", ondelete="CASCADE"), index=True
    )
    old_status: Mapped[ComponentStatus] = mapped_column(str_enum(ComponentStatus))
    new_status: Mapped[ComponentStatus] = mapped_column(str_enum(ComponentStatus))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    component: Mapped[Component] = relationship()
    update: Mapped[IncidentUpdate | None] = relationship(back_populates="component_changes")
