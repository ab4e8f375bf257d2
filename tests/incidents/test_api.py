"""The ops API for incidents, updates, components, groups and maintenance, end to end.

Every call goes through ApiClient, which also checks the answer against the OpenAPI document."""
import sqlalchemy as sa

from core.db import db
from incidents.models import Component, ComponentStatusEvent, Incident
from ops.models import AuditEntry
from tests.conftest import post_form
from tests.ops.api_client import PREFIX


def _component(api, name: str, **fields) -> dict:
    response = api.post("/components", json={"name": name, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _incident(api, **fields) -> dict:
    body = {"name": "Contacts not syncing", "impact": "major", "message": "We are investigating.", **fields}
    response = api.post("/incidents", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# ---- incidents ----------------------------------------------------------------------------------

def test_filing_an_incident_returns_it_with_its_first_update_and_location(api):
    contacts = _component(api, "Contacts")
    response = api.post("/incidents", json={
        "name": "Contacts not syncing", "impact": "critical", "status": "identified",
        "message": "Storage *failed*.", "component_ids": [contacts["id"]],
        "component_statuses": {str(contacts["id"]): "major_outage"}, "notify": True, "urgent": True,
    })
    assert response.status_code == 201
    incident = response.get_json()
    assert response.headers["Location"] == f"{PREFIX}/incidents/{incident['id']}"
    assert (incident["name"], incident["impact"], incident["status"]) == ("Contacts not syncing", "critical", "identified")
    assert incident["shortlink"] == f"http://status.example.com/incidents/{incident['id']}"
    assert incident["created_at"].endswith("Z")
    assert [c["status"] for c in incident["components"]] == ["major_outage"]
    [update] = incident["incident_updates"]
    assert (update["body"], update["deliver_notifications"], update["urgent"]) == ("Storage *failed*.", True, True)
    assert update["affected_components"] == [{"code": str(contacts["id"]), "component_id": contacts["id"],
                                              "name": "Contacts", "old_status": "operational",
                                              "new_status": "major_outage"}]
    assert api.get(f"/incidents/{incident['id']}").get_json() == incident


def test_a_start_time_with_an_offset_comes_back_in_utc(api):
    incident = _incident(api, started_at="2026-01-02T05:30:00+02:00")
    assert incident["started_at"] == "2026-01-02T03:30:00Z"
    assert api.get(f"/incidents/{incident['id']}").get_json()["started_at"] == "2026-01-02T03:30:00Z"


def test_a_start_time_without_a_zone_or_unreadable_is_refused(api):
    response = api.post("/incidents", json={"name": "x", "message": "y", "started_at": "2026-01-02T05:30:00"})
    assert response.status_code == 422
    assert "time zone" in response.get_json()["error"]["fields"]["started_at"]
    response = api.post("/incidents", json={"name": "x", "message": "y", "started_at": "yesterday"})
    assert "ISO 8601" in response.get_json()["error"]["fields"]["started_at"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Incident)) == 0


def test_wrong_fields_are_answered_with_details_for_each_field(api):
    response = api.post("/incidents", json={"impact": "apocalyptic", "notify": "yes", "colour": "red",
                                            "component_ids": ["one"]})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["status"] == 422
    assert error["fields"] == {
        "name": "This field is required.", "message": "This field is required.",
        "impact": "Choose one of: none, minor, major, critical.", "notify": "Must be true or false.",
        "colour": "Unknown field.", "component_ids[0]": "Must be a whole number.",
    }


def test_component_statuses_need_ids_and_known_statuses(api):
    response = api.post("/incidents", json={"name": "x", "message": "y", "component_statuses": {"abc": "major_outage"}})
    assert response.get_json()["error"]["fields"] == {"component_statuses": "'abc' is not an id."}
    response = api.post("/incidents", json={"name": "x", "message": "", "component_statuses": {"3": "bad"}})
    assert response.get_json()["error"]["fields"] == {
        "message": "This field is required.",
        "component_statuses.3": "Choose one of: operational, degraded_performance, partial_outage, "
                                "major_outage, under_maintenance.",
    }


def test_service_rules_come_back_as_field_errors_too(api):
    response = api.post("/incidents", json={"name": "Outage", "message": "m", "component_ids": [404],
                                            "component_statuses": {"405": "major_outage"},
                                            "started_at": "2999-01-01T00:00:00Z"})
    assert response.status_code == 422
    fields = response.get_json()["error"]["fields"]
    assert fields["started_at"] == "The start cannot be in the future."
    assert "404" in fields["component_ids"] and "405" in fields["component_statuses"]
    # a blank name is refused by the request schema already, with the same words
    blank = api.post("/incidents", json={"name": "   ", "message": "m"})
    assert blank.status_code == 422 and blank.get_json()["error"]["fields"] == {"name": "This field is required."}


def test_bodies_must_be_json_objects(api):
    response = api.post("/incidents", data="name=Outage", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "application/json" in response.get_json()["error"]["message"]
    response = api.post("/incidents", data='{"name": "x",\n "message": }', content_type="application/json")
    assert response.status_code == 400
    assert "line 2 column" in response.get_json()["error"]["message"]
    assert api.post("/incidents", data="[1, 2]", content_type="application/json").status_code == 400
    assert api.post("/incidents", content_type="application/json").status_code == 400


def test_unknown_ids_paths_and_methods_answer_json(api):
    assert api.get("/incidents/12345").get_json()["error"]["message"] == "No incident with id 12345."
    assert api.get("/no-such-thing").status_code == 404
    response = api.request("PUT", "/incidents", json={})
    assert response.status_code == 405
    assert "PUT" in response.get_json()["error"]["message"]
    assert api.post("/incidents/12345/updates", json={"message": "x"}).status_code == 404


def test_listing_incidents_filters_by_open_or_closed_and_pages(api):
    first = _incident(api, name="First")
    second = _incident(api, name="Second")
    api.post(f"/incidents/{first['id']}/updates", json={"status": "resolved", "message": "Fixed."})
    names = lambda r: [i["name"] for i in r.get_json()["incidents"]]  # noqa: E731
    assert names(api.get("/incidents")) == ["Second", "First"]
    assert names(api.get("/incidents?status=open")) == ["Second"]
    assert names(api.get("/incidents?status=closed")) == ["First"]
    page = api.get("/incidents?limit=1&offset=1").get_json()
    assert ([i["id"] for i in page["incidents"]], page["limit"], page["offset"]) == ([first["id"]], 1, 1)
    assert second["id"] != first["id"]


def test_bad_list_parameters_are_field_errors(api):
    response = api.get("/incidents?status=burning&limit=1000&offset=-1")
    assert response.status_code == 422
    assert set(response.get_json()["error"]["fields"]) == {"status", "limit", "offset"}
    assert api.get("/incidents?limit=ten").get_json()["error"]["fields"] == {"limit": "Must be a whole number."}


# ---- updates: the same service as the console ---------------------------------------------------

def test_resolving_through_the_api_returns_components_to_operational(api):
    contacts = _component(api, "Contacts")
    incident = _incident(api, component_ids=[contacts["id"]],
                         component_statuses={str(contacts["id"]): "partial_outage"})
    response = api.post(f"/incidents/{incident['id']}/updates",
                        json={"status": "resolved", "message": "All contacts restored.", "impact": "minor"})
    assert response.status_code == 201
    update = response.get_json()
    assert response.headers["Location"] == f"{PREFIX}/incidents/{incident['id']}"
    assert update["affected_components"][0]["new_status"] == "operational"
    assert api.get(f"/components/{contacts['id']}").get_json()["status"] == "operational"
    incident = api.get(f"/incidents/{incident['id']}").get_json()
    assert (incident["status"], incident["impact"]) == ("resolved", "minor")
    assert incident["resolved_at"].endswith("Z")
    assert [u["status"] for u in incident["incident_updates"]] == ["resolved", "investigating"]


def test_a_postmortem_before_resolving_is_refused(api):
    incident = _incident(api)
    response = api.post(f"/incidents/{incident['id']}/updates", json={"status": "postmortem", "message": "x"})
    assert response.status_code == 422
    assert "Resolve" in response.get_json()["error"]["fields"]["status"]


def test_the_console_and_the_api_share_one_timeline(api, signed_in):
    client, _operator = signed_in
    incident = _incident(api, name="Photos missing")
    page = client.get(f"/ops/incidents/{incident['id']}")
    assert page.status_code == 200 and "Photos missing" in page.get_data(as_text=True)
    response = post_form(client, f"/ops/incidents/{incident['id']}",
                         {"status": "identified", "message": "Found the faulty array."},
                         action=f"/ops/incidents/{incident['id']}/updates")
    assert response.status_code == 302
    timeline = api.get(f"/incidents/{incident['id']}").get_json()["incident_updates"]
    assert [(u["status"], u["author"]) for u in timeline] == [
        ("identified", "operator@example.com (web)"),
        ("investigating", f"api@example.com (token {timeline[1]['author'].split('token ')[1]}"),
    ]


# ---- components and groups ----------------------------------------------------------------------

def test_components_are_created_changed_and_deleted(api):
    group = api.post("/component-groups", json={"name": "Sync", "description": "Phone sync"})
    assert group.status_code == 201
    group = group.get_json()
    photos = _component(api, "Photos", description="Pictures", group_id=group["id"], showcase=False)
    assert (photos["group_id"], photos["showcase"], photos["status"]) == (group["id"], False, "operational")
    assert api.get("/component-groups").get_json()["component_groups"][0]["components"] == [photos["id"]]

    changed = api.patch(f"/components/{photos['id']}", json={"status": "degraded_performance", "position": 7})
    assert changed.status_code == 200
    assert (changed.get_json()["status"], changed.get_json()["position"]) == ("degraded_performance", 7)
    event = db.session.scalar(sa.select(ComponentStatusEvent))
    assert (event.old_status.value, event.new_status.value) == ("operational", "degraded_performance")

    assert [c["name"] for c in api.get("/components").get_json()["components"]] == ["Photos"]
    assert api.delete(f"/components/{photos['id']}").status_code == 204
    assert api.get(f"/components/{photos['id']}").status_code == 404
    assert api.delete(f"/components/{photos['id']}").status_code == 404
    actions = db.session.scalars(sa.select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions[-4:] == ["component_group.create", "component.create", "component.update", "component.delete"]


def test_component_field_errors(api):
    _component(api, "Email")
    response = api.post("/components", json={"name": "email", "status": "on fire", "group_id": 999})
    assert response.status_code == 422
    fields = response.get_json()["error"]["fields"]
    assert set(fields) == {"status"}  # the schema answers first, with the type and value errors
    response = api.post("/components", json={"name": "email", "group_id": 999})
    assert response.get_json()["error"]["fields"] == {"name": "Another component already has this name.",
                                                      "group_id": "Unknown group id 999."}
    response = api.patch("/components/1", json={"showcase": "no", "shape": "round"})
    assert response.get_json()["error"]["fields"] == {"showcase": "Must be true or false.", "shape": "Unknown field."}
    assert api.patch("/components/999", json={}).status_code == 404
    assert api.post("/component-groups", json={}).get_json()["error"]["fields"] == {"name": "This field is required."}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Component)) == 1


# ---- maintenance --------------------------------------------------------------------------------

def test_maintenance_is_scheduled_started_and_completed(api):
    calendar = _component(api, "Calendar")
    response = api.post("/maintenances", json={
        "name": "Database upgrade", "message": "Calendar may be slow.", "component_ids": [calendar["id"]],
        "scheduled_for": "2030-06-01T22:00:00Z", "scheduled_until": "2030-06-02T00:00:00Z", "impact": "minor"})
    assert response.status_code == 201
    maintenance = response.get_json()
    assert response.headers["Location"] == f"{PREFIX}/maintenances/{maintenance['id']}"
    assert (maintenance["kind"], maintenance["status"]) == ("maintenance", "scheduled")
    assert maintenance["scheduled_until"] == "2030-06-02T00:00:00Z"

    started = api.post(f"/maintenances/{maintenance['id']}/updates", json={"status": "in_progress", "message": "Go."})
    assert started.status_code == 201
    assert api.get(f"/components/{calendar['id']}").get_json()["status"] == "under_maintenance"
    api.post(f"/maintenances/{maintenance['id']}/updates", json={"status": "completed", "message": "Done."})
    assert api.get(f"/components/{calendar['id']}").get_json()["status"] == "operational"
    assert [m["status"] for m in api.get("/maintenances?status=closed").get_json()["maintenances"]] == ["completed"]
    assert api.get(f"/maintenances/{maintenance['id']}").get_json()["incident_updates"][0]["body"] == "Done."


def test_maintenance_and_incidents_do_not_mix(api):
    incident = _incident(api)
    maintenance = api.post("/maintenances", json={
        "name": "Upgrade", "message": "m", "scheduled_for": "2030-06-01T22:00:00Z",
        "scheduled_until": "2030-06-02T00:00:00Z"}).get_json()
    assert api.get(f"/maintenances/{incident['id']}").status_code == 404
    assert api.get(f"/incidents/{maintenance['id']}").status_code == 404
    assert api.post(f"/incidents/{maintenance['id']}/updates", json={"message": "x"}).status_code == 404
    response = api.post(f"/maintenances/{maintenance['id']}/updates", json={"status": "resolved", "message": "x"})
    assert response.status_code == 422
    assert "in_progress" in response.get_json()["error"]["fields"]["status"]


def test_a_maintenance_window_must_end_after_it_starts(api):
    response = api.post("/maintenances", json={
        "name": "Upgrade", "message": "m", "scheduled_for": "2030-06-01T22:00:00Z",
        "scheduled_until": "2030-06-01T21:00:00Z"})
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == {"scheduled_until": "The window must end after it starts."}
    response = api.post("/maintenances", json={"name": "Upgrade", "message": "m"})
    assert set(response.get_json()["error"]["fields"]) == {"scheduled_for", "scheduled_until"}
