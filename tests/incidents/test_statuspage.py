"""The Statuspage-compatible public JSON under /api/v2, checked against Statuspage's real shapes.

Expected keys, enums and types are written from public descriptions of Atlassian Statuspage's v2 API,
independent of our serializers:
- a real page's summary.json (HTX, https://status-swap.huobigroup.com/api/v2/summary.json, documented at
  https://www.htx.com/en-us/opend/newApiPages/?id=5d517664-77b6-11ed-9966-0242ac110003),
- the client model of githubstatus.com in Gowee/github-status-bot pkg/api/types.go,
- the statuspage.io npm client's dist/interfaces/Result.d.ts (Component has start_date, group, group_id),
- status.atlassian.com/api (summary = page, status, components, incidents, scheduled_maintenances) and the
  MongoDB cloud-status API reference of the same shapes (impact may be "maintenance").
"""
from datetime import datetime, timedelta, timezone

import jsonschema
import pytest
import sqlalchemy as sa

from core.db import db, utcnow
from core.renders import RenderStore
from incidents import serializers, service
from ops.audit import Actor

ACTOR = Actor.cli("test")

ENDPOINTS = {
    "/api/v2/summary.json": {"page", "components", "incidents", "scheduled_maintenances", "status"},
    "/api/v2/status.json": {"page", "status"},
    "/api/v2/components.json": {"page", "components"},
    "/api/v2/incidents.json": {"page", "incidents"},
    "/api/v2/incidents/unresolved.json": {"page", "incidents"},
    "/api/v2/scheduled-maintenances.json": {"page", "scheduled_maintenances"},
    "/api/v2/scheduled-maintenances/upcoming.json": {"page", "scheduled_maintenances"},
    "/api/v2/scheduled-maintenances/active.json": {"page", "scheduled_maintenances"},
}
PAGE_KEYS = {"id", "name", "url", "time_zone", "updated_at"}
COMPONENT_KEYS = {"id", "name", "status", "created_at", "updated_at", "position", "description", "showcase",
                  "start_date", "group_id", "page_id", "group", "only_show_if_degraded"}
GROUP_KEYS = COMPONENT_KEYS | {"components"}  # a group also lists its children's ids
INCIDENT_KEYS = {"id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at", "impact",
                 "shortlink", "started_at", "page_id", "incident_updates", "components"}
MAINTENANCE_KEYS = INCIDENT_KEYS | {"scheduled_for", "scheduled_until"}
# custom_tweet and tweet_id: still present (null) in real pages' output, as in the HTX example.
UPDATE_KEYS = {"id", "status", "body", "incident_id", "created_at", "updated_at", "display_at",
               "affected_components", "deliver_notifications", "custom_tweet", "tweet_id"}
AFFECTED_KEYS = {"code", "name", "old_status", "new_status"}

COMPONENT_STATUSES = ["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"]
INCIDENT_STATUSES = ["investigating", "identified", "monitoring", "resolved", "postmortem"]
MAINTENANCE_STATUSES = ["scheduled", "in_progress", "verifying", "completed"]
IMPACTS = ["none", "minor", "major", "critical", "maintenance"]

# ---- an independent JSON Schema of the same shapes -----------------------------------------------

TIME = {"type": "string", "format": "date-time"}
TIME_OR_NULL = {"anyOf": [TIME, {"type": "null"}]}
ID = {"type": "string", "minLength": 1}


def _object(properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": sorted(properties),
            "additionalProperties": False}


PAGE_SCHEMA = _object({"id": ID, "name": {"type": "string"}, "url": {"type": "string"},
                       "time_zone": {"type": "string"}, "updated_at": TIME})
