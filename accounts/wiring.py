"""Accounts' part of the app: affected accounts and recovery in the console and the ops API, the personal
pages, imports, `flask accounts|recovery`; and what it lends the layers below: the broadcast form and API
route (by recovery audience), the "update posted" subscriber that queues incident updates, the recovery
fields of messages, the STATUS reply to an SMS, the prune of old import files, the retention of codes and contact changes, and the
recovery.summary_changed webhook event."""
# api, broadcast_api and broadcast_views add their routes to the ops API's and the notifier console's
# blueprints when imported, which must be before an app registers those blueprints: app.py imports this module
# at its top, so it is.
from accounts import api, broadcast_api, broadcast_views, subscriptions_api  # noqa: F401
from accounts import (audiences, cli, contact, links, message_context, public_views, sms_status, subscribe_views,
                      subscriptions, views, webhook_events)
from accounts.imports import retention
from accounts import openapi as accounts_openapi
from accounts import retention as personal_retention
from accounts import datasets
from core import periodic
from incidents import events, hub
from ops.models import Role
from notifications import masking, optouts, quiet_hours, templates, webhooks
from ops import openapi


HUB_LINKS = (
    hub.HubLink("Affected accounts", "accounts_console.account_list", "Search, filter and export them", order=10),
    hub.HubLink("Recovery", "accounts_console.recovery_dashboard", "What was recovered and lost, by category",
                order=20),
    hub.HubLink("Import accounts", "accounts_console.import_new", "Add affected accounts from a CSV file",
                Role.OPERATOR, 30, lambda i: {"incident_id": i.id, "kind": "accounts"}),
    hub.HubLink("Import recovery", "accounts_console.import_new", "Record what was recovered, from a CSV file",
                Role.OPERATOR, 31, lambda i: {"incident_id": i.id, "kind": "recovery"}),
    hub.HubLink("Imports", "accounts_console.import_list", "Every import of this incident and its result", order=32),
    hub.HubLink("Message subscribers", "notifications_console.broadcast_form",
                "SMS and email to all or some affected accounts, previewed first", Role.OPERATOR, 40),
)


def init_app(app) -> None:
    app.register_blueprint(views.bp)
    app.register_blueprint(public_views.bp)  # /my and /m/<token>: subscriber self-service
    openapi.piece(accounts_openapi.openapi_piece)
    openapi.piece(broadcast_api.openapi_piece)
    openapi.piece(subscriptions_api.openapi_piece)
    cli.init_app(app)
    datasets.register()  # affected accounts, recovery events, contact changes, imports for ops.exports
    events.on_update_posted(audiences.notify_update)
    events.on_audience(audiences.audience_size)
    events.on_audience(subscriptions.audience)  # people who subscribed on the status page
    subscribe_views.init_app(app)  # /subscribe, its confirmation and manage pages
    templates.register_context("sub", subscriptions.message_context)
    masking.register_pattern(r"/subscribe/(confirm|manage)/[A-Za-z0-9_.-]{20,}", "/subscribe/\\1/[link]")
    periodic.register(periodic.Task(
        "subscriptions.prune", subscriptions.prune_pending, 24 * 60 * 60,
        "Delete subscriptions never confirmed (older than SUBSCRIBE_CONFIRM_SECONDS)."))
    for link in HUB_LINKS:
        hub.register(link)
    templates.register_context("aa", message_context.recovery_context)
    masking.register_link_resolver(links.link_id)
    masking.register_code_template("verification_code")
    masking.register_code_template("subscription_code")
    optouts.on_opt_out(subscriptions.end_for_opt_out)  # STOP or unsubscribe ends a status-page subscription
    quiet_hours.register_zone_resolver(contact.time_zone_for)  # a subscriber's texts: their number's zone
    webhooks.register_keyword("status", ("STATUS", "ESTADO"), sms_status.keyword_reply)
    webhook_events.register()  # recovery.summary_changed (notifications.outbound)
    periodic.register(periodic.Task(
        "accounts.retention", personal_retention.prune_due, 24 * 60 * 60,
        "Delete verification codes and contact-change history past their retention."))
    periodic.register(periodic.Task(
        "imports.prune", retention.prune_due, 60 * 60,
        "Delete uploaded import files and rejected-row CSVs of imports finished long ago."))
