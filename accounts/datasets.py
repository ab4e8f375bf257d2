"""Accounts' datasets for ops.exports: affected accounts with every field, recovery events, contact changes and
import jobs."""
import sqlalchemy as sa

from accounts.models import Account, AccountChange, AffectedAccount, ImportJob, RecoveryEvent, Subscription, \
    SubscriptionComponent
from ops import exports


def _affected() -> sa.Select:
    return (sa.select(AffectedAccount.id, AffectedAccount.incident_id, Account.account_number, Account.name,
                      Account.phone, Account.email, Account.language, Account.time_zone, Account.sms_opt_out,
                      Account.email_opt_out, AffectedAccount.state.label("overall_state"), AffectedAccount.added_at,
                      AffectedAccount.updated_at, Account.created_at.label("account_created_at"),
                      Account.updated_at.label("account_updated_at"))
            .join(Account, Account.id == AffectedAccount.account_id))


SUBSCRIPTION_SECRETS = ("code_hash", "code_expires_at", "code_tries")  # an SMS code in flight: not exported


def _subscriptions() -> sa.Select:
    followed = (sa.select(sa.func.aggregate_strings(sa.cast(SubscriptionComponent.component_id, sa.String), ";"))
                .where(SubscriptionComponent.subscription_id == Subscription.id).scalar_subquery())
    return sa.select(*exports.columns_except(Subscription, *SUBSCRIPTION_SECRETS),
                     sa.func.coalesce(followed, "").label("components"))


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
        lambda: sa.select(*exports.columns_except(ImportJob, "source_path", "error_csv_path"))))
    exports.register(exports.Dataset(
        "subscriptions", "People who subscribed on the status page or were imported: channel, address, "
        "language, the components they follow (ids, ';'; blank with follows_all), when they confirmed, source and "
        "consent. Imports back as it is (flask subscriptions import).", _subscriptions))