COMPONENT_PROPS = {
    "id": ID, "name": {"type": "string"}, "status": {"enum": COMPONENT_STATUSES}, "created_at": TIME,
    "updated_at": TIME, "position": {"type": "integer"}, "description": {"type": ["string", "null"]},
    "showcase": {"type": "boolean"}, "start_date": {"type": ["string", "null"]},
    "group_id": {"type": ["string", "null"]}, "page_id": ID, "group": {"type": "boolean"},
    "only_show_if_degraded": {"type": "boolean"},
}
COMPONENT_SCHEMA = {"oneOf": [
    _object({**COMPONENT_PROPS, "group": {"const": False}}),
    _object({**COMPONENT_PROPS, "group": {"const": True}, "components": {"type": "array", "items": ID}}),
]}
UPDATE_SCHEMA = _object({
    "id": ID, "status": {"enum": INCIDENT_STATUSES + MAINTENANCE_STATUSES}, "body": {"type": "string"},
    "incident_id": ID, "created_at": TIME, "updated_at": TIME, "display_at": TIME,
    "affected_components": {"anyOf": [{"type": "null"}, {"type": "array", "minItems": 1, "items": _object({
        "code": ID, "name": {"type": "string"}, "old_status": {"enum": COMPONENT_STATUSES},
        "new_status": {"enum": COMPONENT_STATUSES}})}]},
    "deliver_notifications": {"type": "boolean"}, "custom_tweet": {"type": "null"}, "tweet_id": {"type": "null"},
})
INCIDENT_PROPS = {
    "id": ID, "name": {"type": "string"}, "status": {"enum": INCIDENT_STATUSES}, "created_at": TIME,
    "updated_at": TIME, "monitoring_at": TIME_OR_NULL, "resolved_at": TIME_OR_NULL, "impact": {"enum": IMPACTS},
    "shortlink": {"type": "string"}, "started_at": TIME, "page_id": ID,
    "incident_updates": {"type": "array", "items": UPDATE_SCHEMA},
    "components": {"type": "array", "items": COMPONENT_SCHEMA},
}
INCIDENT_SCHEMA = _object(INCIDENT_PROPS)
MAINTENANCE_SCHEMA = _object({**INCIDENT_PROPS, "status": {"enum": MAINTENANCE_STATUSES},
                              "scheduled_for": TIME, "scheduled_until": TIME})
STATUS_SCHEMA = _object({"indicator": {"enum": ["none", "minor", "major", "critical", "maintenance"]},
                         "description": {"type": "string"}})
PARTS = {
    "page": PAGE_SCHEMA, "status": STATUS_SCHEMA,
    "components": {"type": "array", "items": COMPONENT_SCHEMA},
    "incidents": {"type": "array", "items": INCIDENT_SCHEMA},
    "scheduled_maintenances": {"type": "array", "items": MAINTENANCE_SCHEMA},
}


def schema_for(path: str) -> dict:
    return _object({key: PARTS[key] for key in ENDPOINTS[path]})


# ---- factories ----------------------------------------------------------------------------------

def make_group(name="Sync", **data):
    group = service.create_group(db.session, actor=ACTOR, data={"name": name, **data})
    db.session.commit()
    return group


def make_component(name="Contacts sync", **data):
    component = service.create_component(db.session, actor=ACTOR, data={"name": name, **data})
    db.session.commit()
    return component


def open_incident(name="Contacts missing", impact="minor", **data):
    incident = service.create_incident(db.session, actor=ACTOR, data={
        "name": name, "impact": impact, "status": "investigating", "message": "We are looking into it.", **data})
    db.session.commit()
    return incident


def update(incident, status, message="Update.", **data):
    u = service.post_update(db.session, actor=ACTOR, incident_id=incident.id,
                            data={"status": status, "message": message, **data})
    db.session.commit()
    return u


def plan_maintenance(name="Database upgrade", hours_from_now=24, **data):
    start = utcnow() + timedelta(hours=hours_from_now)
    m = service.schedule_maintenance(db.session, actor=ACTOR, data={
        "name": name, "message": "Planned work.", "scheduled_for": start,
        "scheduled_until": start + timedelta(hours=2), **data})
    db.session.commit()
    return m


