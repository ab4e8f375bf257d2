"""The Atom 1.0 feed of incident updates (/history.atom), built with ElementTree so escaping is right."""
from datetime import datetime
from xml.etree import ElementTree as ET

from markupsafe import escape

from core import markdown
from core.text import strip_unstorable
from incidents.models import IncidentUpdate

ATOM_NS = "http://www.w3.org/2005/Atom"


def _el(parent, tag: str, text: str | None = None, **attrs) -> ET.Element:
    # ElementTree escapes markup but writes control characters as they are, which no XML reader accepts:
    # rows stored before input was cleaned (core.text) must not break the feed for every reader.
    el = ET.SubElement(parent, tag, {k: strip_unstorable(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = strip_unstorable(text)
    return el


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def update_url(base_url: str, update: IncidentUpdate) -> str:
    """The stable address of one update: the incident page with the update's fragment."""
    return f"{base_url}/incidents/{update.incident_id}#update-{update.id}"


def _content(update: IncidentUpdate) -> str:
    html = str(markdown.render(update.body))
    changes = [f"{escape(c.component.name)}: {c.new_status.label.lower()}" for c in update.component_changes]
    if changes:
        html += f"<p>Components: {'; '.join(changes)}</p>"
    return html


def build_atom(updates: list[IncidentUpdate], *, base_url: str, title: str, updated: datetime) -> bytes:
    """A complete Atom document: one entry per incident update, in the order given (newest first)."""
    feed = ET.Element("feed", xmlns=ATOM_NS)  # plain tags under the default namespace
    _el(feed, "id", f"{base_url}/history.atom")
    _el(feed, "title", f"{title} — incident history")
    _el(feed, "updated", _iso(updates[0].display_at if updates else updated))
    _el(feed, "link", rel="self", type="application/atom+xml", href=f"{base_url}/history.atom")
    _el(feed, "link", rel="alternate", type="text/html", href=f"{base_url}/history")
    author = _el(feed, "author")
    _el(author, "name", title)
    _el(author, "uri", f"{base_url}/")
    for update in updates:
        incident = update.incident
        entry = _el(feed, "entry")
        _el(entry, "id", update_url(base_url, update))
        _el(entry, "title", f"{incident.name} — {update.status.label}")
        _el(entry, "published", _iso(update.created_at))
        _el(entry, "updated", _iso(update.display_at))
        _el(entry, "link", rel="alternate", type="text/html", href=update_url(base_url, update))
        _el(entry, "content", _content(update), type="html")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
