"""The notifier's part of the app: its console pages and API routes, the Twilio webhooks, opt-outs and
unsubscribe links, its figures on /ops and /metrics, outbound webhooks, `flask notifier`, and its scheduled
prunes."""
from core import periodic
from notifications import (
    api, cli, monitoring, optout_views, receipts, retention, telemetry, unsubscribe, views, webhooks,
)
from notifications import datasets
from notifications.outbound import wiring as outbound
from ops import openapi


def init_app(app) -> None:
    app.register_blueprint(views.bp)  # broadcasts' progress and the message log
    app.register_blueprint(webhooks.bp)  # Twilio status callbacks and inbound SMS
    app.register_blueprint(optout_views.bp)  # console opt-outs and inbound SMS
    app.register_blueprint(unsubscribe.bp)  # signed one-click unsubscribe links (RFC 8058)
    openapi.piece(api.openapi_piece)
    datasets.register()  # messages, their history, opt-outs, inbound SMS for ops.exports
    monitoring.init_app(app)  # the queue on /ops and in /metrics
    outbound.init_app(app)  # outbound webhooks: console page, API routes, disabled-endpoint notice
    cli.init_app(app)
    periodic.register(periodic.Task(
        "receipts.prune", receipts.prune_unmatched, 60 * 60,
        "Delete early delivery receipts that never matched a message (older than 7 days)."))
    periodic.register(periodic.Task(
        "messages.retention", retention.prune_due, 24 * 60 * 60,
        "Remove the text of old messages and delete old inbound SMS, past their retention."))
    periodic.register(periodic.Task(
        "telemetry.fold", telemetry.fold_stale, 60 * 60,
        "Fold the send counts of notifier workers gone for an hour into one row (/metrics sums stay the same)."))
