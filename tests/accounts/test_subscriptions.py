"""Public subscriptions (accounts.subscriptions) against the real SMTP server: a visitor subscribes by email
from the status page, confirms with the button (the link alone confirms nothing), and gets the next update
exactly once, even when they are also an affected subscriber; components, the manage page, no enumeration,
rate limits."""
import re

import sqlalchemy as sa

from accounts.models import Subscription
from core.db import db
from incidents import service as incidents
from ops.audit import Actor
from ops.models import AuditEntry
from tests.acceptance_helpers import deliver, email_text, emails_to
from tests.accounts.factories import HEADER, make_incident, run_import
from tests.conftest import csrf_from

ACTOR = Actor.cli("test")


def _peers(app, smtp):
    app.config.update({**smtp.env(), "MAIL_FROM": "Lifeboat <status@lifeboat.example>", "EMAIL_RATE_PER_SECOND": 1000})


def subscribe(client, email: str, components=None, ip="198.51.100.7"):
    page = client.get("/subscribe")
    assert page.status_code == 200
    data = {"email": email, "csrf_token": csrf_from(page.get_data(as_text=True))}
    if components is not None:
        data.update(follow="some", component=[str(c) for c in components])
    return client.post("/subscribe", data=data, environ_base={"REMOTE_ADDR": ip})


def link_in(text: str, kind: str) -> str:
    match = re.search(rf"https?://\S+(/subscribe/{kind}/[A-Za-z0-9_.-]+)", text)
    assert match, text
    return match.group(1)


