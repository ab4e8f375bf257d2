""""Notify subscribers" says what really happened: offered only when somebody can be reached, and the
timeline and the flash give the number of messages queued, not "subscribers notified"."""
import re

from core.db import db
from incidents.models import IncidentUpdate
from tests.accounts.factories import attach, make_incident
from tests.conftest import post_form


def notify_box(html: str) -> str:
    match = re.search(r'<input[^>]*name="notify"[^>]*>', html)
    assert match, "no notify box on the page"
    return match.group(0)


def test_a_new_incident_cannot_claim_to_notify_anybody(signed_in):
    client, _ = signed_in
    html = client.get("/ops/incidents/new").get_data(as_text=True)
    box = notify_box(html)
    assert "disabled" in box and "checked" not in box
    assert "Nobody to notify yet: a new incident has no affected accounts" in html
    filed = post_form(client, "/ops/incidents/new", {"name": "Sync down", "impact": "major",
                                                     "status": "investigating", "message": "Looking.",
                                                     "notify": "y"})
    assert filed.status_code == 302
    page = client.get(filed.headers["Location"]).get_data(as_text=True)
    assert "subscribers notified" not in page and "queued to subscribers" not in page


def test_the_timeline_and_the_flash_give_the_number_queued_or_say_nobody(signed_in):
    client, _ = signed_in
    incident = make_incident()
    url = f"/ops/incidents/{incident.id}"
    assert "disabled" in notify_box(client.get(url).get_data(as_text=True))

    # Through the API, notify is still one call: with nobody to reach it queues nothing, and says so.
    from incidents import service
    from ops.audit import Actor
    service.post_update(db.session, actor=Actor.cli("test"), incident_id=incident.id,
                        data={"status": "identified", "message": "Found it.", "notify": True})
    db.session.commit()
    assert "nobody notified: no subscriber to reach" in client.get(url).get_data(as_text=True)

    attach(incident.id, "A1", "A2", "A3")  # three accounts, each with a phone and an email
    html = client.get(url).get_data(as_text=True)
    assert "disabled" not in notify_box(html) and "to the 3 affected accounts" in html
    posted = post_form(client, url, {"status": "monitoring", "message": "Restoring.", "notify": "y"},
                       action=f"{url}/updates", follow_redirects=True)
    html = posted.get_data(as_text=True)
    assert "Update posted. 6 messages queued to subscribers" in html
    assert "6 messages queued to subscribers" in html.split("<h2>Timeline</h2>")[1]
    latest = db.session.query(IncidentUpdate).order_by(IncidentUpdate.id.desc()).first()
    assert latest.messages_queued == 6


def test_maintenance_does_not_offer_to_notify(signed_in):
    client, _ = signed_in
    html = client.get("/ops/maintenance/new").get_data(as_text=True)
    assert "disabled" in notify_box(html) and "Nobody to notify: maintenance is announced" in html
