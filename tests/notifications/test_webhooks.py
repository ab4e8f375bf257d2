"""Twilio webhooks: signed delivery receipts and two-way SMS (STOP, START, HELP, STATUS), answered in TwiML."""
import re

import pytest
import sqlalchemy as sa

from accounts.models import Account
from core.db import db
from notifications import service, worker
from notifications.models import Channel, EarlyReceipt, InboundMessage, Notification, NotificationStatus, OptOut
from notifications.providers import LogProvider
from ops.models import AuditEntry
from tests.accounts.factories import HEADER, RECOVERY_HEADER, make_incident, run_import
from tests.notifications.twilio_helpers import ANN, PUBLIC, callback, inbound, post_signed, reply_of
from tests.peers.twilio_standin import sign

STRANGER = "+12065559999"


def sent_sms(sid: str, recipient: str = ANN, key: str = "k1") -> Notification:
    n = service.enqueue(db.session, dedupe_key=key, channel=Channel.SMS, recipient=recipient, body="Update")
    n.status, n.provider, n.provider_id = NotificationStatus.SENT, "twilio", sid
    db.session.commit()
    return n


def add_account(number="A1", phone=ANN, locale="en", incident=None, state=None):
    incident = incident or make_incident(categories=("photos",))
    job = run_import(incident.id, HEADER + f"{number},Ann,{phone},{number.lower()}@example.com,{locale}\n")
    assert job.status.value == "done", job.errors
    if state:
        run_import(incident.id, RECOVERY_HEADER + f"{number},photos,{state},10,10,\n", kind="recovery")
    return incident


# ---- signatures ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/webhooks/twilio/status", "/webhooks/twilio/inbound"])
def test_forged_and_unsigned_requests_are_refused_and_signed_ones_accepted(twilio_app, client, path):
    params = {"MessageSid": "SM" + "2" * 32, "MessageStatus": "delivered", "From": STRANGER, "Body": "HELP"}
    assert client.post(path, data=params).status_code == 403
    forged = client.post(path, data=params, headers={"X-Twilio-Signature": sign(PUBLIC + path, params, "x" * 32)})
    assert forged.status_code == 403
    tampered = client.post(path, data={**params, "From": ANN},
                           headers={"X-Twilio-Signature": sign(PUBLIC + path, params)})
    assert tampered.status_code == 403
    assert post_signed(client, path, params).status_code == 200


def test_the_signature_is_checked_against_the_public_url_not_the_request_url(twilio_app, client):
    params = {"MessageSid": "SM" + "3" * 32, "From": STRANGER, "Body": "HELP"}
    internal = post_signed(client, "/webhooks/twilio/inbound", params, url="http://localhost/webhooks/twilio/inbound")
    assert internal.status_code == 403
    assert post_signed(client, "/webhooks/twilio/inbound", params).status_code == 200


def test_without_an_auth_token_every_webhook_is_refused(app, client):
    app.config["TWILIO_AUTH_TOKEN"] = ""
    params = {"MessageSid": "SM" + "4" * 32, "From": ANN, "Body": "STOP"}
    assert post_signed(client, "/webhooks/twilio/inbound", params).status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OptOut)) == 0


# ---- delivery receipts -----------------------------------------------------------------------------

def test_delivered_is_recorded_and_a_late_sent_does_not_move_it_back(twilio_app, client):
    n = sent_sms("SM" + "a" * 32)
    assert callback(client, n.provider_id, "delivered").status_code == 200
    db.session.refresh(n)
    assert n.status == NotificationStatus.DELIVERED and n.delivered_at is not None
    assert callback(client, n.provider_id, "sent").status_code == 200
    assert callback(client, n.provider_id, "undelivered", "30003").status_code == 200
    db.session.refresh(n)
    assert n.status == NotificationStatus.DELIVERED and n.error_code is None


def test_undelivered_and_failed_keep_the_error_code(twilio_app, client):
    a, b = sent_sms("SM" + "b" * 32, key="a"), sent_sms("SM" + "c" * 32, key="b")
    callback(client, a.provider_id, "undelivered", "30003")
    callback(client, b.provider_id, "failed", "30008")
    db.session.refresh(a), db.session.refresh(b)
    assert (a.status, a.error_code) == (NotificationStatus.UNDELIVERED, "30003")
    assert (b.status, b.error_code) == (NotificationStatus.FAILED, "30008")