def rich_data():
    """A group with children, an ungrouped component, incidents open and resolved, maintenance of all kinds."""
    sync = make_group("Sync")
    contacts = make_component("Contacts sync", group_id=sync.id)
    calendar = make_component("Calendar", group_id=sync.id)
    photos = make_component("Photos")
    open_ = open_incident("Contacts missing", impact="major", component_ids=[contacts.id],
                          component_statuses={str(contacts.id): "major_outage"}, notify=True)
    update(open_, "identified", "Storage array failed.")
    resolved = open_incident("Slow calendar", component_ids=[calendar.id],
                             component_statuses={str(calendar.id): "degraded_performance"})
    update(resolved, "resolved", "Fixed.")
    upcoming = plan_maintenance("Photo store move", component_ids=[photos.id])
    active = plan_maintenance("Calendar reindex", hours_from_now=-1, component_ids=[calendar.id])
    update(active, "in_progress", "Started.")
    done = plan_maintenance("Old work", hours_from_now=-5)
    update(done, "in_progress", "Started.")
    update(done, "completed", "Done.")
    return dict(sync=sync, contacts=contacts, calendar=calendar, photos=photos, open=open_, resolved=resolved,
                upcoming=upcoming, active=active, done=done)


def parses_as_aware_iso(value: str) -> bool:
    parsed = datetime.fromisoformat(value)
    return parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)


