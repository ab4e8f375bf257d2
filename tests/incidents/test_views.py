"""The operator console for incidents: filing, updates, resolving with confirmation, postmortems."""
import re

import sqlalchemy as sa

from core.db import db
from incidents import service
from incidents.models import ComponentStatus, Incident, IncidentStatus
from ops.models import AuditEntry
from tests.conftest import csrf_from, post_form
from tests.incidents.helpers import ACTOR, make_component, make_incident, text


def checked(body: str, name: str, value: str) -> bool:
    """Whether the radio button `name`=`value` is preselected in the page."""
    return any('checked' in tag and f'value="{value}"' in tag
               for tag in re.findall(rf'<input[^>]*name="{name}"[^>]*>', body))


def test_an_operator_files_an_incident_and_sees_it_on_its_detail_page(signed_in):
    client, _ = signed_in
    contacts = make_component("Contacts sync")
    response = post_form(client, "/ops/incidents/new", {
        "name": "Contacts not syncing", "impact": "critical", "status": "investigating",
        "message": "Some **contacts** are missing.", "component_ids": [str(contacts.id)],
        "component_status": "major_outage", "notify": "y"})
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    body = text(page)
    assert "Incident filed." in body
    assert "Contacts not syncing" in body
    assert "<strong>contacts</strong>" in body
    assert "operator@example.com (web)" in body
    assert "Major outage" in body
    incident = db.session.scalar(sa.select(Incident))
    assert incident.impact.value == "critical"
    assert [c.name for c in incident.components] == ["Contacts sync"]
    assert db.session.get(type(contacts), contacts.id).status == ComponentStatus.MAJOR_OUTAGE


def test_the_dashboard_lists_open_incidents_before_resolved_ones_with_counts(signed_in):
    client, _ = signed_in
    make_incident("Old trouble")
    closed = make_incident("Closed trouble")
    service.post_update(db.session, actor=ACTOR, incident_id=closed.id,
                        data={"status": "resolved", "message": "Fixed."})
    db.session.commit()
    body = text(client.get("/ops/incidents"))
    assert "File an incident" in body
    assert body.index("Old trouble") < body.index("Closed trouble")
    assert "<strong>1</strong> open" in body
    assert "<strong>1</strong> resolved in the last 7 days" in body


def test_an_empty_name_is_shown_beside_the_field_and_the_message_is_kept(signed_in):
    client, _ = signed_in
    response = post_form(client, "/ops/incidents/new", {
        "name": "  ", "impact": "minor", "status": "investigating", "message": "Keep this text please"})
    assert response.status_code == 422
    body = text(response)
    assert 'class="field has-error"' in body
    assert 'id="name-error">This field is required.' in body
    assert "Keep this text please" in body
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Incident)) == 0


def test_an_unknown_component_id_is_refused_beside_the_components(signed_in):
    client, _ = signed_in
    make_component("Calendar")
    response = post_form(client, "/ops/incidents/new", {
        "name": "Calendar broken", "impact": "minor", "status": "investigating", "message": "Looking.",
        "component_ids": ["999"], "component_status": "major_outage"})
    assert response.status_code == 422
    body = text(response)
    assert 'id="component_ids-error">Unknown component id(s): 999.' in body
    assert body.count('id="component_ids-error"') == 1
    assert 'value="Calendar broken"' in body


def test_an_update_with_component_changes_shows_old_and_new_status_on_the_timeline(signed_in):
    client, _ = signed_in
    photos = make_component("Photos")
    incident = make_incident(component_ids=[photos.id])
    url = f"/ops/incidents/{incident.id}"
    assert checked(text(client.get(url)), "status", "investigating")  # latest status preselected
    response = post_form(client, url, {"status": "identified", "message": "Found the broken disk.",
                                       f"component_{photos.id}": "partial_outage"},
                         action=f"{url}/updates", follow_redirects=True)
    body = text(response)
    assert "Update posted." in body
    timeline = body[body.index("<h2>Timeline</h2>"):]
    assert timeline.index("Found the broken disk.") < timeline.index("We are looking into it.")  # newest first
    assert "Photos: <span class=\"badge status-operational\">Operational</span> → " \
           "<span class=\"badge status-partial_outage\">Partial outage</span>" in timeline
    assert db.session.get(Incident, incident.id).status == IncidentStatus.IDENTIFIED


def test_an_update_without_a_message_keeps_the_chosen_status_and_shows_the_error(signed_in):
    client, _ = signed_in
    incident = make_incident()
    url = f"/ops/incidents/{incident.id}"
    response = post_form(client, url, {"status": "monitoring", "message": ""}, action=f"{url}/updates")
    assert response.status_code == 422
    body = text(response)
    assert 'id="message-error">This field is required.' in body
    assert checked(body, "status", "monitoring")


