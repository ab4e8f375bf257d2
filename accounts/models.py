"""Accounts (subscribers), their attachment to incidents, and per-category recovery status.

The contact record itself (Account: phone, email, language, opt-outs) is the notifier's, in
notifications.models, because the notifier sits below this domain; it is re-exported here."""
import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from accounts.states import RecoveryState
from core.db import UTCDateTime, db, str_enum, utcnow
from notifications.models import Account  # noqa: F401  (re-exported: the contact record)


class AccountChange(db.Model):
    """A contact detail changed (by an import or an operator): kept so nobody wonders where a number went."""

    __tablename__ = "account_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(sa.String(32))
    old_value: Mapped[str | None] = mapped_column(sa.String(254))
    new_value: Mapped[str | None] = mapped_column(sa.String(254))
    source: Mapped[str] = mapped_column(sa.String(300))  # "import 12", "ana@example.com (web)"
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecoveryCategory(db.Model):
    """A data category tracked for one incident (contacts, calendar, photos, ...)."""

    __tablename__ = "recovery_categories"
    __table_args__ = (sa.UniqueConstraint("incident_id", "key", name="uq_recovery_categories_incident_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(sa.ForeignKey("incidents.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(32))
    label: Mapped[str] = mapped_column(sa.String(100))
    position: Mapped[int] = mapped_column(default=0)


class AffectedAccount(db.Model):
    """An account attached to an incident.

    `state` is the overall state derived from the categories (see accounts.recovery.overall_state); it is
    stored, and rewritten in the same statement batch as any category change, so that a million accounts
    can be counted and filtered by it without scanning six million category rows."""

    __tablename__ = "affected_accounts"
    __table_args__ = (
        sa.UniqueConstraint("incident_id", "account_id", name="uq_affected_accounts_incident_account"),
        sa.Index("ix_affected_accounts_incident_state", "incident_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(sa.ForeignKey("incidents.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    state: Mapped[RecoveryState] = mapped_column(str_enum(RecoveryState, 24), default=RecoveryState.UNKNOWN)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    account: Mapped[Account] = relationship()


class RecoveryStatus(db.Model):
    """Where one category of one affected account stands now."""

    __tablename__ = "recovery_statuses"
    __table_args__ = (
        sa.UniqueConstraint("affected_account_id", "category_id", name="uq_recovery_statuses_affected_category"),
        sa.Index("ix_recovery_statuses_category_state", "category_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    affected_account_id: Mapped[int] = mapped_column(sa.ForeignKey("affected_accounts.id", ondelete="CASCADE"))
    category_id: Mapped[int] = mapped_column(sa.ForeignKey("recovery_categories.id", ondelete="CASCADE"))
    state: Mapped[RecoveryState] = mapped_column(str_enum(RecoveryState, 24), default=RecoveryState.UNKNOWN)
    items_total: Mapped[int | None]
    items_recovered: Mapped[int | None]
    note: Mapped[str] = mapped_column(sa.String(500), default="")
    updated_by: Mapped[str] = mapped_column(sa.String(300), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecoveryEvent(db.Model):
    """Immutable history: one row per change of a category's recovery status.

    One foreign key only, to the affected account (its cascade erases the history with the account or the
    incident). category_id is always the category of the recovery_statuses row written beside it, which checks
    it; import_id says which import wrote the row (import jobs go only with their incident). Checking them again
    for every row cost a 1,000,000-row import 13 s on PostgreSQL (migration 0020)."""

    __tablename__ = "recovery_events"
    __table_args__ = (sa.Index("ix_recovery_events_affected_at", "affected_account_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    affected_account_id: Mapped[int] = mapped_column(sa.ForeignKey("affected_accounts.id", ondelete="CASCADE"))
    category_id: Mapped[int]
    old_state: Mapped[RecoveryState | None] = mapped_column(str_enum(RecoveryState, 24))
    new_state: Mapped[RecoveryState] = mapped_column(str_enum(RecoveryState, 24))
    items_total: Mapped[int | None]
    items_recovered: Mapped[int | None]
    note: Mapped[str] = mapped_column(sa.String(500), default="")
    actor: Mapped[str] = mapped_column(sa.String(300))
    import_id: Mapped[int | None]
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ImportKind(enum.StrEnum):
    ACCOUNTS = "accounts"
    RECOVERY = "recovery"


class ImportStatus(enum.StrEnum):
    PENDING = "pending"
    VALIDATING = "validating"
    APPLYING = "applying"
    DONE = "done"
    REJECTED = "rejected"  # invalid rows and no --skip-invalid: nothing applied
    FAILED = "failed"


class ImportJob(db.Model):
    """One CSV import (CLI, console upload, or API body), with progress and its outcome."""

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(sa.ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ImportKind] = mapped_column(str_enum(ImportKind, 16))
    status: Mapped[ImportStatus] = mapped_column(str_enum(ImportStatus, 16), default=ImportStatus.PENDING)
    filename: Mapped[str] = mapped_column(sa.String(300), default="")
    source_path: Mapped[str | None] = mapped_column(sa.String(500))  # uploaded file kept under instance/
    skip_invalid: Mapped[bool] = mapped_column(default=False)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    bytes_read: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    rows_read: Mapped[int] = mapped_column(default=0)
    rows_invalid: Mapped[int] = mapped_column(default=0)
    rows_created: Mapped[int] = mapped_column(default=0)
    rows_updated: Mapped[int] = mapped_column(default=0)
    rows_unchanged: Mapped[int] = mapped_column(default=0)
    rows_attached: Mapped[int] = mapped_column(default=0)  # accounts newly attached to the incident
    accounts_changed: Mapped[int] = mapped_column(default=0)  # overall states that changed
    errors: Mapped[list | None] = mapped_column(sa.JSON)  # the first errors: [{"line","column","reason"}]
    error_csv_path: Mapped[str | None] = mapped_column(sa.String(500))
    message: Mapped[str] = mapped_column(sa.Text, default="")
    actor: Mapped[str] = mapped_column(sa.String(300), default="")
    operator_id: Mapped[int | None] = mapped_column(sa.ForeignKey("operators.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # last sign of progress
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecoverySnapshot(db.Model):
    """How many affected accounts of an incident were in each overall state at a moment: written after
    each change (at most once a minute for single edits), read by the recovery-progress chart, so the
    chart never rebuilds a million accounts' history."""

    __tablename__ = "recovery_snapshots"
    __table_args__ = (sa.Index("ix_recovery_snapshots_incident_at", "incident_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(sa.ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state: Mapped[RecoveryState] = mapped_column(str_enum(RecoveryState, 24))
    count: Mapped[int]


class PersonalLink(db.Model):
    """A subscriber's personal page link: unguessable, short, expiring, revocable; only its hash is kept."""

    __tablename__ = "personal_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    affected_account_id: Mapped[int] = mapped_column(
        sa.ForeignKey("affected_accounts.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class VerificationCode(db.Model):
    """A one-time code sent to the phone or email on file for "check my account"; stored hashed."""

    __tablename__ = "verification_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    # None for an input that matches no account (or one with nowhere to send): a row that opens nothing, stored
    # so that known and unknown inputs cost the same (accounts.selfservice).
    account_id: Mapped[int | None] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    # The browser holds this random handle (in its session) to say which code it is answering.
    challenge_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    channel: Mapped[str] = mapped_column(sa.String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)


class Subscription(db.Model):
    """Somebody who asked for an outage's updates on the status page (not on an affected list): an address on
    a channel, confirmed by double opt-in (email: a link and a button; SMS: a texted code) or imported by an
    operator with a consent statement, following every component or some (SubscriptionComponent).
    Unconfirmed rows get nothing and are deleted after a while (accounts.subscriptions)."""

    __tablename__ = "subscriptions"
    __table_args__ = (sa.UniqueConstraint("channel", "address", name="uq_subscriptions_channel_address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(sa.String(8))  # "email" or "sms"
    address: Mapped[str] = mapped_column(sa.String(254))  # normalised (E.164 for SMS), as the outbox writes recipients
    language: Mapped[str] = mapped_column(sa.String(16), default="en")
    follows_all: Mapped[bool] = mapped_column(default=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # SMS: the texted code, keyed hash only, until it is entered, expires or has had its tries.
    code_hash: Mapped[str | None] = mapped_column(sa.String(64))
    code_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    code_tries: Mapped[int] = mapped_column(default=0, server_default="0")
    source: Mapped[str] = mapped_column(sa.String(16), default="web", server_default="web")  # "web" or "import"
    consent: Mapped[str | None] = mapped_column(sa.String(300))  # an import's consent statement, as the operator gave it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubscriptionComponent(db.Model):
    """A component a subscription follows (when it does not follow them all)."""

    __tablename__ = "subscription_components"

    subscription_id: Mapped[int] = mapped_column(sa.ForeignKey("subscriptions.id", ondelete="CASCADE"),
                                                 primary_key=True)
    component_id: Mapped[int] = mapped_column(sa.ForeignKey("components.id", ondelete="CASCADE"), primary_key=True,
                                              index=True)