# ---- shapes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ENDPOINTS)
def test_every_endpoint_answers_statuspage_shaped_json_even_when_empty(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == ENDPOINTS[path]
    assert set(body["page"]) == PAGE_KEYS
    jsonschema.validate(body, schema_for(path), format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("path", ENDPOINTS)
def test_every_endpoint_matches_the_statuspage_schema_with_real_data(client, path):
    rich_data()
    body = client.get(path).get_json()
    jsonschema.validate(body, schema_for(path), format_checker=jsonschema.FormatChecker())
    for key in ("incidents", "scheduled_maintenances"):
        for item in body.get(key, []):
            assert set(item) == (MAINTENANCE_KEYS if key == "scheduled_maintenances" else INCIDENT_KEYS)
            assert all(set(u) == UPDATE_KEYS for u in item["incident_updates"])


def test_page_object_comes_from_the_settings(app, client):
    app.config.update(PAGE_NAME="Sidekick status", PAGE_TIME_ZONE="America/Los_Angeles")
    page = client.get("/api/v2/status.json").get_json()["page"]
    assert page["name"] == "Sidekick status"
    assert page["url"] == "http://status.example.com"
    assert page["time_zone"] == "America/Los_Angeles"
    assert parses_as_aware_iso(page["updated_at"])
    derived = page["id"]
    assert derived == client.get("/api/v2/components.json").get_json()["page"]["id"]  # stable

    app.config["PAGE_ID"] = "y2j98763l56x"  # settings are read at start: a restarted process renders anew
    app.extensions["lifeboat_renders"] = RenderStore(app)
    assert client.get("/api/v2/status.json").get_json()["page"]["id"] == "y2j98763l56x"


def test_components_json_lists_groups_as_components_followed_by_their_children(client):
    data = rich_data()
    components = client.get("/api/v2/components.json").get_json()["components"]
    by_name = {c["name"]: c for c in components}

    group = by_name["Sync"]
    assert set(group) == GROUP_KEYS
    assert group["group"] is True and group["group_id"] is None
    assert group["components"] == [str(data["contacts"].id), str(data["calendar"].id)]
    assert group["status"] == "major_outage"  # the worst of its children
    assert [c["name"] for c in components] == ["Sync", "Contacts sync", "Calendar", "Photos"]

    child = by_name["Contacts sync"]
    assert set(child) == COMPONENT_KEYS
    assert child["group"] is False and child["group_id"] == group["id"]
    assert child["id"] == str(data["contacts"].id)
    assert child["status"] == "major_outage"
    assert by_name["Photos"]["group_id"] is None
    assert by_name["Photos"]["description"] is None  # empty text is null, as on Statuspage
    ids = [c["id"] for c in components]
    assert len(ids) == len(set(ids)), "group and component ids must not collide"
    for c in components:
        assert all(parses_as_aware_iso(c[k]) for k in ("created_at", "updated_at"))
        assert c["status"] in COMPONENT_STATUSES
        assert c["page_id"] == client.get("/api/v2/status.json").get_json()["page"]["id"]


def test_incident_carries_string_ids_iso_times_shortlink_and_affected_components(client):
    data = rich_data()
    incidents = client.get("/api/v2/incidents.json").get_json()["incidents"]
    incident = next(i for i in incidents if i["name"] == "Contacts missing")

    assert incident["id"] == str(data["open"].id)
    assert incident["status"] == "identified"
    assert incident["impact"] == "major"
    assert incident["shortlink"] == f"http://status.example.com/incidents/{data['open'].id}"
    assert incident["monitoring_at"] is None and incident["resolved_at"] is None
    for key in ("created_at", "updated_at", "started_at"):
        assert parses_as_aware_iso(incident[key])
    assert incident["created_at"].endswith("Z") and len(incident["created_at"]) == len("2024-01-02T03:04:05.678Z")
    assert [c["id"] for c in incident["components"]] == [str(data["contacts"].id)]
    assert set(incident["components"][0]) == COMPONENT_KEYS

    newest, first = incident["incident_updates"]  # newest first, as Statuspage orders them
    assert newest["status"] == "identified" and newest["body"] == "Storage array failed."
    assert newest["affected_components"] is None  # no component changed with that update
    assert newest["deliver_notifications"] is False
    assert first["status"] == "investigating"
    assert first["incident_id"] == incident["id"] and isinstance(first["id"], str)
    assert first["deliver_notifications"] is True
    assert first["affected_components"] == [{"code": str(data["contacts"].id), "name": "Contacts sync",
                                            "old_status": "operational", "new_status": "major_outage"}]
    assert set(first["affected_components"][0]) == AFFECTED_KEYS
    for key in ("created_at", "updated_at", "display_at"):
        assert parses_as_aware_iso(first[key])


def test_resolved_incident_has_resolved_at_and_returns_components_to_operational(client):
    data = rich_data()
    incidents = client.get("/api/v2/incidents.json").get_json()["incidents"]
    resolved = next(i for i in incidents if i["id"] == str(data["resolved"].id))
    assert resolved["status"] == "resolved"
    assert parses_as_aware_iso(resolved["resolved_at"])
    assert resolved["incident_updates"][0]["affected_components"] == [{
        "code": str(data["calendar"].id), "name": "Calendar",
        "old_status": "degraded_performance", "new_status": "operational"}]


def test_maintenance_has_its_window_statuses_and_maintenance_impact(client):
    data = rich_data()
    everything = client.get("/api/v2/scheduled-maintenances.json").get_json()["scheduled_maintenances"]
    assert {m["name"]: m["status"] for m in everything} == {
        "Photo store move": "scheduled", "Calendar reindex": "in_progress", "Old work": "completed"}
    upcoming = next(m for m in everything if m["id"] == str(data["upcoming"].id))
    assert set(upcoming) == MAINTENANCE_KEYS
    assert upcoming["impact"] == "maintenance"
    assert parses_as_aware_iso(upcoming["scheduled_for"]) and parses_as_aware_iso(upcoming["scheduled_until"])
    assert datetime.fromisoformat(upcoming["scheduled_until"]) - datetime.fromisoformat(
        upcoming["scheduled_for"]) == timedelta(hours=2)
    active = next(m for m in everything if m["id"] == str(data["active"].id))
    assert active["incident_updates"][0]["affected_components"][0]["new_status"] == "under_maintenance"

    upcoming_only = client.get("/api/v2/scheduled-maintenances/upcoming.json").get_json()
    assert [m["name"] for m in upcoming_only["scheduled_maintenances"]] == ["Photo store move"]
    active_only = client.get("/api/v2/scheduled-maintenances/active.json").get_json()
    assert [m["name"] for m in active_only["scheduled_maintenances"]] == ["Calendar reindex"]

    update(data["active"], "verifying", "Checking.")
    active_only = client.get("/api/v2/scheduled-maintenances/active.json").get_json()
    assert [m["status"] for m in active_only["scheduled_maintenances"]] == ["verifying"]


def test_maintenance_with_an_impact_override_keeps_it(client):
    plan_maintenance(impact="major")
    [m] = client.get("/api/v2/scheduled-maintenances.json").get_json()["scheduled_maintenances"]
    assert m["impact"] == "major"


def test_serializers_need_only_the_models_and_the_page_settings(app):
    data = rich_data()  # no request here: the ops API can reuse the same functions
    settings = serializers.PageSettings.from_config({
        "PUBLIC_BASE_URL": "https://status.example.org/", "PAGE_NAME": "Lifeboat", "PAGE_TIME_ZONE": "Etc/UTC",
        "PAGE_ID": "abc123"})
    out = serializers.incident(data["open"], settings)
    assert out["shortlink"] == f"https://status.example.org/incidents/{data['open'].id}"
    assert out["page_id"] == "abc123" and out["components"][0]["page_id"] == "abc123"
    moment = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=-6)))
    assert serializers.timestamp(moment) == "2024-01-02T09:04:05.678Z"
    assert serializers.timestamp(None) is None


