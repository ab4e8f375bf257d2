"""The events other than incidents': message.failed (the notifier's own), and those the domains above register
(recovery.summary_changed from accounts, offer.accepted from offers): each emitted where it happens, in that
transaction, only to endpoints subscribed to it."""
import json

from core.db import db, utcnow
from notifications import receipts, service
from notifications.models import Channel, Notification, NotificationStatus
from notifications.outbound import events
from notifications.providers import ProviderError
from tests.notifications.fakes import Recording, make_worker
from tests.notifications.outbound.helpers import deliver, deliveries, register


def test_every_event_of_the_issue_is_registered(app):
    assert set(events.names()) == {"incident.created", "incident.updated", "incident.resolved", "component.updated",
                                   "maintenance.scheduled", "recovery.summary_changed", "offer.accepted",
                                   "message.failed"}


def test_a_message_the_worker_gives_up_on_emits_message_failed(app, admin, private_ok, receiver):
    made = register(admin, receiver.url, ["message.failed"])
    n = service.enqueue(db.session, dedupe_key="x", channel=Channel.SMS, recipient="+12065550100", body="Hello")
    db.session.commit()
    make_worker(app, Recording(ProviderError("21211", "invalid number", retryable=False))).run(once=True)
    [d] = deliveries()
    assert d.event_type == "message.failed"
    assert len(receiver.received) == 1  # the same worker run delivered it, after recording the failure
    body = receiver.received[0].verify(made["secret"])
    message = body["data"]["message"]
    assert message["id"] == n.id and message["status"] == "failed" and message["error_code"] == "21211"
    assert message["channel"] == "sms" and "+12065550100" not in json.dumps(body)  # no address, no text
    assert "Hello" not in json.dumps(body)


def test_a_retryable_error_is_not_a_failure_yet(app, admin, private_ok):
    register(admin, "http://127.0.0.1:9/x", ["message.failed"])
    service.enqueue(db.session, dedupe_key="x", channel=Channel.SMS, recipient="+12065550100", body="Hello")
    db.session.commit()
    make_worker(app, Recording(ProviderError("20429", "slow down", retryable=True))).run(once=True)
    assert deliveries() == []


def test_a_provider_report_of_undelivered_emits_message_failed(app, admin, private_ok):
    register(admin, "http://127.0.0.1:9/x", ["message.failed"])
    n = Notification(dedupe_key="y", channel=Channel.SMS, recipient="+12065550100", body="Hi",
                     status=NotificationStatus.SENT, provider_id="SM123", sent_at=utcnow())
    db.session.add(n)
    db.session.commit()
    assert receipts.apply_status(db.session, provider_id="SM123", status="undelivered", error_code="30003")
    [d] = deliveries()
    data = json.loads(d.body)["data"]["message"]
    assert data["status"] == "undelivered" and data["error_code"] == "30003"
    # A late duplicate callback changes nothing, and emits nothing more.
    assert not receipts.apply_status(db.session, provider_id="SM123", status="undelivered", error_code="30003")
    assert len(deliveries()) == 1


def test_recovery_changes_emit_the_summary_in_the_recovery_summary_shape(app, admin, private_ok, receiver):
    from tests.accounts.factories import RECOVERY_HEADER, attach, make_incident, run_import

    made = register(admin, receiver.url, ["recovery.summary_changed"])
    incident = make_incident(categories=("contacts", "photos"))  # the categories: one event
    attach(incident.id, "A1", "A2")  # affected accounts added: one event for the whole import
    job = run_import(incident.id, RECOVERY_HEADER + "A1,photos,lost,,,\nA2,contacts,recovered,,,\n", kind="recovery")
    assert job.status.value == "done"
    assert len(deliveries()) == 3
    again = run_import(incident.id, RECOVERY_HEADER + "A1,photos,lost,,,\n", kind="recovery")  # nothing changed
    assert again.status.value == "done" and len(deliveries()) == 3
    edited = admin.put(f"/incidents/{incident.id}/accounts/A2/recovery",
                       json={"categories": [{"category": "photos", "state": "recovering"}]})
    assert edited.status_code == 200, edited.get_json()
    assert len(deliveries()) == 4
    deliver()
    bodies = [r.verify(made["secret"]) for r in receiver.received]
    assert {b["type"] for b in bodies} == {"recovery.summary_changed"}
    latest = max(bodies, key=lambda b: b["data"]["recovery_summary"]["categories"][1]["states"]["recovering"])
    assert latest["data"]["recovery_summary"] == admin.get(f"/incidents/{incident.id}/recovery-summary").get_json()
    assert latest["data"]["recovery_summary"]["affected_accounts"] == 2


def test_an_accepted_offer_emits_offer_accepted_once(app, admin, private_ok, receiver):
    from offers import grants
    from offers.models import OfferGrant
    from tests.offers.helpers import incident_with, issue, make_program

    made = register(admin, receiver.url, ["offer.accepted"])
    incident = incident_with({"A1": {"photos": "lost"}})
    program = make_program(incident.id)
    issue(program.id)
    grant = db.session.query(OfferGrant).one()
    assert grants.accept(db.session, grant, via="sms") is True
    assert grants.accept(db.session, grant, via="web") is False  # already accepted: no second event
    db.session.commit()
    assert len(deliveries()) == 1
    deliver()
    body = receiver.received[0].verify(made["secret"])
    assert body["type"] == "offer.accepted" and body["data"]["via"] == "sms"
    from offers.serializers import grant_json  # the ops API's OfferGrant shape (e.g. POST .../revoke answers it)

    db.session.refresh(grant)
    assert body["data"]["grant"] == grant_json(grant) and body["data"]["grant"]["state"] == "accepted"
