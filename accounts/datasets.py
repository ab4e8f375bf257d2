"""Accounts' datasets for ops.exports: affected accounts with every field, recovery events, contact changes and
import jobs."""
import sqlalchemy as sa

from accounts.models import Account, AccountChange, AffectedAccount, ImportJob, RecoveryEvent, Subscription
from ops import exports


def _affected() -> sa.Select:
    return (sa.select(AffectedAccount.id, AffectedAccount.incident_id, Account.account_number, Account.name,
                      Account.phone, Account.email, Account.language, Account.time_zone, Account.sms_opt_out,
                      Account.email_opt_out, AffectedAccount.state.label("overall_state"), AffectedAccount.added_at,
                      AffectedAccount.updated_at, Account.created_at.label("account_created_at"),
                      Account.updated_at.label("account_updated_at"))
            .join(Account, Account.id == AffectedAccount.account_id))


def register() -> None:
    exports.register(exports.Dataset(
        "affected_accounts", "Every affected account of every incident: contact details, language, time zone, "
        "opt-out flags, overall recovery state and dates.", _affected))
    exports.register(exports.Dataset(
        "recovery_events", "The recovery history: every change of a category's state for an account, with counts, "
        "note, author and import.", lambda: sa.select(*RecoveryEvent.__table__.columns)))
    exports.register(exports.Dataset(
        "account_changes", "Changes of subscribers' contact details (old and new value, source).",
        lambda: sa.select(*AccountChange.__table__.columns)))
    exports.register(exports.Dataset(
        "import_jobs", "Every import: kind, file name, state, counts, the first errors and who ran it.",
        lambda: sa.select(*[c for c in ImportJob.__table__.columns if c.name not in ("source_path",
                                                                                      "error_csv_path")])))
    exports.register(exports.Dataset(
        "subscriptions", "People who subscribed on the status page: channel, address, language, whether they "
        "follow every component, when they confirmed.", lambda: sa.select(*Subscription.__table__.columns)))