# ---- which items each list holds ----------------------------------------------------------------

def test_summary_holds_unresolved_incidents_and_upcoming_and_active_maintenance_only(client):
    data = rich_data()
    body = client.get("/api/v2/summary.json").get_json()
    assert [i["id"] for i in body["incidents"]] == [str(data["open"].id)]
    assert {m["id"] for m in body["scheduled_maintenances"]} == {str(data["upcoming"].id), str(data["active"].id)}
    assert len(body["components"]) == 4
    assert body["status"] == {"indicator": "critical", "description": "Major Service Outage"}  # a major outage


def test_unresolved_lists_investigating_identified_and_monitoring_but_not_resolved(client):
    first = open_incident("One")
    second = open_incident("Two")
    update(second, "monitoring", "Watching.")
    gone = open_incident("Three")
    update(gone, "resolved", "Done.")
    incidents = client.get("/api/v2/incidents/unresolved.json").get_json()["incidents"]
    assert {i["id"] for i in incidents} == {str(first.id), str(second.id)}
    monitoring = next(i for i in incidents if i["id"] == str(second.id))
    assert parses_as_aware_iso(monitoring["monitoring_at"])
    assert {i["status"] for i in client.get("/api/v2/incidents.json").get_json()["incidents"]} == {
        "investigating", "monitoring", "resolved"}


def test_incidents_json_is_the_50_most_recent_newest_first(client):
    start = utcnow() - timedelta(days=60)
    for n in range(52):
        open_incident(f"Incident {n}", started_at=start + timedelta(hours=n))
    incidents = client.get("/api/v2/incidents.json").get_json()["incidents"]
    assert len(incidents) == 50
    assert incidents[0]["name"] == "Incident 51" and incidents[-1]["name"] == "Incident 2"


def test_incidents_and_maintenance_do_not_mix(client):
    rich_data()
    names = {i["name"] for i in client.get("/api/v2/incidents.json").get_json()["incidents"]}
    assert names == {"Contacts missing", "Slow calendar"}


# ---- status indicator ---------------------------------------------------------------------------

def _indicator(client):
    return client.get("/api/v2/status.json").get_json()["status"]


def test_status_is_none_when_all_is_well(client):
    make_component("Email")
    assert _indicator(client) == {"indicator": "none", "description": "All Systems Operational"}


