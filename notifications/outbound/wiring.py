"""Outbound webhooks' part of the app: the console page, the API routes and their piece of the OpenAPI
document, the console home's notice of disabled endpoints, their figures on /metrics, the daily prune of old
deliveries, and the notifier's own event type (message.failed). The domains above register theirs (incidents,
accounts, offers) from their own init_app."""
from core import periodic
from notifications.outbound import api, events, monitoring as webhook_monitoring, service, views
from notifications.service import MESSAGE_FAILED
from ops import monitoring, openapi


def init_app(app) -> None:
    app.register_blueprint(views.bp)
    openapi.piece(api.openapi_piece)  # api: its routes are on the ops API blueprint
    monitoring.register_home_panel(app, "webhooks", "ops/webhooks_home.html", views.home_panel)
    monitoring.register_collector(app, "webhooks", webhook_monitoring.collect)  # /metrics
    events.register(events.EventType(MESSAGE_FAILED, "A message to a subscriber failed for good."))
    periodic.register(periodic.Task(
        "webhooks.prune", service.prune_due, 24 * 60 * 60,
        "Delete webhook deliveries (and their attempt log) finished more than 30 days ago."))
