"""Broadcasts: audiences, exclusions, set-based enqueue, progress, retry, and the console pages."""
import re

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from accounts import audiences
from accounts.models import RecoveryState
from core.db import db, utcnow
from notifications import broadcasts
from notifications.models import Broadcast, Channel, Notification, NotificationStatus, OptOut
from ops.audit import Actor
from ops.models import AuditEntry
from tests.conftest import make_operator, post_form, sign_in
from tests.notifications.helpers import add_accounts, make_incident, rows

S = RecoveryState
ACTOR = Actor(operator_id=None, label="test")


def send(incident, **data):
    body = {"message": "Hello {{ name }}", "channels": ["sms", "email"], **data}
    b = audiences.broadcast_to_incident(db.session, actor=ACTOR, incident_id=incident.id, data=body)
    db.session.commit()
    return b


def test_an_audience_by_state_or_category_reaches_exactly_those_accounts(app):
    incident = make_incident()
    add_accounts(incident, 3, state=S.LOST, categories={"photos": S.LOST, "contacts": S.LOST})
    add_accounts(incident, 2, state=S.AT_RISK, start=10, categories={"photos": S.AT_RISK})
    add_accounts(incident, 4, state=S.RECOVERED, start=20, categories={"photos": S.RECOVERED})
    assert send(incident, audience={"states": ["lost", "at_risk"]}, channels=["sms"]).recipients == 5
    assert send(incident, audience={"categories": ["contacts"]}, channels=["sms"]).recipients == 3
    assert send(incident, audience={"categories": ["photos"], "states": ["recovered"]},
                channels=["email"]).recipients == 4
    everyone = send(incident, audience="all")
    assert everyone.recipients == 18
    queued = rows(broadcast_id=everyone.id)
    assert all(r.body is None and r.template == "broadcast" and r.status == NotificationStatus.QUEUED for r in queued)
    assert {r.dedupe_key for r in queued if r.channel == Channel.SMS} == {
        f"b{everyone.id}:sms:{r.account_id}" for r in queued}


def test_opted_out_accounts_and_missing_addresses_are_left_out(app):
    incident = make_incident()
    add_accounts(incident, 2)
    add_accounts(incident, 1, start=10, phone=False)
    add_accounts(incident, 1, start=20, sms_opt_out=True)
    add_accounts(incident, 1, start=30, email_opt_out=True)
    add_accounts(incident, 1, start=40)
    db.session.add_all([OptOut(channel=Channel.SMS, address="+12065550040", source="sms:STOP"),
                        OptOut(channel=Channel.EMAIL, address="p1@example.com", source="email:one-click")])
    b = send(incident)
    sms = {r.recipient for r in rows(broadcast_id=b.id, channel=Channel.SMS)}
    email = {r.recipient for r in rows(broadcast_id=b.id, channel=Channel.EMAIL)}
    assert sms == {"+12065550000", "+12065550001", "+12065550030"}
    assert email == {"p0@example.com", "p10@example.com", "p20@example.com", "p40@example.com"}
    assert b.recipients == 7


def _inserts_for(n: int) -> int:
    incident = make_incident(f"Outage {n}")
    add_accounts(incident, n, start=n * 100)
    db.session.commit()
    seen = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("INSERT INTO NOTIFICATIONS"):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        send(incident)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(seen)


def test_enqueueing_is_one_insert_per_channel_whatever_the_audience_size(app):
    assert _inserts_for(3) == 2
    assert _inserts_for(60) == 2
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 2 * 63


def test_progress_counts_statuses_groups_failures_and_retry_skips_opt_outs(app):
    incident = make_incident()
    add_accounts(incident, 5)
    b = send(incident, channels=["sms"])
    ids = [r.id for r in rows(broadcast_id=b.id)]
    now = utcnow()

    def mark(i, **values):
        db.session.execute(sa.update(Notification).where(Notification.id == ids[i]).values(**values))

    mark(0, status=NotificationStatus.SENT, sent_at=now)
    mark(1, status=NotificationStatus.DELIVERED, sent_at=now)
    mark(2, status=NotificationStatus.FAILED, error_code="30003", error_message="Unreachable handset")
    mark(3, status=NotificationStatus.FAILED, error_code="21610", error_message="Unsubscribed recipient")
    db.session.commit()
    p = broadcasts.progress(db.session, b.id)
    assert (p["counts"]["queued"], p["counts"]["sent"], p["counts"]["delivered"], p["counts"]["failed"]) == (1, 1, 1, 2)
    assert p["sent_last_minute"] == 2 and p["pending"] == 1 and p["eta_seconds"] >= 0
    assert sorted((f["code"], f["count"]) for f in p["failures"]) == [("21610", 1), ("30003", 1)]
    assert broadcasts.retry_failed(db.session, actor=ACTOR, broadcast_id=b.id) == 1
    db.session.commit()
    assert db.session.get(Notification, ids[2]).status == NotificationStatus.QUEUED
    assert db.session.get(Notification, ids[3]).status == NotificationStatus.FAILED
    actions = set(db.session.scalars(sa.select(AuditEntry.action)))
    assert {"broadcast.broadcast", "broadcast.retry"} <= actions