def test_status_is_minor_for_a_minor_incident(client):
    open_incident(impact="minor")
    assert _indicator(client) == {"indicator": "minor", "description": "Minor Service Outage"}


def test_status_is_major_for_a_partial_outage(client):
    component = make_component("Email")
    service.update_component(db.session, actor=ACTOR, component_id=component.id, data={"status": "partial_outage"})
    db.session.commit()
    assert _indicator(client) == {"indicator": "major", "description": "Partial System Outage"}


def test_status_is_critical_for_a_critical_incident(client):
    open_incident(impact="critical")
    assert _indicator(client) == {"indicator": "critical", "description": "Major Service Outage"}


def test_status_is_maintenance_while_maintenance_is_under_way(client):
    photos = make_component("Photos")
    m = plan_maintenance(hours_from_now=-1, component_ids=[photos.id])
    assert _indicator(client)["indicator"] == "none"  # scheduled is not yet under way
    update(m, "in_progress", "Started.")
    assert _indicator(client) == {"indicator": "maintenance", "description": "Service Under Maintenance"}


# ---- HTTP: caching and CORS ---------------------------------------------------------------------

@pytest.mark.parametrize("path", ENDPOINTS)
def test_answers_are_public_short_lived_cross_origin_and_validated(app, client, path):
    response = client.get(path)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.cache_control.public
    assert response.cache_control.max_age == app.config["PUBLIC_CACHE_MAX_AGE"]
    assert response.headers.get("ETag")
    assert response.headers.get("Last-Modified")


def test_a_matching_etag_gets_304_and_a_change_gets_a_fresh_answer(client):
    make_component("Email")
    first = client.get("/api/v2/summary.json")
    etag = first.headers["ETag"]
    again = client.get("/api/v2/summary.json", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["Access-Control-Allow-Origin"] == "*"

    open_incident()
    changed = client.get("/api/v2/summary.json", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert len(changed.get_json()["incidents"]) == 1


def test_if_modified_since_gets_304_until_something_changes(client):
    make_component("Email")
    last_modified = client.get("/api/v2/components.json").headers["Last-Modified"]
    assert client.get("/api/v2/components.json",
                      headers={"If-Modified-Since": last_modified}).status_code == 304


def test_last_modified_and_page_updated_at_follow_the_latest_change(client):
    open_incident()
    body = client.get("/api/v2/status.json")
    updated_at = datetime.fromisoformat(body.get_json()["page"]["updated_at"])
    assert abs(updated_at - utcnow()) < timedelta(minutes=1)
    assert body.last_modified == updated_at.replace(microsecond=0)


def test_unknown_json_path_is_a_json_404(client):
    response = client.get("/api/v2/nothing.json")
    assert response.status_code == 404
    assert response.get_json()["error"]["status"] == 404


# ---- no N+1 queries -----------------------------------------------------------------------------

def _statements(client, path) -> int:
    count = 0

    def count_it(*_args):
        nonlocal count
        count += 1

    sa.event.listen(db.engine, "before_cursor_execute", count_it)
    try:
        assert client.get(path).status_code == 200
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count_it)
    return count


@pytest.mark.parametrize("path", ["/api/v2/summary.json", "/api/v2/incidents.json",
                                  "/api/v2/scheduled-maintenances.json"])
def test_query_count_does_not_grow_with_the_number_of_incidents(client, path):
    def add(n):
        for i in range(n):
            component = make_component(f"C{path}{i}{utcnow().timestamp()}")
            incident = open_incident(f"I{i}", component_ids=[component.id],
                                     component_statuses={str(component.id): "partial_outage"})
            update(incident, "identified", "Found it.")
            m = plan_maintenance(f"M{i}", hours_from_now=-1, component_ids=[component.id])
            update(m, "in_progress", "Started.")

    add(2)
    few = _statements(client, path)
    add(6)
    db.session.expunge_all()  # nothing pre-loaded: the request must load what it shows
    assert _statements(client, path) == few
