"""Retention of subscribers' personal data the accounts domain keeps only for a while. A scheduled task
(daily) applies it:
- verification codes (hashed, but tied to an account and a moment of contact) are deleted
  VERIFICATION_CODE_RETENTION_DAYS (default 7) after they expired; the per-number limits look back 15
  minutes at most;
- the history of contact changes (`account_changes`: old and new phone numbers and emails) is deleted after
  ACCOUNT_CHANGES_RETENTION_DAYS (default 180).
0 turns either off. Uploaded import files have their own retention (accounts.imports.retention)."""
from datetime import datetime

from flask import current_app

from accounts.models import AccountChange, VerificationCode
from core import bulk

CODE_DAYS, CHANGES_DAYS = 7, 180


def prune(session, *, now: datetime, code_days: int, change_days: int) -> str:
    """Apply both retentions (0 days: keep forever); the caller commits. Returns what was done."""
    codes = bulk.delete_older(session, VerificationCode.__table__.c.expires_at, now=now, days=code_days)
    changes = bulk.delete_older(session, AccountChange.__table__.c.at, now=now, days=change_days)
    return f"{codes} verification codes and {changes} contact changes deleted"


def prune_due(session, now: datetime) -> str:
    """The periodic task (core.periodic), with the configured retentions."""
    config = current_app.config
    return prune(session, now=now,
                 code_days=int(config.get("VERIFICATION_CODE_RETENTION_DAYS", CODE_DAYS)),
                 change_days=int(config.get("ACCOUNT_CHANGES_RETENTION_DAYS", CHANGES_DAYS)))
