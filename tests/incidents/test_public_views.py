"""The public status page: banner, incidents, maintenance, components, incident pages, history, caching."""
import re
from datetime import timedelta

from core.db import db, utcnow
from incidents import service
from ops.audit import Actor

ACTOR = Actor.cli("test")


def _component(name, **data):
    component = service.create_component(db.session, actor=ACTOR, data={"name": name, **data})
    db.session.commit()
    return component


def _incident(name="Contacts sync failing", **data):
    incident = service.create_incident(db.session, actor=ACTOR, data={
        "name": name, "impact": "major", "status": "investigating", "message": "We are looking into it.", **data})
    db.session.commit()
    return incident


def _update(incident, status, message, **data):
    update = service.post_update(db.session, actor=ACTOR, incident_id=incident.id,
                                 data={"status": status, "message": message, **data})
    db.session.commit()
    return update


def _maintenance(name="Database upgrade", start_in=timedelta(days=1), **data):
    start = utcnow() + start_in
    item = service.schedule_maintenance(db.session, actor=ACTOR, data={
        "name": name, "message": "We will upgrade the database.", "scheduled_for": start,
        "scheduled_until": start + timedelta(hours=2), **data})
    db.session.commit()
    return item


def _text(response) -> str:
    return response.get_data(as_text=True)


def test_the_banner_says_all_systems_operational_when_nothing_is_wrong(client):
    _component("Contacts sync")
    page = _text(client.get("/"))
    assert "All Systems Operational" in page
    assert "banner-none" in page
    assert "Contacts sync" in page and "Operational" in page


def test_a_major_incident_shows_in_the_banner_with_its_latest_update(client):
    contacts = _component("Contacts sync")
    incident = _incident(component_ids=[contacts.id], component_statuses={str(contacts.id): "partial_outage"})
    _update(incident, "identified", "The **storage cluster** lost a volume.")
    page = _text(client.get("/"))
    assert "Partial System Outage" in page  # impact major -> Statuspage's "major" wording
    assert "banner-major" in page
    assert "Active incidents" in page
    assert f'href="/incidents/{incident.id}"' in page
    assert "<strong>storage cluster</strong>" in page  # the latest update, rendered
    assert "We are looking into it." not in page  # only the latest update on the front page
    assert "Impact: Major" in page and "Identified" in page
    assert "Partial outage" in page  # the component's status as text, not colour alone


def test_a_component_in_major_outage_makes_the_banner_say_major_service_outage(client):
    contacts = _component("Contacts sync")
    _incident(impact="minor", component_ids=[contacts.id], component_statuses={str(contacts.id): "major_outage"})
    page = _text(client.get("/"))
    assert "Major Service Outage" in page and "banner-critical" in page
    assert "Major outage" in page


def test_maintenance_in_progress_shows_in_the_banner(client):
    database = _component("Database")
    item = _maintenance(start_in=timedelta(minutes=-5), component_ids=[database.id])
    _update(item, "in_progress", "Started.")
    page = _text(client.get("/"))
    assert "Service Under Maintenance" in page
    assert "Maintenance in progress" in page
    assert "Under maintenance" in page


def test_upcoming_maintenance_is_listed_with_its_window(client):
    item = _maintenance()
    page = _text(client.get("/"))
    assert "Scheduled maintenance" in page
    assert item.name in page
    assert f'datetime="{item.scheduled_for.isoformat().replace("+00:00", "Z")}"' in page
    assert f'datetime="{item.scheduled_until.isoformat().replace("+00:00", "Z")}"' in page


def test_components_marked_only_show_if_degraded_are_hidden_while_operational(client):
    _component("Contacts sync")
    hidden = _component("Legacy WAP gateway", only_show_if_degraded=True)
    assert "Legacy WAP gateway" not in _text(client.get("/"))
    service.update_component(db.session, actor=ACTOR, component_id=hidden.id, data={"status": "partial_outage"})
    db.session.commit()
    page = _text(client.get("/"))
    assert "Legacy WAP gateway" in page and "Partial outage" in page


def test_components_are_grouped_and_ordered_by_position(client):
    group = service.create_group(db.session, actor=ACTOR, data={"name": "Sync services", "position": 5})
    db.session.commit()
    _component("Calendar", group_id=group.id, position=2)
    _component("Contacts", group_id=group.id, position=1)
    page = _text(client.get("/"))
    assert "Sync services" in page
    assert page.index("Contacts") < page.index("Calendar")


def test_components_not_showcased_show_their_status_without_a_history_bar(client):
    _component("Contacts sync")
    _component("Internal relay", showcase=False)
    page = _text(client.get("/"))
    assert "Internal relay" in page
    assert "Contacts sync, last 90 days:" in page
    assert "Internal relay, last 90 days:" not in page


