"""The public status page: no sign-in, cacheable, readable without JavaScript."""
from datetime import datetime

from flask import Blueprint, abort, current_app, render_template, request

from core.db import db, utcnow
from core import renders
from incidents import feeds, history, queries
from incidents.models import ComponentStatus

bp = Blueprint("public", __name__)

MONTHS_PER_PAGE = 3  # /history?page=N shows one quarter-sized slice of months, newest first
MAX_PAGE = 400  # a century of quarters


def _shared(template: str, **context) -> str:
    """A page stored and served to everyone (core.renders): no visitor's session in it, and its own time."""
    return render_template(template, shared_page=True, rendered_at=utcnow(), **context)


def _page(body, *, mimetype: str = "text/html", last_modified: datetime | None = None, status: int = 200,
          headers: tuple = ()) -> renders.Built:
    return renders.Built(body, mimetype=mimetype, status=status, headers=headers,
                         last_modified=last_modified or queries.last_change_at(db.session))


def _visible(components):
    """Components shown on the page: "only show if degraded" ones are hidden while operational."""
    return [c for c in components
            if not (c.only_show_if_degraded and c.status == ComponentStatus.OPERATIONAL)]


def _bars_modified() -> datetime:
    """Last-Modified for pages with history bars: they also change when a new UTC day begins."""
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    return max(queries.last_change_at(db.session), midnight)


def _sections():
    """(group, components) sections of visible components, plus their 90-day histories."""
    sections = [(group, _visible(components)) for group, components in queries.components_by_group(db.session)]
    sections = [(group, components) for group, components in sections if components]
    shown = [c for _, components in sections for c in components if c.showcase]
    return sections, history.component_histories(db.session, shown)


@bp.get("/")
def index():
    return renders.serve("/", _index, daily=True)


def _index() -> renders.Built:
    indicator, description = queries.overall_status(db.session)
    sections, histories = _sections()
    updated = queries.last_change_at(db.session)
    html = _shared(
        "public/index.html", indicator=indicator, description=description, updated=updated,
        incidents=queries.unresolved_incidents(db.session),
        active_maintenance=queries.active_maintenance(db.session),
        upcoming_maintenance=queries.upcoming_maintenance(db.session),
        sections=sections, histories=histories,
    )
    return _page(html, last_modified=_bars_modified())


@bp.get("/incidents/<int:incident_id>")
def incident(incident_id: int):
    return renders.serve(f"/incidents/{incident_id}", lambda: _incident(incident_id))


def _incident(incident_id: int) -> renders.Built:
    found = queries.incident_with_timeline(db.session, incident_id=incident_id)
    if found is None:  # stored too: guessing ids costs no query until something changes
        return _page(_shared("errors/error.html", code=404, title="Not Found",
                                     message="There is nothing here. Check the address."), status=404)
    return _page(_shared("public/incident.html", incident=found))


@bp.get("/history", endpoint="history")
def history_page():
    raw = request.args.get("page", "1")
    # ASCII digits only, and short: "²" passes isdigit() and a 5000-digit number breaks int().
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not 1 <= int(raw) <= MAX_PAGE:
        abort(404)
    page = int(raw)
    return renders.serve(f"/history?page={page}", lambda: _history(page), daily=True)


def _history(page: int) -> renders.Built:
    months, end = history.months_for_page(page, MONTHS_PER_PAGE, now=utcnow())
    start = months[-1]
    by_month = history.by_month(queries.incidents_between(db.session, start=start, end=end), months)
    sections, histories = _sections()
    html = _shared(
        "public/history.html", by_month=by_month, page=page, sections=sections, histories=histories,
        older=queries.has_incidents_before(db.session, before=start), newer=page > 1,
    )
    return _page(html, last_modified=_bars_modified())


@bp.get("/history.atom")
def history_atom():
    return renders.serve("/history.atom", _atom)


def _atom() -> renders.Built:
    body = feeds.build_atom(queries.recent_updates(db.session, limit=100),
                            base_url=current_app.config["PUBLIC_BASE_URL"],
                            title=current_app.config["PAGE_NAME"], updated=queries.last_change_at(db.session))
    return _page(body, mimetype="application/atom+xml",
                 headers=(("Content-Type", "application/atom+xml; charset=utf-8"),))


def init_app(app) -> None:
    """The public pages, and the models whose changes renew their stored renders."""
    from incidents.models import Component, ComponentGroup, ComponentStatusEvent, Incident, IncidentUpdate

    renders.track(Incident, IncidentUpdate, Component, ComponentGroup, ComponentStatusEvent)
    app.register_blueprint(bp)
