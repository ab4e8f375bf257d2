"""Core's part of the app: the database and migrations, web plumbing, stored renders, health checks, the
scheduled-task runner. Core imports no domain; the domains build on it."""
from core import health, i18n, periodic, periodic_cli, periodic_models, ratelimit, renders, web  # noqa: F401
from core import db as core_db
from core.db import db


def init_app(app) -> None:
    db.init_app(app)
    core_db.init_migrate(app)
    i18n.init_app(app)  # Flask-Babel: catalogs under translations/, the languages subscribers can be written in
    web.init_app(app)  # CSRF, error pages, template filters, security headers, compression
    renders.init_app(app)  # stored renders of the public pages
    health.init_app(app)  # /healthz, /readyz
    periodic.init_app(app)  # core's own scheduled task; the domains add theirs
    periodic_cli.init_app(app)  # `flask periodic run|status`
