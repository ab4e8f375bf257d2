"""The application factory: `flask --app app ...` finds create_app here."""
from flask import Flask

import config
from core import db as core_db
from core import health, renders, web
from core.db import db


def create_app(test_config: dict | None = None) -> Flask:
    """Build the Lifeboat app: settings, database, sign-in, blueprints, CLI commands."""
    app = Flask(__name__, instance_path=str(config.INSTANCE_DIR))
    app.config.from_object(config.Config)
    if test_config:
        app.config.update(test_config)
    config.INSTANCE_DIR.mkdir(exist_ok=True)
    hops = int(app.config.get("PROXY_FIX_HOPS") or 0)
    if hops > 0:  # behind reverse proxies: trust exactly their X-Forwarded-* headers (see config.py)
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    db.init_app(app)
    import accounts.models, core.periodic_models, core.ratelimit, core.renders, notifications.models, offers.models  # noqa: F401,E401
    core_db.init_migrate(app)
    web.init_app(app)  # CSRF, error pages, template filters, security headers, compression
    renders.init_app(app)  # stored renders of the public pages
    health.init_app(app)  # /healthz, /readyz

    from ops import auth, cli as ops_cli, views as ops_views, api as ops_api, monitoring as ops_monitoring
    from incidents import views as incident_views, public, statuspage
    import incidents.api  # noqa: F401  (adds the incident routes to the ops API blueprint)
    import accounts.api  # noqa: F401  (adds the affected-account and recovery routes)
    import notifications.api  # noqa: F401  (adds the broadcast routes)
    import offers.api  # noqa: F401  (adds the compensation offer routes)

    auth.init_app(app)
    app.register_blueprint(ops_views.bp)
    ops_monitoring.init_app(app)  # /metrics, and the registries of metrics and console home panels
    app.register_blueprint(ops_api.bp)
    app.register_blueprint(incident_views.bp)
    public.init_app(app)  # the status page, history, Atom: served from stored renders
    app.register_blueprint(statuspage.bp)
    from accounts import views as accounts_views
    app.register_blueprint(accounts_views.bp)
    from accounts import public_views as my_views  # /my and /m/<token>: subscriber self-service
    app.register_blueprint(my_views.bp)
    from offers import views as offers_views  # offers on the personal page: accept / decline
    app.register_blueprint(offers_views.bp)
    from offers import console as offers_console  # /ops/incidents/<id>/offers, /ops/offers/<id>
    app.register_blueprint(offers_console.bp)
    from notifications import views as notifications_views  # broadcasts and the message log
    app.register_blueprint(notifications_views.bp)
    from notifications import optout_views, webhooks  # Twilio webhooks; console opt-outs and inbound SMS
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(optout_views.bp)
    from notifications import unsubscribe  # signed one-click unsubscribe links (RFC 8058)
    app.register_blueprint(unsubscribe.bp)
    from notifications import monitoring as notifier_monitoring  # the queue on /ops and in /metrics
    notifier_monitoring.init_app(app)
    ops_cli.init_app(app)

    from accounts import cli as accounts_cli
    from notifications import cli as notifier_cli
    accounts_cli.init_app(app)
    notifier_cli.init_app(app)
    from offers import cli as offers_cli
    offers_cli.init_app(app)
    from core import periodic_cli, periodic_views  # scheduled tasks: `flask periodic run|status`, /ops/tasks
    periodic_cli.init_app(app)
    app.register_blueprint(periodic_views.bp)

    from demo import seed as demo
    from ops import backup
    backup.init_app(app)
    demo.init_app(app)
    return app
