"""The operator console for scheduled maintenance: planning, timeline updates, completing."""
import sqlalchemy as sa

from core.db import db
from incidents.models import Component, ComponentStatus, Incident, IncidentKind, IncidentStatus
from tests.conftest import csrf_from, post_form
from tests.incidents.helpers import make_component, text


def plan(client, **overrides):
    component = make_component("Calendar")
    data = {"name": "Database upgrade", "message": "Calendar will be read-only.",
            "scheduled_for": "2030-01-02T03:00", "scheduled_until": "2030-01-02T05:30",
            "impact": "minor", "component_ids": [str(component.id)], **overrides}
    return post_form(client, "/ops/maintenance/new", data), component


def test_an_operator_plans_maintenance_with_a_window_in_utc(signed_in):
    client, _ = signed_in
    assert "UTC" in text(client.get("/ops/maintenance/new"))
    response, component = plan(client)
    assert response.status_code == 302
    page = text(client.get(response.headers["Location"]))
    assert "Maintenance planned." in page
    assert "Calendar will be read-only." in page
    maintenance = db.session.scalar(sa.select(Incident))
    assert maintenance.kind == IncidentKind.MAINTENANCE
    assert maintenance.status == IncidentStatus.SCHEDULED
    assert maintenance.scheduled_for.isoformat() == "2030-01-02T03:00:00+00:00"
    assert maintenance.scheduled_until.isoformat() == "2030-01-02T05:30:00+00:00"
    assert "Database upgrade" in text(client.get("/ops/maintenance"))


def test_a_window_ending_before_it_starts_is_refused_beside_the_end(signed_in):
    client, _ = signed_in
    response, _ = plan(client, scheduled_until="2030-01-02T02:00")
    assert response.status_code == 422
    body = text(response)
    assert 'id="scheduled_until-error">The window must end after it starts.' in body
    assert 'value="2030-01-02T02:00"' in body and "Calendar will be read-only." in body
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Incident)) == 0


def test_an_unreadable_date_is_refused_beside_its_field_with_the_rest_kept(signed_in):
    client, _ = signed_in
    response, _ = plan(client, scheduled_for="tomorrow-ish", name="")
    assert response.status_code == 422
    body = text(response)
    assert 'id="scheduled_for-error">' in body
    assert 'id="name-error">This field is required.' in body
    assert 'value="tomorrow-ish"' in body


def test_in_progress_puts_components_under_maintenance_and_completing_needs_confirmation(signed_in):
    client, _ = signed_in
    response, component = plan(client)
    url = response.headers["Location"]
    started = post_form(client, url, {"status": "in_progress", "message": "Started."}, action=f"{url}/updates")
    assert started.status_code == 302
    db.session.expire_all()
    assert db.session.get(Component, component.id).status == ComponentStatus.UNDER_MAINTENANCE
    timeline = text(client.get(url))
    assert "Calendar: <span class=\"badge status-operational\">Operational</span> → " \
           "<span class=\"badge status-under_maintenance\">Under maintenance</span>" in timeline

    ask = post_form(client, url, {"status": "completed", "message": "All done."}, action=f"{url}/updates")
    assert ask.status_code == 200 and "Complete Database upgrade?" in text(ask)
    db.session.expire_all()
    assert db.session.scalar(sa.select(Incident)).status == IncidentStatus.IN_PROGRESS
    done = client.post(f"{url}/updates", data={"csrf_token": csrf_from(text(ask)), "status": "completed",
                                                 "message": "All done.", "confirmed": "1"})
    assert done.status_code == 302
    db.session.expire_all()
    maintenance = db.session.scalar(sa.select(Incident))
    assert maintenance.status == IncidentStatus.COMPLETED and maintenance.resolved_at is not None
    assert db.session.get(Component, component.id).status == ComponentStatus.OPERATIONAL


def test_an_incident_id_is_not_a_maintenance_page(signed_in):
    client, _ = signed_in
    response = client.get("/ops/maintenance/999")
    assert response.status_code == 404
    assert "No maintenance with id 999." in text(response)
