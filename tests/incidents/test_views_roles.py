"""Viewers read every console page but cannot write; anonymous visitors are sent to sign in."""
import pytest
import sqlalchemy as sa

from core.db import db
from incidents import service
from incidents.models import Incident
from ops.models import AuditEntry
from tests.conftest import csrf_from, make_operator, sign_in
from tests.incidents.helpers import ACTOR, make_component, make_incident, text


@pytest.fixture
def viewer(client):
    operator = make_operator("viewer")
    assert sign_in(client, operator).status_code == 302
    return client


@pytest.fixture
def things():
    component = make_component("Email")
    incident = make_incident(component_ids=[component.id])
    maintenance = service.schedule_maintenance(db.session, actor=ACTOR, data={
        "name": "Upgrade", "message": "Soon.", "scheduled_for": incident.started_at.replace(year=2031),
        "scheduled_until": incident.started_at.replace(year=2032), "component_ids": [component.id]})
    db.session.commit()
    return {"component": component.id, "incident": incident.id, "maintenance": maintenance.id}


def test_a_viewer_reads_every_page_and_sees_no_forms(viewer, things):
    pages = ["/ops/incidents", f"/ops/incidents/{things['incident']}", "/ops/maintenance",
             f"/ops/maintenance/{things['maintenance']}", "/ops/components"]
    for url in pages:
        response = viewer.get(url)
        assert response.status_code == 200, url
        body = text(response)
        # The only form a viewer gets is the sign-out button in the header.
        assert body.count("<form") == 1, url
        for word in ("File an incident", "Post an update", "Plan maintenance", "Add a component",
                     "Create a group"):
            assert word not in body, (url, word)


def test_a_viewer_gets_403_on_every_write(viewer, things):
    token = csrf_from(text(viewer.get("/ops/incidents")))
    writes = [
        ("/ops/incidents/new", {"name": "x", "message": "y"}),
        (f"/ops/incidents/{things['incident']}/updates", {"status": "resolved", "message": "y", "confirmed": "1"}),
        (f"/ops/incidents/{things['incident']}/postmortem", {"body": "y"}),
        ("/ops/maintenance/new", {"name": "x"}),
        (f"/ops/maintenance/{things['maintenance']}/updates", {"status": "in_progress", "message": "y"}),
        ("/ops/components/new", {"name": "x"}),
        (f"/ops/components/{things['component']}/edit", {"name": "x"}),
        (f"/ops/components/{things['component']}/status", {"status": "major_outage"}),
        ("/ops/components/groups", {"name": "x"}),
    ]
    audit_before = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry))
    for url, data in writes:
        assert viewer.post(url, data={**data, "csrf_token": token}).status_code == 403, url
    assert viewer.get("/ops/incidents/new").status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == audit_before
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Incident)) == 2


@pytest.mark.parametrize("path", ["/ops/incidents", "/ops/incidents/new", "/ops/maintenance", "/ops/components"])
def test_anonymous_visitors_are_sent_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/ops/sign-in" in response.headers["Location"]
