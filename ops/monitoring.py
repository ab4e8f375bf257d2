"""/metrics in the Prometheus text format, for a scraper holding a bearer token, and the registries that let
higher domains put their figures there and on the console's home page.

ops owns the endpoint (its protection is ops' API tokens) but knows no figures: a domain adds a collector with
`register_collector` and a console home panel with `register_home_panel` from its own `init_app` (the
notifier does: notifications.monitoring). Every figure is read from the database at scrape time, so every web
process answers the same, whichever one the scraper reaches.

Who may read it: the scraper sends `Authorization: Bearer <secret>`, where the secret is METRICS_TOKEN (a
setting, compared in constant time) or an ops API token of an active operator (any role: the figures are
counts, never personal data). Anything else is a 401 that says what is expected: the endpoint is in the
published contract, so hiding it behind a 404 would only slow down whoever sets up the scraper."""
import hashlib
import hmac
import logging
from typing import Callable, Iterable

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, g, request

from core.db import db, utcnow
from ops.api import LAST_USED_RESOLUTION
from ops.models import ApiToken, Role
from ops.service import token_for_secret

log = logging.getLogger("lifeboat.metrics")

bp = Blueprint("monitoring", __name__)

MIN_TOKEN_LENGTH = 16  # a shorter METRICS_TOKEN is ignored (and logged): it could be guessed


# ---- registries filled by higher domains ---------------------------------------------------------

def register_collector(app, name: str, collect: Callable[[object], Iterable]) -> None:
    """Add `collect(session)` -> prometheus_client metric families to /metrics (`name` makes it idempotent)."""
    app.extensions.setdefault("lifeboat_metrics", {})[name] = collect


def register_home_panel(app, name: str, template: str, context: Callable[[object], dict]) -> None:
    """Add a panel to the console's home page: `template` rendered with `panel=context(session)`."""
    app.extensions.setdefault("lifeboat_home_panels", {})[name] = (template, context)


def home_panels(session) -> list[tuple[str, dict]]:
    """(template, context) of every registered home panel, in the order they were registered."""
    return [(template, context(session))
            for template, context in current_app.extensions.get("lifeboat_home_panels", {}).values()]


# ---- /metrics -------------------------------------------------------------------------------------

class _Collected:
    """The registered collectors as one prometheus_client collector, reading through `session`."""

    def __init__(self, session, collectors):
        self.session, self.collectors = session, collectors

    def collect(self):
        for collect in self.collectors:
            yield from collect(self.session)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def _allowed(secret: str) -> bool:
    """METRICS_TOKEN (equal-length digests, compared in constant time), else a live ops API token."""
    configured = current_app.config.get("METRICS_TOKEN") or ""
    if len(configured) >= MIN_TOKEN_LENGTH and hmac.compare_digest(_digest(secret), _digest(configured)):
        return True
    if configured and len(configured) < MIN_TOKEN_LENGTH:
        log.error("METRICS_TOKEN is shorter than %d characters and is ignored", MIN_TOKEN_LENGTH)
    token = token_for_secret(db.session, secret)
    if token is None or not token.operator.can(Role.VIEWER):
        return False
    now = utcnow()  # as the API does: last used, at most once a minute, so admins see which tokens are in use
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        db.session.execute(sa.update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
        db.session.commit()
    return True


def _refused(message: str, error: str | None = None) -> Response:
    response = Response(message + "\n", status=401, mimetype="text/plain")
    response.headers["WWW-Authenticate"] = 'Bearer realm="lifeboat-metrics"' + (f', error="{error}"' if error else "")
    return response


@bp.get("/metrics")
def metrics():
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import choose_encoder

    g.shared_page = True  # no session cookie for a scraper (core.web.SessionInterface)
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        response = _refused("Send a token: Authorization: Bearer <METRICS_TOKEN or an ops API token>.")
    elif not _allowed(secret.strip()):
        response = _refused("This token is not METRICS_TOKEN nor a live ops API token.", "invalid_token")
    else:
        # A registry per scrape: the figures are read now, from the database, not kept in this process.
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collected(db.session, current_app.extensions.get("lifeboat_metrics", {}).values()))
        # The format the scraper asks for (Accept): Prometheus text 0.0.4 by default, OpenMetrics on request.
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = Response(encode(registry), content_type=content_type)
        db.session.rollback()  # read-only: end the transaction now
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app) -> None:
    app.register_blueprint(bp)
