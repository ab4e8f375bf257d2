"""Operators' part of the app: sign-in and roles, the console home, the ops JSON API blueprint (the domains
add their routes to it, and their pieces of its OpenAPI document), /metrics, the scheduled tasks' page, and
the operator, token, backup and restore commands."""
import sqlalchemy as sa

from core import periodic
from ops import (api, audit, audit_api, auth, backup, cli, exports, exports_api, models, monitoring, openapi,
                 periodic_views, views)


def init_app(app) -> None:
    auth.init_app(app)
    app.register_blueprint(views.bp)
    monitoring.init_app(app)  # /metrics, and the registries of metrics and console home panels
    app.register_blueprint(api.bp)  # after audit_api has added its route
    openapi.piece(audit_api.openapi_piece)
    openapi.piece(exports_api.openapi_piece)
    exports.register(exports.Dataset(
        "operators", "Operator accounts: email, role, state, dates (no password or token secrets).",
        lambda: sa.select(models.Operator.id, models.Operator.email, models.Operator.role, models.Operator.active,
                          models.Operator.created_at, models.Operator.last_sign_in_at)))
    exports.register(exports.Dataset(
        "audit_log", "The audit log: who did what, when, with the record before and after.",
        lambda: sa.select(*models.AuditEntry.__table__.columns)))
    app.register_blueprint(periodic_views.bp)  # /ops/tasks
    cli.init_app(app)
    periodic.on_finished(audit.record_task)  # scheduled tasks that changed something, in the audit log
    backup.init_app(app)  # `flask backup`, `flask restore`