def test_a_callback_for_an_unknown_message_is_acknowledged_and_kept_for_the_worker(twilio_app, client):
    response = callback(client, "SM" + "d" * 32, "delivered")
    assert response.status_code == 200 and reply_of(response) == ""
    kept = db.session.scalar(sa.select(EarlyReceipt))
    assert (kept.provider_id, kept.status) == ("SM" + "d" * 32, "delivered")  # notifications.receipts applies it


def test_a_status_callback_without_a_sid_or_status_is_a_clear_400(twilio_app, client):
    params = {"MessageSid": "SM" + "d" * 32}
    response = post_signed(client, "/webhooks/twilio/status", params)
    assert response.status_code == 400 and b"MessageStatus" in response.data
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EarlyReceipt)) == 0


def test_error_21610_opts_the_number_out(twilio_app, client):
    add_account()
    n = sent_sms("SM" + "e" * 32)
    waiting = service.enqueue(db.session, dedupe_key="later", channel=Channel.SMS, recipient=ANN, body="Later")
    db.session.commit()
    callback(client, n.provider_id, "failed", "21610")
    db.session.refresh(waiting)
    assert db.session.scalar(sa.select(OptOut.source).where(OptOut.address == ANN)) == "twilio:21610"
    assert waiting.status == NotificationStatus.SUPPRESSED
    assert db.session.scalar(sa.select(Account.sms_opt_out).where(Account.phone == ANN)) is True


def test_a_real_status_callback_from_the_twilio_standin_marks_delivery(twilio_app, client, twilio_standin):
    twilio_app.config.update(twilio_standin.env())
    from notifications.providers import from_config

    n = service.enqueue(db.session, dedupe_key="real", channel=Channel.SMS, recipient=ANN, body="Hello",
                        urgent=True)
    db.session.commit()
    worker.run_once(db.session, providers=from_config(twilio_app.config))
    db.session.refresh(n)
    assert n.status == NotificationStatus.SENT and n.provider_id
    twilio_standin.set_status(n.provider_id, "delivered")
    url, params, headers = twilio_standin.status_callback(n.provider_id)
    assert url == PUBLIC + "/webhooks/twilio/status"
    assert client.post("/webhooks/twilio/status", data=params, headers=headers).status_code == 200
    db.session.refresh(n)
    assert n.status == NotificationStatus.DELIVERED


# ---- inbound ---------------------------------------------------------------------------------------

def test_stop_opts_out_and_a_later_message_is_suppressed_by_the_worker(twilio_app, client):
    add_account()
    response = inbound(client, "  stop. ")
    assert reply_of(response) == ""  # Twilio's Advanced Opt-Out confirms STOP itself
    assert db.session.scalar(sa.select(OptOut.source).where(OptOut.address == ANN)) == "sms:STOP"
    n = service.enqueue(db.session, dedupe_key="after-stop", channel=Channel.SMS, recipient=ANN, body="News",
                        urgent=True)
    db.session.commit()
    worker.run_once(db.session, providers={"sms": LogProvider(), "email": LogProvider()})
    db.session.refresh(n)
    assert n.status == NotificationStatus.SUPPRESSED and n.provider_id is None


def test_stop_inside_a_sentence_opts_out_and_we_confirm_it_since_twilio_does_not(twilio_app, client):
    add_account(locale="es")
    text = reply_of(inbound(client, "Stop sending me these"))
    assert "no recibirá más mensajes" in text and "START" in text
    assert db.session.scalar(sa.select(OptOut.address)) == ANN


@pytest.mark.parametrize("word", ["UNSUBSCRIBE", "end", "Quit", "STOPALL", "revoke", "OPTOUT", "cancel!"])
def test_every_stop_word_opts_out(twilio_app, client, word):
    inbound(client, word)
    assert db.session.scalar(sa.select(OptOut.address)) == ANN


