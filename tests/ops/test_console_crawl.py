"""Every console page can be found by clicking: starting at /ops/ and following only the links on the pages
(as an admin, who may open all of them), a crawl reaches every GET route under /ops/ whose parameters are ids
or a fixed choice, for an outage with accounts, imports (one with rejected rows), a broadcast, messages,
an offer, a maintenance, an API token and a second operator."""
import re
from datetime import datetime, timezone
from collections import deque
from html import unescape
from urllib.parse import urldefrag, urlsplit

from werkzeug.routing import AnyConverter, IntegerConverter

from accounts import audiences
from core.db import db
from ops import service as ops_service
from ops.audit import Actor
from tests.accounts.factories import run_import
from tests.conftest import make_operator, sign_in
from tests.offers.helpers import incident_with, make_program

ACTOR = Actor.cli("test")
HREF = re.compile(r'<a\b[^>]*\bhref="([^"]+)"')


def outage() -> None:
    incident = incident_with({"A1": {"photos": "lost"}, "A2": {"contacts": "recovered"}})
    run_import(incident.id, "account_number,name,phone,email,locale\nA9,Bad,not a phone,,en\n", skip_invalid=True)
    audiences.broadcast_to_incident(db.session, actor=ACTOR, incident_id=incident.id,
                                    data={"message": "Hello", "channels": ["sms", "email"]})
    make_program(incident.id)
    from incidents import service as incidents

    incidents.schedule_maintenance(db.session, actor=ACTOR, data={
        "name": "Storage move", "message": "Planned.", "scheduled_for": datetime(2030, 1, 1, 1, tzinfo=timezone.utc),
        "scheduled_until": datetime(2030, 1, 1, 3, tzinfo=timezone.utc)})
    closed = incidents.create_incident(db.session, actor=ACTOR, data={
        "name": "Old outage", "impact": "minor", "message": "Slow sync."})
    db.session.flush()
    incidents.post_update(db.session, actor=ACTOR, incident_id=closed.id,
                          data={"status": "resolved", "message": "Fixed."})
    incidents.create_component(db.session, actor=ACTOR, data={"name": "Photos"})
    from accounts.models import Subscription

    db.session.add(Subscription(channel="email", address="follower@example.org", language="en"))
    operator = make_operator("viewer", email="viewer@example.com")
    ops_service.create_token(db.session, actor=ACTOR, operator_id=operator.id)
    db.session.commit()


def required_endpoints(app) -> set[str]:
    """GET routes of the console that a link can fill: ids and fixed choices, no free-form text."""
    out = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/ops/") or "GET" not in rule.methods:
            continue
        if all(isinstance(c, (IntegerConverter, AnyConverter)) for c in rule._converters.values()):
            out.add(rule.endpoint)
    return out


def crawl(client, app, start: str = "/ops/", limit: int = 600) -> tuple[set[str], list[str]]:
    adapter = app.url_map.bind("status.example.com")
    seen, queue, reached, broken = {start}, deque([start]), set(), []
    while queue and len(seen) <= limit:
        path = queue.popleft()
        response = client.get(path)
        if response.status_code != 200:
            broken.append(f"{path} -> {response.status_code}")
            continue
        endpoint, _ = adapter.match(urlsplit(path).path, method="GET")
        reached.add(endpoint)
        if not response.content_type.startswith("text/html"):
            continue
        for href in HREF.findall(response.get_data(as_text=True)):
            url, _ = urldefrag(unescape(href))
            parts = urlsplit(url)
            if parts.netloc or not parts.path.startswith("/ops/") or url in seen:
                continue
            seen.add(url)
            queue.append(url)
    return reached, broken


def test_a_crawl_by_links_reaches_every_console_page(client, app):
    outage()
    signed_out = client.get("/ops/")  # the sign-in page is where the console starts for everybody
    assert signed_out.status_code == 302 and "/ops/sign-in" in signed_out.headers["Location"]
    admin = make_operator("admin")
    assert sign_in(client, admin).status_code == 302
    reached, broken = crawl(client, app)
    assert not broken, broken
    missing = required_endpoints(app) - reached - {"ops.sign_in"}
    assert not missing, f"no link leads to: {sorted(missing)}"
    # Free-form parameters, reached all the same: the import forms (kind) and an account's page (its number).
    assert {"accounts_console.import_new", "accounts_console.account_page"} <= reached
