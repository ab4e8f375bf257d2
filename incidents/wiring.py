"""Incidents' part of the app: the console, the public status page, history and feed, the Statuspage-compatible
JSON, and their ops API routes with their piece of the OpenAPI document."""
from incidents import api, openapi as incidents_openapi, public_views, statuspage, views, webhook_events  # noqa: F401
from incidents import datasets
from ops import openapi


def init_app(app) -> None:
    app.register_blueprint(views.bp)
    public_views.init_app(app)  # the status page, history, Atom: served from stored renders
    app.register_blueprint(statuspage.bp)
    openapi.piece(incidents_openapi.openapi_piece)
    datasets.register()  # incidents, updates, component history for ops.exports
    webhook_events.register()  # incident.*, component.updated, maintenance.scheduled (notifications.outbound)