# ---- console ------------------------------------------------------------------------------------

@pytest.fixture
def operator_client(client):
    operator = make_operator("operator")
    sign_in(client, operator)
    return client, operator


def test_the_incident_page_links_to_the_broadcast_form(app, operator_client):
    client, _ = operator_client
    incident = make_incident()
    db.session.commit()
    html = client.get(f"/ops/incidents/{incident.id}").get_data(as_text=True)
    assert f"/ops/incidents/{incident.id}/broadcast" in html


def test_preview_shows_recipients_parts_encoding_and_time_without_queueing(app, operator_client):
    client, _ = operator_client
    incident = make_incident()
    add_accounts(incident, 3)
    db.session.commit()
    url = f"/ops/incidents/{incident.id}/broadcast"
    response = post_form(client, url, {"message": "Café ready, {{ name }} 😀", "channels": ["sms", "email"],
                                       "action": "preview"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<strong>6</strong> messages" in html and "3 SMS, 3 email" in html
    assert "UCS-2" in html and "Café ready, Ana 😀" in html and "parts per second" in html
    assert rows() == []


def test_form_errors_are_shown_beside_the_fields(app, operator_client):
    client, _ = operator_client
    incident = make_incident()
    db.session.commit()
    response = post_form(client, f"/ops/incidents/{incident.id}/broadcast",
                         {"message": "{{ ''.__class__ }}", "action": "send"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="message-error"' in html and "Choose one or more of" in html
    assert rows() == []


def test_send_acts_only_from_the_preview_the_operator_saw(app, operator_client):
    client, _ = operator_client
    incident = make_incident()
    add_accounts(incident, 3)
    db.session.commit()
    url = f"/ops/incidents/{incident.id}/broadcast"
    data = {"message": "We are on it.", "channels": ["sms"], "action": "send"}
    first = post_form(client, url, data)  # "send" without a preview shows the preview and the send button
    html = first.get_data(as_text=True)
    assert first.status_code == 200 and "Check the preview below" in html and "Send 3 messages" in html
    assert rows() == []
    reviewed = re.search(r'name="reviewed" value="([0-9a-f]+)"', html).group(1)
    edited = post_form(client, url, {**data, "message": "Changed after the preview.", "reviewed": reviewed})
    assert "Check the preview below" in edited.get_data(as_text=True) and rows() == []
    add_accounts(incident, 1, start=3)  # the audience grew since the preview: look again
    db.session.commit()
    grown = post_form(client, url, {**data, "reviewed": reviewed})
    assert "Send 4 messages" in grown.get_data(as_text=True) and rows() == []
    reviewed = re.search(r'name="reviewed" value="([0-9a-f]+)"', grown.get_data(as_text=True)).group(1)
    response = post_form(client, url, {**data, "reviewed": reviewed})
    assert response.status_code == 302
    b = db.session.scalars(sa.select(Broadcast)).one()
    assert response.headers["Location"].endswith(f"/ops/broadcasts/{b.id}") and b.recipients == 4
    page = client.get(f"/ops/broadcasts/{b.id}").get_data(as_text=True)
    assert "Queued" in page and "We are on it." in page


def test_a_test_send_goes_to_the_operators_email_only(app, operator_client):
    client, operator = operator_client
    incident = make_incident()
    add_accounts(incident, 3)
    db.session.commit()
    response = post_form(client, f"/ops/incidents/{incident.id}/broadcast",
                         {"message": "Test {{ name }}", "channels": ["sms", "email"], "action": "test"})
    assert response.status_code == 200
    queued = rows()
    assert [(r.channel, r.recipient) for r in queued] == [(Channel.EMAIL, operator.email)]
    assert db.session.get(Broadcast, queued[0].broadcast_id).kind == "test"


def test_viewers_read_the_message_log_and_progress_but_cannot_send(app, client):
    incident = make_incident()
    add_accounts(incident, 1)
    b = send(incident, channels=["sms"])
    db.session.execute(sa.update(Notification).values(body="Hello Person 0", status=NotificationStatus.SENT))
    db.session.commit()
    sign_in(client, make_operator("viewer"))
    log = client.get("/ops/messages")
    assert log.status_code == 200 and "Hello Person 0" in log.get_data(as_text=True)
    row = rows()[0]
    assert "Hello Person 0" in client.get(f"/ops/messages/{row.id}").get_data(as_text=True)
    assert client.get(f"/ops/broadcasts/{b.id}").status_code == 200
    assert client.get(f"/ops/incidents/{incident.id}/broadcast").status_code == 403
    assert client.get("/ops/broadcasts/999").status_code == 404
