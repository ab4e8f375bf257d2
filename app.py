"""The application factory: `flask --app app ...` finds create_app here.

It reads as a table of contents: settings, then each layer's init_app, lowest first (the README lists the
layers and why each sits where it does). Each domain registers its own blueprints, commands and entries in
the registries of the layers below it; nothing here knows a domain's insides."""
from flask import Flask

import accounts.wiring
import config
import core.wiring
import incidents.wiring
import notifications.wiring
import offers.wiring
import ops.wiring
from demo import seed as demo

LAYERS = (core.wiring, ops.wiring, notifications.wiring, incidents.wiring, accounts.wiring, offers.wiring, demo)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the Lifeboat app: settings, then every layer, lowest first."""
    app = Flask(__name__, instance_path=str(config.INSTANCE_DIR))
    app.config.from_object(config.Config)
    if test_config:
        app.config.update(test_config)
    config.INSTANCE_DIR.mkdir(exist_ok=True)
    hops = int(app.config.get("PROXY_FIX_HOPS") or 0)
    if hops > 0:  # behind reverse proxies: trust exactly their X-Forwarded-* headers (see config.py)
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    for layer in LAYERS:  # core: database, web plumbing; then ops, the notifier, incidents, accounts, offers
        layer.init_app(app)
    return app