def confirm(client, smtp, email: str) -> str:
    """Open the confirmation link of the newest email to `email` and press its button; returns the manage link."""
    deliver()
    path = link_in(email_text(emails_to(smtp, email)[-1]), "confirm")
    page = client.get(path)
    assert page.status_code == 200 and "Yes, send me updates" in page.get_data(as_text=True)
    done = client.post(path, data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    assert done.status_code == 200 and "You are subscribed" in done.get_data(as_text=True)
    return re.search(r'href="[^"]*(/subscribe/manage/[^"]+)"', done.get_data(as_text=True)).group(1)


def post_update(incident_id: int, message: str):
    incidents.post_update(db.session, actor=ACTOR, incident_id=incident_id,
                          data={"status": "identified", "message": message, "notify": True})
    db.session.commit()


def test_a_visitor_subscribes_confirms_and_gets_the_next_update_once(app, client, smtp_server):
    _peers(app, smtp_server)
    incident = make_incident()
    status = client.get("/").get_data(as_text=True)
    assert 'href="/subscribe"' in status  # "Get updates" on the status page
    sent = subscribe(client, "Visitor@Example.org")
    assert sent.status_code == 200 and "Check your email" in sent.get_data(as_text=True)
    deliver()
    [mail] = emails_to(smtp_server, "visitor@example.org")
    path = link_in(email_text(mail), "confirm")
    # A mail scanner following the link confirms nothing: only the button's POST does.
    assert client.get(path).status_code == 200
    assert db.session.scalar(sa.select(Subscription.confirmed_at)) is None
    post_update(incident.id, "Still investigating, before confirmation.")
    deliver()
    assert len(emails_to(smtp_server, "visitor@example.org")) == 1  # nothing before confirming
    manage = confirm(client, smtp_server, "visitor@example.org")

    post_update(incident.id, "We found the cause.")
    deliver()
    mails = emails_to(smtp_server, "visitor@example.org")
    assert len(mails) == 2
    text = email_text(mails[-1])
    assert "We found the cause." in text and "/subscribe/manage/" in text and "/m/" not in text
    assert mails[-1]["List-Unsubscribe"]  # one-click unsubscribe in every email
    # The record keeps no live link (notifications.masking).
    from notifications.models import Notification
    assert all("/subscribe/manage/[link]" in b for b in db.session.scalars(
        sa.select(Notification.body).where(Notification.recipient == "visitor@example.org",
                                           Notification.template == "broadcast")))
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "subscription.confirm"))
    assert entry.actor == "subscriber (email)"

    # The manage page: unsubscribe, and the next update does not come.
    page = client.get(manage)
    gone = client.post(manage, data={"action": "unsubscribe", "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert "Unsubscribed" in gone.get_data(as_text=True)
    post_update(incident.id, "Fixed.")
    deliver()
    assert len(emails_to(smtp_server, "visitor@example.org")) == 2


def test_an_affected_subscriber_who_also_subscribed_gets_one_message_per_update(app, client, smtp_server):
    _peers(app, smtp_server)
    incident = make_incident()
    run_import(incident.id, HEADER + "SK1,Ana,,ana@example.org,en\n")
    subscribe(client, "ana@example.org")
    confirm(client, smtp_server, "ana@example.org")
    subscribe(client, "bo@example.org", ip="198.51.100.8")
    confirm(client, smtp_server, "bo@example.org")
    before = {a: len(emails_to(smtp_server, a)) for a in ("ana@example.org", "bo@example.org")}
    post_update(incident.id, "Photos are coming back.")
    deliver()
    ana = emails_to(smtp_server, "ana@example.org")[before["ana@example.org"]:]
    bo = emails_to(smtp_server, "bo@example.org")[before["bo@example.org"]:]
    assert len(ana) == 1 and "/m/" in email_text(ana[0])  # the personal one wins
    assert len(bo) == 1 and "/subscribe/manage/" in email_text(bo[0])


def test_components_chosen_decide_which_incidents_reach_a_subscriber(app, client, smtp_server):
    _peers(app, smtp_server)
    sync = incidents.create_component(db.session, actor=ACTOR, data={"name": "Sync"})
    photos = incidents.create_component(db.session, actor=ACTOR, data={"name": "Photos"})
    db.session.commit()
    subscribe(client, "sync@example.org", components=[sync.id])
    confirm(client, smtp_server, "sync@example.org")
    elsewhere = incidents.create_incident(db.session, actor=ACTOR, data={
        "name": "Photos slow", "impact": "minor", "message": "Looking.", "component_ids": [photos.id]})
    ours = incidents.create_incident(db.session, actor=ACTOR, data={
        "name": "Sync down", "impact": "major", "message": "Looking.", "component_ids": [sync.id]})
    db.session.commit()
    for incident in (elsewhere, ours):
        post_update(incident.id, f"Update on {incident.name}.")
    deliver()
    texts = [email_text(m) for m in emails_to(smtp_server, "sync@example.org")]
    assert any("Update on Sync down." in t for t in texts)
    assert not any("Update on Photos slow." in t for t in texts)


def test_the_answer_is_the_same_for_new_pending_and_subscribed_addresses(app, client, smtp_server):
    _peers(app, smtp_server)
    first = subscribe(client, "new@example.org").get_data(as_text=True)
    confirm(client, smtp_server, "new@example.org")
    again = subscribe(client, "new@example.org", ip="198.51.100.9").get_data(as_text=True)
    other = subscribe(client, "other@example.org", ip="198.51.100.10").get_data(as_text=True)
    strip = lambda html: re.sub(r'name="csrf_token"[^>]*>', "", html)  # noqa: E731
    assert strip(first) == strip(again) == strip(other)
    deliver()
    # The subscribed address is told it already is, with its manage link; nothing changed.
    assert "/subscribe/manage/" in email_text(emails_to(smtp_server, "new@example.org")[-1])


def test_bad_addresses_and_too_many_requests_are_refused_clearly(app, client, smtp_server):
    _peers(app, smtp_server)
    bad = subscribe(client, "not an email")
    assert bad.status_code == 422 and "Enter an email address" in bad.get_data(as_text=True)
    app.config["SUBSCRIBE_PER_ADDRESS"] = (2, 3600)
    for ip in ("198.51.100.20", "198.51.100.21"):
        assert subscribe(client, "target@example.org", ip=ip).status_code == 200
    limited = subscribe(client, "target@example.org", ip="198.51.100.22")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3600"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 1
    assert client.get("/subscribe/confirm/forged").status_code == 404
    assert client.get("/subscribe/manage/forged.token.here").status_code == 404


def test_operators_see_counts_search_and_remove_subscriptions_in_the_console_and_the_api(app, client, api,
                                                                                          smtp_server):
    from tests.conftest import make_operator, post_form, sign_in

    _peers(app, smtp_server)
    sync = incidents.create_component(db.session, actor=ACTOR, data={"name": "Sync"})
    db.session.commit()
    subscribe(client, "all@example.org")
    confirm(client, smtp_server, "all@example.org")
    subscribe(client, "sync@example.org", components=[sync.id], ip="198.51.100.30")
    confirm(client, smtp_server, "sync@example.org")
    subscribe(client, "pending@example.org", ip="198.51.100.31")

    counts = api.get("/subscriptions/counts").get_json()
    assert counts["channels"]["email"] == {"confirmed": 2, "pending": 1}
    assert counts["components"] == [{"id": sync.id, "name": "Sync", "followers": 2}] and counts["follow_all"] == 1
    listed = api.get("/subscriptions?state=confirmed&limit=1").get_json()
    assert [s["address"] for s in listed["subscriptions"]] == ["sync@example.org"] and listed["next_cursor"]
    assert listed["subscriptions"][0]["follows"] == [sync.id]
    found = api.get("/subscriptions?address=ALL@example.org").get_json()["subscriptions"]
    assert [s["follows"] for s in found] == ["all"]
    assert api.get("/subscriptions?state=gone").status_code == 422
    assert api.delete(f"/subscriptions/{found[0]['id']}").status_code == 204
    assert api.delete(f"/subscriptions/{found[0]['id']}").status_code == 404

    viewer = app.test_client()
    sign_in(viewer, make_operator("viewer"))
    page = viewer.get("/ops/subscriptions").get_data(as_text=True)
    assert "sync@example.org" in page and "pending@example.org" in page and "Remove" not in page
    pending_id = db.session.scalar(sa.select(Subscription.id).where(Subscription.address == "pending@example.org"))
    assert viewer.post(f"/ops/subscriptions/{pending_id}/remove").status_code in (400, 403)
    operator = app.test_client()
    sign_in(operator, make_operator("operator", email="op2@example.com"))
    done = post_form(operator, "/ops/subscriptions", {}, action=f"/ops/subscriptions/{pending_id}/remove",
                     follow_redirects=True)
    assert "Removed the subscription of pending@example.org" in done.get_data(as_text=True)
    removals = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "subscription.delete")).all()
    assert len(removals) == 2 and all(not e.actor.startswith("subscriber") for e in removals)
    assert {e.before["address"] for e in removals} == {"all@example.org", "pending@example.org"}


def test_an_update_still_queued_when_someone_unsubscribes_is_not_sent(app, client, smtp_server):
    _peers(app, smtp_server)
    incident = make_incident()
    subscribe(client, "leaving@example.org")
    manage = confirm(client, smtp_server, "leaving@example.org")
    deliver()
    before = len(emails_to(smtp_server, "leaving@example.org"))
    post_update(incident.id, "Queued before they left.")  # not delivered yet
    page = client.get(manage)
    client.post(manage, data={"action": "unsubscribe", "csrf_token": csrf_from(page.get_data(as_text=True))})
    deliver()
    assert len(emails_to(smtp_server, "leaving@example.org")) == before
    from notifications.models import Notification
    status = db.session.scalar(sa.select(Notification.status).where(Notification.template == "broadcast"))
    assert status.value == "suppressed"
