"""SMS subscriptions (accounts.subscriptions) against the Twilio stand-in: a visitor gives a mobile number on
/subscribe, types the texted code on the next page, and gets the next update once by text, with STOP as the
way out; refusals of wrong, spent and expired codes, numbers abroad, and the same answer for a number that is
already subscribed."""
import re
from datetime import timedelta

import sqlalchemy as sa

from accounts.models import Subscription
from core.db import db, utcnow
from notifications.models import Notification
from ops.models import AuditEntry
from tests.acceptance_helpers import connect_peers, deliver, email_text, emails_to, sms_bodies, text_us
from tests.accounts.factories import HEADER, make_incident, run_import
from tests.accounts.test_subscriptions import post_update
from tests.conftest import csrf_from

NUMBER = "+12065550199"


def ask(client, *, phone: str = "", email: str = "", ip: str = "198.51.100.7", components=None):
    page = client.get("/subscribe")
    assert page.status_code == 200
    data = {"email": email, "phone": phone, "csrf_token": csrf_from(page.get_data(as_text=True))}
    if components is not None:
        data.update(follow="some", component=[str(c) for c in components])
    return client.post("/subscribe", data=data, environ_base={"REMOTE_ADDR": ip})


def code_page(response) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    path = response.headers["Location"]
    assert "/subscribe/verify/" in path
    return path


def texted_code(standin, number: str = NUMBER) -> str:
    deliver()
    match = re.search(r"your code is (\d{6})", sms_bodies(standin, number)[-1])
    assert match, sms_bodies(standin, number)
    return match.group(1)


def enter(client, path: str, code: str, ip: str = "198.51.100.7"):
    page = client.get(path)
    return client.post(path, data={"code": code, "csrf_token": csrf_from(page.get_data(as_text=True))},
                       environ_base={"REMOTE_ADDR": ip})


def test_a_visitor_subscribes_by_text_types_the_code_and_gets_the_next_update_once(app, client, twilio_standin,
                                                                                   smtp_server, twilio_app):
    connect_peers(app, twilio_standin, smtp_server)
    incident = make_incident()
    assert 'name="phone"' in client.get("/subscribe").get_data(as_text=True)
    path = code_page(ask(client, phone="(206) 555-0199"))  # any format: stored as E.164
    page = client.get(path).get_data(as_text=True)
    assert NUMBER in page and "Enter your code" in page
    code = texted_code(twilio_standin)
    post_update(incident.id, "Still investigating, before the code.")
    deliver()
    assert len(sms_bodies(twilio_standin, NUMBER)) == 1  # nothing but the code before confirming

    wrong = enter(client, path, "000000" if code != "000000" else "111111")
    assert wrong.status_code == 422 and "That code is not right" in wrong.get_data(as_text=True)
    assert "4 tries left" in wrong.get_data(as_text=True)
    done = enter(client, path, code)
    assert done.status_code == 200 and "You are subscribed" in done.get_data(as_text=True)
    assert "Reply STOP" in done.get_data(as_text=True)
    sub = db.session.scalar(sa.select(Subscription))
    assert (sub.channel, sub.address, sub.code_hash) == ("sms", NUMBER, None) and sub.confirmed_at is not None
    deliver()
    welcome = sms_bodies(twilio_standin, NUMBER)[-1]
    assert "outage updates by text" in welcome and "STOP" in welcome
    # The record keeps no live code (notifications.masking).
    stored = db.session.scalar(sa.select(Notification.body).where(Notification.template == "subscription_code"))
    assert code not in stored and "[code]" in stored

    post_update(incident.id, "We found the cause.")
    deliver()
    texts = sms_bodies(twilio_standin, NUMBER)
    assert len(texts) == 3 and "We found the cause." in texts[-1] and texts[-1].endswith("Reply STOP to stop.")
    assert "/m/" not in texts[-1]
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "subscription.confirm"))
    assert entry.actor == "subscriber (sms)"

    # STOP ends the subscription (audited as the subscriber's), and a later START does not bring it back.
    text_us(client, NUMBER, "STOP")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 0
    gone = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "subscription.delete"))
    assert gone.actor == "subscriber (sms:STOP)" and gone.before["address"] == NUMBER
    text_us(client, NUMBER, "START")
    post_update(incident.id, "Fixed.")
    deliver()
    assert not any("Fixed." in t for t in sms_bodies(twilio_standin, NUMBER))


def test_a_number_that_an_affected_account_has_gets_one_text_per_update(app, client, twilio_standin, smtp_server,
                                                                        twilio_app):
    connect_peers(app, twilio_standin, smtp_server)
    incident = make_incident()
    run_import(incident.id, HEADER + f"SK1,Ana,{NUMBER},,en\n")
    path = code_page(ask(client, phone=NUMBER))
    assert enter(client, path, texted_code(twilio_standin)).status_code == 200
    deliver()
    before = len(sms_bodies(twilio_standin, NUMBER))
    post_update(incident.id, "Photos are coming back.")
    deliver()
    new = sms_bodies(twilio_standin, NUMBER)[before:]
    assert len(new) == 1 and "Photos are coming back." in new[0] and "/m/" in new[0]  # the personal one wins


