"""The outbox: one row per message to one recipient on one channel, and the record of what happened to it."""
import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db, str_enum, utcnow


class Channel(enum.StrEnum):
    SMS = "sms"
    EMAIL = "email"


class NotificationStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class Notification(db.Model):
    """A message in the outbox. `dedupe_key` (cause + channel + recipient) is unique, so a retried request
    or a re-run import never queues the same message twice."""

    __tablename__ = "notifications"
    __table_args__ = (
        sa.Index("ix_notifications_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, 8))
    recipient: Mapped[str] = mapped_column(sa.String(254))
    account_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    template: Mapped[str] = mapped_column(sa.String(64), default="")
    language: Mapped[str] = mapped_column(sa.String(16), default="en")
    subject: Mapped[str] = mapped_column(sa.String(300), default="")
    body: Mapped[str] = mapped_column(sa.Text)
    html_body: Mapped[str | None] = mapped_column(sa.Text)
    urgent: Mapped[bool] = mapped_column(default=False)
    status: Mapped[NotificationStatus] = mapped_column(str_enum(NotificationStatus, 16),
                                                      default=NotificationStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider: Mapped[str | None] = mapped_column(sa.String(16))
    provider_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    error_code: Mapped[str | None] = mapped_column(sa.String(32))
    error_message: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
