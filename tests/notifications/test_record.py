"""Messages as a record (notifications.record): every message through the API and the console, with its status
history and the provider's answers, and no live personal link or code in what is stored."""
import re

import pytest
import sqlalchemy as sa

from accounts import selfservice
from core.db import db
from notifications import worker
from notifications.models import Channel, InboundMessage, Notification, NotificationStatus
from notifications.providers import from_config
from tests.conftest import make_operator, sign_in
from tests.notifications.helpers import add_accounts, make_incident
from tests.notifications.twilio_helpers import callback, inbound, reply_of

LIVE_LINK = re.compile(r"/m/[A-Za-z0-9_-]{16}")


def _broadcast(api, incident, channels=("sms",)):
    r = api.post(f"/incidents/{incident.id}/broadcasts",
                 json={"message": "Photos are back. {{ name }}", "channels": list(channels)})
    assert r.status_code == 201
    return r.get_json()["id"]


def test_a_message_sent_through_twilio_has_its_history_and_twilios_answers_and_no_live_link(
        twilio_app, twilio_standin, api, client):
    twilio_app.config.update(twilio_standin.env())
    incident = make_incident()
    add_accounts(incident, 2, email=False)
    db.session.commit()
    broadcast_id = _broadcast(api, incident)
    providers = from_config(twilio_app.config)
    assert worker.run_once(providers=providers) == 2
    # What reached the subscriber holds a live link; what we stored names the link by id.
    real = [m["body"] for m in twilio_standin.messages]
    assert all(LIVE_LINK.search(b) for b in real)
    stored = db.session.scalars(sa.select(Notification).order_by(Notification.id)).all()
    assert all(not LIVE_LINK.search(m.body) and re.search(r"/m/\[link #\d+\]", m.body) for m in stored)
    first = stored[0]
    assert callback(client, first.provider_id, "delivered").status_code == 200

    listed = api.get(f"/messages?broadcast={broadcast_id}&limit=1")
    assert listed.status_code == 200
    page = listed.get_json()
    assert [m["id"] for m in page["messages"]] == [stored[1].id]  # newest first
    assert page["next_cursor"] and 'rel="next"' in listed.headers["Link"]
    rest = api.get(f"/messages?broadcast={broadcast_id}&limit=1&cursor={page['next_cursor']}").get_json()
    assert [m["id"] for m in rest["messages"]] == [first.id] and rest["next_cursor"] is None

    detail = api.get(f"/messages/{first.id}").get_json()
    assert detail["status"] == "delivered" and detail["account_number"] == "N0"
    assert [(s["status"], s["source"]) for s in detail["history"]] == [
        ("queued", "queued"), ("sent", "worker"), ("delivered", "receipt")]
    sent_step, receipt_step = detail["history"][1], detail["history"][2]
    assert sent_step["payload"]["sid"] == first.provider_id and "body" not in sent_step["payload"]
    assert "to" not in sent_step["payload"]
    assert receipt_step["payload"]["MessageStatus"] == "delivered" and "To" not in receipt_step["payload"]
    assert not LIVE_LINK.search(detail["body"])
    # The console shows the same record.
    sign_in(client, make_operator("viewer"))
    page = client.get(f"/ops/messages/{first.id}").get_data(as_text=True)
    assert "History" in page and "receipt" in page and first.provider_id in page and not LIVE_LINK.search(page)


def test_a_failure_keeps_twilios_error_and_a_retry_is_rendered_again_with_a_fresh_link(
        twilio_app, twilio_standin, api):
    twilio_app.config.update(twilio_standin.env())
    incident = make_incident()
    add_accounts(incident, 1, email=False)
    db.session.commit()
    broadcast_id = _broadcast(api, incident)
    twilio_standin.fail_next(code=21211, status=400)
    providers = from_config(twilio_app.config)
    worker.run_once(providers=providers)
    [m] = db.session.scalars(sa.select(Notification)).all()
    assert m.status == NotificationStatus.FAILED
    failed = api.get(f"/messages/{m.id}").get_json()["history"][-1]
    assert (failed["status"], failed["error_code"], failed["payload"]["code"]) == ("failed", "21211", 21211)
    assert api.post(f"/broadcasts/{broadcast_id}/retry").get_json()["requeued"] == 1
    worker.run_once(providers=providers)
    db.session.expire_all()
    assert db.session.get(Notification, m.id).status == NotificationStatus.SENT
    assert LIVE_LINK.search(twilio_standin.messages[-1]["body"])  # a working link, not the masked one