def test_email_and_phone_in_one_form_confirm_separately(app, client, twilio_standin, smtp_server, twilio_app):
    connect_peers(app, twilio_standin, smtp_server)
    path = code_page(ask(client, phone=NUMBER, email="both@example.org"))
    assert "We also emailed you a link" in client.get(path).get_data(as_text=True)
    code = texted_code(twilio_standin)
    assert "/subscribe/confirm/" in email_text(emails_to(smtp_server, "both@example.org")[-1])
    assert enter(client, path, code).status_code == 200
    states = dict(db.session.execute(sa.select(Subscription.channel, Subscription.confirmed_at.is_not(None))).all())
    assert states == {"sms": True, "email": False}  # the email waits for its own button


def test_spent_expired_and_replaced_codes_are_refused_and_a_subscribed_number_looks_the_same(
        app, client, twilio_standin, smtp_server, twilio_app):
    connect_peers(app, twilio_standin, smtp_server)
    path = code_page(ask(client, phone=NUMBER))
    code = texted_code(twilio_standin)
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1, 0):
        answer = enter(client, path, wrong)
        assert answer.status_code == 422 and f"{left} tr" in answer.get_data(as_text=True)
    dead = enter(client, path, code)  # right, but too late: five guesses were spent
    assert dead.status_code == 422 and "Too many wrong codes" in dead.get_data(as_text=True)
    assert db.session.scalar(sa.select(Subscription.confirmed_at)) is None

    # "Send a new code": the old one no longer works, the new one does until it expires.
    page = client.get(path)
    resent = client.post(path, data={"action": "resend", "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert resent.status_code == 303 and "We sent a new code" in client.get(resent.headers["Location"]).get_data(
        as_text=True)
    fresh = texted_code(twilio_standin)
    if fresh != code:
        assert enter(client, path, code).status_code == 422
    sub = db.session.scalar(sa.select(Subscription))
    sub.code_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    expired = enter(client, path, fresh)
    assert expired.status_code == 422 and "This code has expired" in expired.get_data(as_text=True)
    db.session.refresh(sub)
    assert sub.confirmed_at is None

    # A number already subscribed: the same redirect and page; the phone is told, no code opens anything.
    path = code_page(ask(client, phone="+12065550123", ip="198.51.100.8"))
    assert enter(client, path, texted_code(twilio_standin, "+12065550123")).status_code == 200
    again = ask(client, phone="+12065550123", ip="198.51.100.9")
    other = ask(client, phone="+12065550124", ip="198.51.100.10")
    assert again.status_code == other.status_code == 303
    strip = lambda html: re.sub(r'(name="csrf_token"[^>]*>|/subscribe/verify/[^"]+|\+1206555012\d)', "", html)  # noqa: E731
    assert strip(client.get(again.headers["Location"]).get_data(as_text=True)) == \
        strip(client.get(other.headers["Location"]).get_data(as_text=True))
    deliver()
    # (the welcome waits in its class behind codes: both went out in this pass)
    assert any("already gets our outage updates" in t for t in sms_bodies(twilio_standin, "+12065550123")[-2:])
    refused = enter(client, again.headers["Location"], "123456")
    assert refused.status_code == 422 and "That code is not right" in refused.get_data(as_text=True)


def test_numbers_abroad_bad_numbers_and_forged_pages_are_refused_clearly(app, client, twilio_standin, smtp_server,
                                                                         twilio_app):
    connect_peers(app, twilio_standin, smtp_server)
    abroad = ask(client, phone="+44 20 7946 0958")
    assert abroad.status_code == 422 and "We can only text numbers from: US" in abroad.get_data(as_text=True)
    bad = ask(client, phone="12", email="kept@example.org", components=[])
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "Enter a mobile number" in html and 'value="kept@example.org"' in html
    empty = ask(client)
    assert empty.status_code == 422 and "Enter an email address or a mobile number" in empty.get_data(as_text=True)
    # Nothing was filed or sent for any of them (the email of the form with a bad number neither).
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 0
    assert client.get("/subscribe/verify/forged").status_code == 404
    # Texts cost money: past their own overall budget, new numbers wait (429), while email still works.
    app.config["SUBSCRIBE_SMS_GLOBAL"] = (1, 3600)
    assert ask(client, phone="+12065550141", ip="198.51.100.40").status_code == 303
    limited = ask(client, phone="+12065550142", ip="198.51.100.41")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3600"
    assert ask(client, email="still@example.org", ip="198.51.100.42").status_code == 200
    app.config["SUBSCRIBE_SMS_REGIONS"] = ()  # SMS subscriptions off: no number field
    assert 'name="phone"' not in client.get("/subscribe").get_data(as_text=True)
    html = ask(client, phone=NUMBER).get_data(as_text=True)  # a number sent anyway is not texted
    assert "Enter an email address, like ana@example.com." in html and "mobile number" not in html
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription).where(
        Subscription.address == NUMBER)) == 0
