"""Webhook endpoints, their delivery outbox, and the log of every delivery attempt."""
import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import UTCDateTime, db, str_enum, utcnow


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    SENDING = "sending"  # leased by a worker
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # a final failure: 4xx, refused target, retries used up, or the endpoint disabled


class WebhookEndpoint(db.Model):
    """A URL that receives the events it subscribed to, signed with its own secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    description: Mapped[str] = mapped_column(sa.String(500), default="")
    events: Mapped[list] = mapped_column(sa.JSON)  # event type names, e.g. ["incident.created"]
    # The signing secret, "whsec_" + base64 of 32 random bytes, kept as it was shown once. It cannot be stored
    # as a hash (as API tokens are): HMAC-SHA256 signing needs the key itself on every delivery, and a hash
    # cannot sign. It never leaves again through the API or the console (only rotate-secret shows a new one);
    # protect the database and its backups accordingly.
    secret: Mapped[str] = mapped_column(sa.String(100))
    # After a rotation that keeps the old secret for a while, requests carry a signature with each (Standard
    # Webhooks allows several, space-separated), so receivers can switch to the new secret without a gap.
    previous_secret: Mapped[str | None] = mapped_column(sa.String(100))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(default=True)
    # Set by the first failed attempt after a success (or since creation), cleared by a success: when a failure
    # comes a day or more after it, the endpoint is disabled (notifications.outbound.delivery).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(500))
    created_by: Mapped[str] = mapped_column(sa.String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookDelivery(db.Model):
    """One event for one endpoint: the outbox row, written with the change that caused it. `message_id` is the
    webhook-id header (the same on every retry, so receivers can drop duplicates); `body` is the exact JSON
    sent, fixed when the event happened."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
                      sa.Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    event_type: Mapped[str] = mapped_column(sa.String(64))
    body: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[DeliveryStatus] = mapped_column(str_enum(DeliveryStatus, 16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    endpoint: Mapped[WebhookEndpoint] = relationship()


class WebhookAttempt(db.Model):
    """The log of one delivery attempt: what the endpoint answered (or why nothing was sent) and how long it took."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
                                             index=True)
    attempt: Mapped[int] = mapped_column()
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column()  # None: no HTTP answer (refused, connection error, timeout)
    latency_ms: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.String(500))
    response_excerpt: Mapped[str] = mapped_column(sa.String(1024), default="")  # the first 1 KiB, as text
    outcome: Mapped[str] = mapped_column(sa.String(16))  # delivered, retry, failed