def test_the_page_links_to_history_the_feed_and_my_account(client):
    page = _text(client.get("/"))
    assert '<link rel="alternate" type="application/atom+xml"' in page
    assert 'href="/history"' in page and 'href="/history.atom"' in page
    assert 'href="/my"' in page and "Check my account" in page
    for landmark in ("<header", "<nav", "<main", "<footer"):
        assert landmark in page
    assert page.count("<h1") == 1


def test_the_incident_page_shows_the_whole_timeline_newest_first_and_the_postmortem(client):
    contacts = _component("Contacts sync")
    incident = _incident(component_ids=[contacts.id], component_statuses={str(contacts.id): "major_outage"})
    _update(incident, "identified", "Found the failed volume.")
    _update(incident, "resolved", "Restored from the backup.", component_statuses={str(contacts.id): "operational"})
    _update(incident, "postmortem", "## What happened\nA firmware bug.")
    page = _text(client.get(f"/incidents/{incident.id}"))
    positions = [page.index(t) for t in ("Restored from the backup.", "Found the failed volume.",
                                         "We are looking into it.")]
    assert positions == sorted(positions)
    assert "Postmortem" in page and "A firmware bug." in page
    assert all(f'id="update-{u.id}"' in page for u in incident.updates)
    assert "Contacts sync: operational → <strong>major outage</strong>" in page
    assert "Affected components" in page and "Impact" in page
    assert page.count("<h1") == 1


def test_the_maintenance_page_shows_its_window(client):
    item = _maintenance()
    page = _text(client.get(f"/incidents/{item.id}"))
    assert "Scheduled maintenance" in page and "Window" in page
    assert "We will upgrade the database." in page


def test_an_unknown_incident_is_the_styled_404(client):
    response = client.get("/incidents/999")
    assert response.status_code == 404
    assert "There is nothing here" in _text(response)
    assert 400 <= client.get("/incidents/" + "9" * 30).status_code < 500


def test_history_groups_incidents_and_maintenance_by_month(client):
    last_month_day = utcnow().replace(day=1) - timedelta(days=20)
    old = _incident("Photos slow")
    old.started_at = last_month_day
    _maintenance("Router swap", start_in=last_month_day - utcnow())
    _incident("Email delayed")
    db.session.commit()
    page = _text(client.get("/history"))
    this_month, last_month = utcnow().strftime("%B %Y"), old.started_at.strftime("%B %Y")
    assert page.index(this_month) < page.index("Email delayed") < page.index(last_month)
    assert page.index(last_month) < page.index("Photos slow") and page.index(last_month) < page.index("Router swap")


def test_history_pages_go_back_by_quarter(client):
    old = _incident("Ancient outage")
    old.started_at = utcnow() - timedelta(days=200)
    db.session.commit()
    first = _text(client.get("/history"))
    assert "Ancient outage" not in first and "?page=2" in first
    pages = [_text(client.get(f"/history?page={n}")) for n in (2, 3)]
    assert any("Ancient outage" in p for p in pages)
    assert client.get("/history?page=0").status_code == 404
    for bad in ("abc", "-1", "1.5", "²", "9" * 5000, "401"):
        assert client.get(f"/history?page={bad}").status_code == 404, bad


def test_public_pages_are_cacheable_and_answer_304_to_a_matching_etag(client):
    _incident()
    for url in ("/", "/incidents/1", "/history", "/history.atom"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "public" in response.headers["Cache-Control"]
        assert "max-age=30" in response.headers["Cache-Control"]
        assert response.headers["Last-Modified"]
        again = client.get(url, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304, url


def test_pages_have_no_inline_scripts_or_styles_and_markdown_script_is_inert(client):
    _incident("Bad <b>name</b>", message="<script>alert(1)</script> and [x](javascript:alert(1))")
    for url in ("/", "/incidents/1", "/history"):
        page = _text(client.get(url))
        for tag in re.findall(r"<script[^>]*>", page):
            assert "src=" in tag, (url, tag)
        assert "<script>alert" not in page
        assert "style=" not in page
        assert 'href="javascript:' not in page
        assert "<b>name</b>" not in page


def test_headings_go_down_one_level_at_a_time(client):
    group = service.create_group(db.session, actor=ACTOR, data={"name": "Sync services"})
    db.session.commit()
    _component("Contacts", group_id=group.id)
    _incident()
    _maintenance()
    for url in ("/", "/incidents/1", "/history"):
        levels = [int(n) for n in re.findall(r"<h([1-6])[\s>]", _text(client.get(url)))]
        assert levels[0] == 1 and levels.count(1) == 1, url
        assert all(b - a <= 1 for a, b in zip(levels, levels[1:])), (url, levels)
