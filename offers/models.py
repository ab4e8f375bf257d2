"""Compensation offers: a program per incident (what, to whom, until when) and one grant per account."""
import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import UTCDateTime, db, str_enum, utcnow


class OfferKind(enum.StrEnum):
    FREE_MONTHS = "free_months"
    GIFT_CARD = "gift_card"
    ACCOUNT_CREDIT = "account_credit"


class ProgramStatus(enum.StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


class GrantState(enum.StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    FULFILLED = "fulfilled"
    DECLINED = "declined"
    EXPIRED = "expired"
    REVOKED = "revoked"


class OfferProgram(db.Model):
    """One offer for an incident's affected accounts, with its eligibility rule, validity and budget.

    Money is kept in integer minor units (cents): `value_minor` is the worth of one grant (for free months,
    what the months are worth, so liability adds up); `budget_cap_minor` bounds value x live grants."""

    __tablename__ = "offer_programs"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(sa.ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    kind: Mapped[OfferKind] = mapped_column(str_enum(OfferKind, 16))
    value_minor: Mapped[int] = mapped_column(sa.BigInteger)
    months: Mapped[int | None]  # free_months only
    currency: Mapped[str] = mapped_column(sa.String(3))
    eligible_states: Mapped[list] = mapped_column(sa.JSON)  # any category in one of these states
    exclude_states: Mapped[list | None] = mapped_column(sa.JSON)  # ...and no category in one of these
    min_impact: Mapped[str | None] = mapped_column(sa.String(16))  # the incident's impact at least this
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    budget_cap_minor: Mapped[int | None] = mapped_column(sa.BigInteger)
    status: Mapped[ProgramStatus] = mapped_column(str_enum(ProgramStatus, 16), default=ProgramStatus.ACTIVE)
    not_issued: Mapped[int] = mapped_column(default=0)  # eligible accounts the budget left out (last run)
    # Reminders: the scheduler queues one reminder this many days before valid_until to grants still
    # unanswered that were told (None: no automatic reminder), and stamps reminded_at so it runs once.
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the first announcement queued
    remind_days_before: Mapped[int | None] = mapped_column(default=3)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(sa.String(300))
    close_reason: Mapped[str | None] = mapped_column(sa.String(500))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(sa.String(300), default="")
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("operators.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OfferGrant(db.Model):
    """One account's offer: its code, and where it stands (offered -> accepted -> fulfilled, or not)."""

    __tablename__ = "offer_grants"
    __table_args__ = (
        sa.UniqueConstraint("program_id", "account_id", name="uq_offer_grants_program_account"),
        sa.Index("ix_offer_grants_program_state", "program_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(sa.ForeignKey("offer_programs.id", ondelete="CASCADE"))
    affected_account_id: Mapped[int] = mapped_column(
        sa.ForeignKey("affected_accounts.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(sa.String(10), unique=True)  # stored without the dash
    state: Mapped[GrantState] = mapped_column(str_enum(GrantState, 16), default=GrantState.OFFERED)
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_via: Mapped[str | None] = mapped_column(sa.String(16))  # web, sms, api
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoke_reason: Mapped[str | None] = mapped_column(sa.String(500))

    program: Mapped[OfferProgram] = relationship()
