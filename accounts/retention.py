"""Retention of subscribers' personal data the accounts domain keeps only for a while. A scheduled task
(daily) applies it:
- verification codes (hashed, but tied to an account and a moment of contact) are deleted
  VERIFICATION_CODE_RETENTION_DAYS (default 7) after they expired; the per-number limits look back 15
  minutes at most;
- the history of contact changes (`account_changes`: old and new phone numbers and emails) is deleted after
  ACCOUNT_CHANGES_RETENTION_DAYS (default 180).
0 turns either off. Uploaded import files have their own retention (accounts.imports.retention)."""
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from accounts.models import AccountChange, VerificationCode

CODE_DAYS, CHANGES_DAYS = 7, 180


def prune(session, *, now: datetime, code_days: int, change_days: int) -> str:
    """Apply both retentions (0 days: keep forever); the caller commits. Returns what was done."""
    codes = changes = 0
    if code_days > 0:
        codes = session.execute(
            sa.delete(VerificationCode).where(VerificationCode.expires_at < now - timedelta(days=code_days))
            .execution_options(synchronize_session=False)).rowcount
    if change_days > 0:
        changes = session.execute(
            sa.delete(AccountChange).where(AccountChange.at < now - timedelta(days=change_days))
            .execution_options(synchronize_session=False)).rowcount
    return f"{codes} verification codes and {changes} contact changes deleted"


def prune_due(session, now: datetime) -> str:
    """The periodic task (core.periodic), with the configured retentions."""
    config = current_app.config
    return prune(session, now=now,
                 code_days=int(config.get("VERIFICATION_CODE_RETENTION_DAYS", CODE_DAYS)),
                 change_days=int(config.get("ACCOUNT_CHANGES_RETENTION_DAYS", CHANGES_DAYS)))