def test_a_verification_code_is_masked_once_sent(app):
    incident = make_incident()
    add_accounts(incident, 1, email=False)
    db.session.commit()
    selfservice.request_code(db.session, raw="N0", ip="192.0.2.1")
    db.session.commit()
    [queued] = db.session.scalars(sa.select(Notification)).all()
    assert re.search(r"\d{6}", queued.body)  # it has to go out as written
    assert "[code]" in shown_body(queued) and not re.search(r"\d{6}", shown_body(queued))  # but never shown
    worker.run_once(providers={"sms": LogSms(), "email": LogSms()})
    db.session.expire_all()
    sent = db.session.get(Notification, queued.id)
    assert sent.status == NotificationStatus.SENT and "[code]" in sent.body and not re.search(r"\d{6}", sent.body)


def shown_body(m):
    from notifications import record
    return record.shown(m, "body")


class LogSms:
    name = "log"

    def send(self, message):
        from notifications.providers import Sent
        assert re.search(r"\d{6}", message.body)  # the subscriber gets the real code
        return Sent(provider_id=f"log-{message.id}")


def test_a_status_reply_is_logged_with_its_link_masked(twilio_app, client):
    incident = make_incident()
    add_accounts(incident, 1)
    db.session.commit()
    text = reply_of(inbound(client, "STATUS", sender="+12065550000"))
    assert LIVE_LINK.search(text)
    stored = db.session.scalar(sa.select(InboundMessage.reply))
    assert not LIVE_LINK.search(stored) and re.search(r"/m/\[link #\d+\]", stored)


@pytest.mark.parametrize("query, field", [
    ("channel=fax", "channel"), ("status=lost", "status"), ("since=yesterday", "since"),
    ("incident=0", "incident"), ("limit=5000", "limit"), ("cursor=%21%21", "cursor"), ("cursor=ZnJvZw", "cursor")])
def test_bad_filters_are_422_with_the_field_to_fix(app, api, query, field):
    r = api.get(f"/messages?{query}")
    assert r.status_code == 422 and field in r.get_json()["error"]["fields"]


def test_filters_by_account_channel_status_and_time(app, api):
    incident = make_incident()
    add_accounts(incident, 2)
    db.session.commit()
    _broadcast(api, incident, channels=("sms", "email"))
    all_ = api.get("/messages").get_json()["messages"]
    assert len(all_) == 4
    assert {m["channel"] for m in api.get("/messages?channel=email").get_json()["messages"]} == {"email"}
    assert {m["account_number"] for m in api.get("/messages?account=N1").get_json()["messages"]} == {"N1"}
    assert api.get("/messages?status=sent").get_json()["messages"] == []
    assert len(api.get(f"/messages?incident={incident.id}").get_json()["messages"]) == 4
    assert api.get(f"/messages?incident={incident.id + 1}").get_json()["messages"] == []
    assert api.get("/messages?since=2999-01-01T00:00:00Z").get_json()["messages"] == []
    assert len(api.get("/messages?until=2999-01-01T00:00:00Z").get_json()["messages"]) == 4
    assert api.get("/messages/999999").status_code == 404


def test_the_console_searches_and_pages_through_every_message(app, client, monkeypatch):
    from notifications import views
    monkeypatch.setattr(views, "PAGE", 3)
    incident = make_incident()
    add_accounts(incident, 4)
    for i in range(4):
        db.session.add(Notification(dedupe_key=f"t:{i}", channel=Channel.SMS, recipient=f"+1206555{i:04d}",
                                    body=f"Hello {i}", account_id=i + 1))
    db.session.commit()
    sign_in(client, make_operator("viewer"))
    first = client.get("/ops/messages").get_data(as_text=True)
    assert "Hello 3" in first and "Hello 0" not in first
    older = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(older).get_data(as_text=True)
    assert "Hello 0" in second and "Hello 3" not in second and 'rel="next"' not in second
    found = client.get("/ops/messages?q=N2").get_data(as_text=True)
    assert "Hello 2" in found and "Hello 1" not in found
    found = client.get("/ops/messages?q=%2B12065550001").get_data(as_text=True)
    assert "Hello 1" in found and "Hello 2" not in found
    assert client.get("/ops/messages?cursor=%21").status_code == 400
