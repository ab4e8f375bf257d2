"""Statuspage-compatible public JSON (/api/v2/...), so existing widgets, monitors and clients work.

Every answer is public, cacheable for a short while (ETag, Last-Modified, max-age; 304 when
fresh) and readable from other sites (CORS), since status widgets fetch it from other origins."""
from functools import wraps

from flask import Blueprint, current_app, request

from core import renders
from core.db import db
from incidents import queries, serializers, service
from incidents.models import IncidentKind

bp = Blueprint("statuspage", __name__, url_prefix="/api/v2")

RECENT_LIMIT = 50  # Statuspage lists the 50 most recent incidents / maintenances


def _answer(**parts) -> renders.Built:
    """{"page": ..., **parts} as a public, cacheable, cross-origin JSON body."""
    changed_at = queries.last_change_at(db.session)
    body = current_app.json.dumps({"page": serializers.page(_settings(), changed_at), **parts})
    return renders.Built(body, mimetype="application/json", last_modified=changed_at, headers=CORS)


CORS = (("Access-Control-Allow-Origin", "*"),)


def _stored(build):
    """Route decorator: the answer comes from its stored render (core.renders), keyed by the path."""
    @wraps(build)
    def view():
        return renders.serve(request.path, build)
    return view


def _settings() -> serializers.PageSettings:
    return serializers.PageSettings.from_config(current_app.config)


def _status() -> dict:
    return serializers.status(*queries.overall_status(db.session))


def _components() -> list[dict]:
    return serializers.components(service.list_components(db.session), service.list_groups(db.session),
                                  _settings())


def _incidents(incidents) -> list[dict]:
    settings = _settings()
    return [serializers.incident(i, settings) for i in incidents]


def _maintenance_now() -> list:
    """Maintenance under way, then maintenance to come: what summary.json shows."""
    return list(queries.active_maintenance(db.session)) + list(queries.upcoming_maintenance(db.session))


@bp.get("/summary.json")
@_stored
def summary():
    """Status, components, unresolved incidents, and upcoming or in-progress maintenance."""
    return _answer(
        components=_components(),
        incidents=_incidents(queries.unresolved_incidents(db.session)),
        scheduled_maintenances=_incidents(_maintenance_now()),
        status=_status(),
    )


@bp.get("/status.json")
@_stored
def status():
    """The rollup indicator and its description."""
    return _answer(status=_status())


@bp.get("/components.json")
@_stored
def components():
    """Every component, with groups listed as components that have "group": true."""
    return _answer(components=_components())


@bp.get("/incidents.json")
@_stored
def incidents():
    """The 50 most recent incidents, of any status."""
    return _answer(incidents=_incidents(
        queries.incidents_with_timeline(db.session, kind=IncidentKind.INCIDENT, limit=RECENT_LIMIT)))


@bp.get("/incidents/unresolved.json")
@_stored
def unresolved_incidents():
    """Incidents not yet resolved (investigating, identified, monitoring)."""
    return _answer(incidents=_incidents(queries.unresolved_incidents(db.session)))


@bp.get("/scheduled-maintenances.json")
@_stored
def scheduled_maintenances():
    """The 50 most recent maintenances, of any status."""
    return _answer(scheduled_maintenances=_incidents(
        queries.incidents_with_timeline(db.session, kind=IncidentKind.MAINTENANCE, limit=RECENT_LIMIT)))


@bp.get("/scheduled-maintenances/upcoming.json")
@_stored
def upcoming_maintenances():
    """Maintenance still in the scheduled state."""
    return _answer(scheduled_maintenances=_incidents(queries.upcoming_maintenance(db.session)))


@bp.get("/scheduled-maintenances/active.json")
@_stored
def active_maintenances():
    """Maintenance in progress or being verified."""
    return _answer(scheduled_maintenances=_incidents(queries.active_maintenance(db.session)))