def test_resolving_asks_for_confirmation_before_anything_changes(signed_in):
    client, _ = signed_in
    email = make_component("Email")
    incident = make_incident(component_ids=[email.id], statuses={str(email.id): "major_outage"})
    url = f"/ops/incidents/{incident.id}"
    first = post_form(client, url, {"status": "resolved", "message": "All mail <b>delivered</b>.", "notify": "y"},
                      action=f"{url}/updates")
    assert first.status_code == 200
    body = text(first)
    assert f"Resolve {incident.name}?" in body
    assert 'name="message" value="All mail &lt;b&gt;delivered&lt;/b&gt;."' in body
    assert "data-confirm=" in body
    db.session.expire_all()
    assert db.session.get(Incident, incident.id).status == IncidentStatus.INVESTIGATING

    back = client.post(f"{url}/updates", data={"csrf_token": csrf_from(body), "status": "resolved",
                                                "message": "All mail <b>delivered</b>.", "back": "1"})
    assert back.status_code == 200
    assert "All mail &lt;b&gt;delivered&lt;/b&gt;.</textarea>" in text(back)
    db.session.expire_all()
    assert db.session.get(Incident, incident.id).status == IncidentStatus.INVESTIGATING

    confirmed = client.post(f"{url}/updates", data={"csrf_token": csrf_from(body), "status": "resolved",
                                                     "message": "All mail delivered.", "notify": "y",
                                                     "confirmed": "1"})
    assert confirmed.status_code == 302
    assert "Incident resolved." in text(client.get(url))
    db.session.expire_all()
    resolved = db.session.get(Incident, incident.id)
    assert resolved.status == IncidentStatus.RESOLVED
    assert resolved.resolved_at is not None
    assert resolved.components[0].status == ComponentStatus.OPERATIONAL


def test_a_postmortem_needs_a_resolved_incident(signed_in):
    client, _ = signed_in
    incident = make_incident()
    url = f"/ops/incidents/{incident.id}/postmortem"
    refused = post_form(client, url, {"body": "What went wrong"})
    assert refused.status_code == 422
    assert "Resolve the incident before publishing a postmortem." in text(refused)
    assert "What went wrong" in text(refused)
    db.session.expire_all()
    assert db.session.get(Incident, incident.id).postmortem_body is None

    service.post_update(db.session, actor=ACTOR, incident_id=incident.id,
                        data={"status": "resolved", "message": "Fixed."})
    db.session.commit()
    done = post_form(client, url, {"body": "## Cause\nA disk."}, follow_redirects=True)
    assert "Postmortem published." in text(done)
    db.session.expire_all()
    published = db.session.get(Incident, incident.id)
    assert published.status == IncidentStatus.POSTMORTEM
    assert published.postmortem_body == "## Cause\nA disk."


def test_markdown_with_a_script_is_rendered_inert(signed_in):
    client, _ = signed_in
    incident = make_incident(message="Hello <script>alert(1)</script> [x](javascript:alert(2))")
    body = text(client.get(f"/ops/incidents/{incident.id}"))
    assert "<script>alert(1)" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body  # shown as text
    assert 'href="javascript:' not in body


def test_an_unknown_incident_gives_the_styled_not_found_page(signed_in):
    client, _ = signed_in
    response = client.get("/ops/incidents/4242")
    assert response.status_code == 404
    assert "No incident with id 4242." in text(response)
    assert 'class="error-page"' in text(response)


def test_writes_leave_audit_entries(signed_in):
    client, operator = signed_in
    post_form(client, "/ops/incidents/new", {"name": "Audit me", "impact": "minor", "status": "investigating",
                                             "message": "Hi."})
    incident = db.session.scalar(sa.select(Incident))
    url = f"/ops/incidents/{incident.id}"
    post_form(client, url, {"status": "identified", "message": "Found it."}, action=f"{url}/updates")
    actions = db.session.scalars(sa.select(AuditEntry.action).where(AuditEntry.operator_id == operator.id)).all()
    assert "incident.create" in actions
    assert "incident.update" in actions


def test_anonymous_posts_are_sent_to_sign_in_and_change_nothing(client):
    incident = make_incident()
    token = csrf_from(text(client.get("/ops/sign-in")))
    response = client.post(f"/ops/incidents/{incident.id}/updates",
                           data={"status": "resolved", "message": "x", "confirmed": "1", "csrf_token": token})
    assert response.status_code == 302
    assert "/ops/sign-in" in response.headers["Location"]
    db.session.expire_all()
    assert db.session.get(Incident, incident.id).status == IncidentStatus.INVESTIGATING


def test_after_a_postmortem_the_update_form_preselects_resolved(signed_in):
    client, _ = signed_in
    incident = make_incident()
    service.post_update(db.session, actor=ACTOR, incident_id=incident.id,
                        data={"status": "resolved", "message": "Fixed."})
    service.set_postmortem(db.session, actor=ACTOR, incident_id=incident.id, body="Cause: a disk.")
    db.session.commit()
    body = text(client.get(f"/ops/incidents/{incident.id}"))
    assert checked(body, "status", "resolved")
    assert "Cause: a disk." in body and "Edit the postmortem" in body