def test_start_opts_back_in_with_a_confirmation(twilio_app, client):
    add_account()
    inbound(client, "STOP", sid="SM" + "5" * 32)
    text = reply_of(inbound(client, "Start", sid="SM" + "6" * 32))
    assert "again" in text
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OptOut)) == 0
    assert db.session.scalar(sa.select(Account.sms_opt_out).where(Account.phone == ANN)) is False
    n = service.enqueue(db.session, dedupe_key="after-start", channel=Channel.SMS, recipient=ANN, body="News",
                        urgent=True)
    db.session.commit()
    worker.run_once(db.session, providers={"sms": LogProvider(), "email": LogProvider()})
    db.session.refresh(n)
    assert n.status == NotificationStatus.SENT


def test_help_names_the_service_and_the_keywords(twilio_app, client):
    text = reply_of(inbound(client, "help"))
    assert text.startswith("Lifeboat") and "Reply STATUS for your data recovery status, STOP to stop" in text


def test_anything_else_gets_short_help(twilio_app, client):
    text = reply_of(inbound(client, "where is my stuff?"))
    assert "STATUS" in text and "STOP" in text and len(text) <= 160
    assert db.session.scalar(sa.select(InboundMessage.keyword)) == "other"


def test_status_for_a_spanish_account_answers_in_spanish_with_a_working_link(twilio_app, client):
    add_account(locale="es-MX", state="recovered")
    text = reply_of(inbound(client, "status"))
    assert "Buenas noticias: hemos recuperado sus datos." in text and "Detalles:" in text
    token = re.search(re.escape(PUBLIC) + r"/m/([A-Za-z0-9_-]+)", text).group(1)
    opened = client.get(f"/m/{token}")
    assert opened.status_code == 303 and opened.headers["Location"].endswith("/my/account")
    assert "Cuenta A1" in client.get("/my/account").get_data(as_text=True)


def test_other_replies_use_the_accounts_language(twilio_app, client):
    add_account(locale="es")
    assert "Responda STATUS" in reply_of(inbound(client, "AYUDA"))


def test_status_for_a_shared_phone_summarises_each_account(twilio_app, client):
    incident = add_account("A1", state="recovered")
    add_account("B2", incident=incident)
    text = reply_of(inbound(client, "STATUS"))
    assert "Account A1: Good news" in text and "Account B2:" in text
    assert len(re.findall(r"/m/[A-Za-z0-9_-]+", text)) == 2


def test_status_from_an_unknown_number_reveals_nothing_and_points_to_my(twilio_app, client):
    add_account(state="recovered")
    text = reply_of(inbound(client, "STATUS", sender=STRANGER))
    assert text.endswith(PUBLIC + "/my") and "/m/" not in text and "recovered" not in text


def test_a_replayed_message_gets_the_same_reply_and_acts_once(twilio_app, client):
    add_account(state="recovered")
    first = reply_of(inbound(client, "STATUS", sid="SM" + "7" * 32))
    again = reply_of(inbound(client, "STATUS", sid="SM" + "7" * 32))
    # The log keeps the reply with its personal link masked, so a replay answers with a fresh link.
    link = re.compile(r"/m/[A-Za-z0-9_-]{16}$")
    assert link.search(first) and link.search(again)
    assert link.sub("", first) == link.sub("", again)
    stored = db.session.scalar(sa.select(InboundMessage.reply).where(InboundMessage.provider_id == "SM" + "7" * 32))
    assert re.search(r"/m/\[link #\d+\]$", stored) and link.sub("", first) in stored
    inbound(client, "STOP", sid="SM" + "8" * 32)
    inbound(client, "STOP", sid="SM" + "8" * 32)
    inbound(client, "STOP", sid="SM" + "9" * 32)  # a second STOP is a no-op too
    assert db.session.scalar(sa.select(sa.func.count()).select_from(InboundMessage)) == 3
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OptOut)) == 1
    # The subscriber's STOP is audited once, as theirs.
    [entry] = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "opt_out.add")).all()
    assert entry.actor == "subscriber (sms:STOP)" and entry.operator_id is None


def test_an_inbound_without_a_sender_is_a_clear_400(twilio_app, client):
    params = {"MessageSid": "SM" + "f" * 32, "Body": "STOP"}
    assert post_signed(client, "/webhooks/twilio/inbound", params).status_code == 400
