"""Opt-outs: recorded once, mirrored on accounts, suppressing unsent messages; the console lists and edits them."""
import sqlalchemy as sa

from accounts.models import Account
from core.db import db
from notifications import optouts, service
from notifications.models import Channel, InboundMessage, Notification, NotificationStatus, OptOut
from ops.models import AuditEntry
from tests.accounts.factories import HEADER, make_incident, run_import
from tests.conftest import csrf_from, make_operator, post_form, sign_in

ANN = "+12065550100"


def accounts(*rows: str):
    incident = make_incident(categories=("photos",))
    job = run_import(incident.id, HEADER + "".join(f"{r}\n" for r in rows))
    assert job.status.value == "done", job.errors


def queue(key: str, recipient: str = ANN, channel: Channel = Channel.SMS) -> Notification:
    n = service.enqueue(db.session, dedupe_key=key, channel=channel, recipient=recipient, body="News")
    db.session.commit()
    return n


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_opting_out_flags_every_account_with_the_address_and_suppresses_queued_messages(app):
    accounts(f"A1,Ann,{ANN},ann@example.com,en", f"A2,Al,{ANN},al@example.com,en", "A3,Bo,+12065550101,,en")
    waiting, other = queue("a"), queue("b", recipient="+12065550101")
    email = queue("c", recipient="ann@example.com", channel=Channel.EMAIL)
    optouts.opt_out(db.session, "sms", ANN, "sms:STOP")
    optouts.opt_out(db.session, Channel.SMS, f" {ANN} ", "sms:STOP")  # idempotent
    db.session.commit()
    assert count(OptOut) == 1 and optouts.is_opted_out(db.session, "sms", ANN)
    assert not optouts.is_opted_out(db.session, "email", "ann@example.com")
    flags = dict(db.session.execute(sa.select(Account.account_number, Account.sms_opt_out)).all())
    assert flags == {"A1": True, "A2": True, "A3": False}
    for n in (waiting, other, email):
        db.session.refresh(n)
    assert waiting.status == NotificationStatus.SUPPRESSED and waiting.error_code == "opt_out"
    assert other.status == email.status == NotificationStatus.QUEUED


def test_emails_are_matched_case_insensitively_and_opt_in_clears_the_flags(app):
    accounts("A1,Ann,,ann@example.com,en")
    optouts.opt_out(db.session, "email", "Ann@Example.com", "email:one-click")
    db.session.commit()
    assert optouts.is_opted_out(db.session, "email", "ANN@example.com")
    assert db.session.scalar(sa.select(Account.email_opt_out)) is True
    assert optouts.opt_in(db.session, "email", "ann@example.com", "operator") is True
    db.session.commit()
    assert count(OptOut) == 0 and db.session.scalar(sa.select(Account.email_opt_out)) is False
    assert optouts.opt_in(db.session, "email", "ann@example.com", "operator") is False


def test_list_filters_by_address_source_and_channel(app):
    optouts.opt_out(db.session, "sms", ANN, "sms:STOP")
    optouts.opt_out(db.session, "sms", "+12065550101", "twilio:21610")
    optouts.opt_out(db.session, "email", "bo@example.com", "email:one-click")
    db.session.commit()
    assert optouts.list_opt_outs(db.session)[1] == 3
    assert [r.address for r in optouts.list_opt_outs(db.session, q="0101")[0]] == ["+12065550101"]
    assert [r.address for r in optouts.list_opt_outs(db.session, source="sms:")[0]] == [ANN]
    assert [r.address for r in optouts.list_opt_outs(db.session, channel="email")[0]] == ["bo@example.com"]


# ---- console ---------------------------------------------------------------------------------------

def test_a_viewer_sees_opt_outs_and_inbound_messages_but_cannot_change_them(app, client):
    optouts.opt_out(db.session, "sms", ANN, "sms:STOP")
    db.session.add(InboundMessage(provider_id="SM1", from_number=ANN, to_number="+15005550006", body="STOP",
                                  keyword="stop", reply=""))
    db.session.commit()
    sign_in(client, make_operator("viewer"))
    html = client.get("/ops/opt-outs").get_data(as_text=True)
    assert ANN in html and "sms:STOP" in html and "Add an opt-out" not in html and "Remove" not in html
    assert 'href="/ops/opt-outs"' in html  # the console menu entry
    inbound = client.get("/ops/inbound?keyword=stop")
    assert inbound.status_code == 200 and ANN in inbound.get_data(as_text=True)
    token = csrf_from(html)  # the sign-out form's
    refused = client.post("/ops/opt-outs", data={"channel": "sms", "address": "+12065550199", "csrf_token": token})
    assert refused.status_code == 403 and count(OptOut) == 1


def test_an_operator_adds_and_removes_an_opt_out_and_both_are_audited(app, client):
    accounts(f"A1,Ann,{ANN},,en")
    sign_in(client, make_operator("operator"))
    added = post_form(client, "/ops/opt-outs", {"channel": "sms", "address": ANN})
    assert added.status_code == 303
    page = client.get("/ops/opt-outs").get_data(as_text=True)
    assert "will get no more sms messages" in page and "operator" in page
    assert db.session.scalar(sa.select(Account.sms_opt_out)) is True
    row_id = db.session.scalar(sa.select(OptOut.id))
    removed = client.post(f"/ops/opt-outs/{row_id}/remove", data={"csrf_token": csrf_from(page)})
    assert removed.status_code == 303 and count(OptOut) == 0
    assert db.session.scalar(sa.select(Account.sms_opt_out)) is False
    actions = db.session.scalars(sa.select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions[-2:] == ["opt_out.add", "opt_out.remove"]


def test_a_bad_address_is_shown_beside_the_field(app, client):
    sign_in(client, make_operator("operator"))
    response = post_form(client, "/ops/opt-outs", {"channel": "sms", "address": "555-0100"})
    assert response.status_code == 422 and "Use E.164" in response.get_data(as_text=True)
    assert count(OptOut) == 0


def test_removing_an_unknown_opt_out_is_404_and_a_bad_date_is_422(app, client):
    sign_in(client, make_operator("operator"))
    page = client.get("/ops/opt-outs").get_data(as_text=True)
    assert client.post("/ops/opt-outs/999/remove", data={"csrf_token": csrf_from(page)}).status_code == 404
    assert client.get("/ops/opt-outs?since=yesterday").status_code == 422
    assert client.get("/ops/opt-outs?since=2020-01-01&until=2999-01-01&page=99999999").status_code == 200


def test_the_console_needs_a_signed_in_operator(app, client):
    assert client.get("/ops/opt-outs").status_code == 302
    assert client.get("/ops/inbound").status_code == 302
