"""Issue 14's "Done when", end to end through the real peers: visitors subscribe from the status page by email
and by SMS and confirm; one of them is also an affected subscriber. The operator posts an update with notify
through the ops API. Each person gets that update exactly once (the affected one: the personal message), and an
integrator's webhook receives the same update, signed and verified with the standardwebhooks library."""
import re

import pytest
import sqlalchemy as sa

from core.db import db
from notifications.models import Notification, StagedMessage
from tests.acceptance_helpers import connect_peers, deliver, email_text, emails_to, sms_bodies
from tests.accounts.factories import HEADER, make_incident, run_import
from tests.accounts.test_subscriptions import confirm, subscribe
from tests.accounts.test_subscriptions_sms import ask, code_page, enter, texted_code
from tests.notifications.outbound.helpers import api_as, deliver as deliver_webhooks, register

ANA_PHONE, ANA_EMAIL = "+12065550100", "ana@example.org"


@pytest.mark.parametrize("inline_max", [20_000, 0], ids=["in-the-request", "staged"])
def test_visitors_and_an_affected_subscriber_get_the_update_once_and_a_webhook_gets_it_signed(
        app, client, twilio_standin, smtp_server, twilio_app, receiver, inline_max):
    # "staged": the update goes the way a million-recipient one goes (notifications.staging): staged in the
    # request, moved into the outbox by the worker.
    connect_peers(app, twilio_standin, smtp_server, WEBHOOKS_ALLOW_PRIVATE_TARGETS=True,
                  BROADCAST_INLINE_MAX=inline_max)
    incident = make_incident()
    run_import(incident.id, HEADER + f"SK1,Ana,{ANA_PHONE},{ANA_EMAIL},en\n")
    admin = api_as(app.test_client(), "admin")
    hook = register(admin, receiver.url, ["incident.updated"])

    # From the status page: an email visitor, an SMS visitor, and Ana (affected) on both channels.
    assert 'href="/subscribe"' in client.get("/").get_data(as_text=True)
    subscribe(client, "visitor@example.org")
    confirm(client, smtp_server, "visitor@example.org")
    path = code_page(ask(client, phone="+12065550177", ip="198.51.100.11"))
    assert enter(client, path, texted_code(twilio_standin, "+12065550177")).status_code == 200
    path = code_page(ask(client, phone=ANA_PHONE, email=ANA_EMAIL, ip="198.51.100.12"))
    assert enter(client, path, texted_code(twilio_standin, ANA_PHONE)).status_code == 200
    confirm(client, smtp_server, ANA_EMAIL)
    deliver()
    seen = {"visitor": len(emails_to(smtp_server, "visitor@example.org")),
            "sms": len(sms_bodies(twilio_standin, "+12065550177")),
            "ana_sms": len(sms_bodies(twilio_standin, ANA_PHONE)), "ana_email": len(emails_to(smtp_server, ANA_EMAIL))}

    posted = admin.post(f"/incidents/{incident.id}/updates", json={
        "status": "identified", "message": "A storage array failed; restoring from backup.", "notify": True})
    assert posted.status_code == 201, posted.get_json()
    staged = db.session.scalar(sa.select(sa.func.count()).select_from(StagedMessage))
    in_outbox = db.session.scalar(sa.select(sa.func.count()).select_from(Notification)
                                  .where(Notification.broadcast_id.is_not(None)))
    # Ana's two personal messages and the visitors' two: staged, or already in the outbox.
    assert (staged, in_outbox) == ((4, 0) if inline_max == 0 else (0, 4))
    while deliver():
        pass
    deliver_webhooks()  # (the worker delivers due webhooks on its ticks too)
    text = "A storage array failed; restoring from backup."
    new_visitor = emails_to(smtp_server, "visitor@example.org")[seen["visitor"]:]
    new_sms = sms_bodies(twilio_standin, "+12065550177")[seen["sms"]:]
    ana_sms = sms_bodies(twilio_standin, ANA_PHONE)[seen["ana_sms"]:]
    ana_email = emails_to(smtp_server, ANA_EMAIL)[seen["ana_email"]:]
    assert len(new_visitor) == 1 and text in email_text(new_visitor[0]) and "/subscribe/manage/" in \
        email_text(new_visitor[0])
    assert len(new_sms) == 1 and text in new_sms[0] and new_sms[0].endswith("Reply STOP to stop.")
    # Ana: one text and one email, the personal ones (her own page's link), not the subscriber copies.
    assert len(ana_sms) == 1 and re.search(r"/m/\S+", ana_sms[0]) and "Reply STOP to stop." not in ana_sms[0]
    assert len(ana_email) == 1 and "/m/" in email_text(ana_email[0])

    [received] = receiver.received
    body = received.verify(hook["secret"])  # standardwebhooks: raises on a bad signature
    assert body["type"] == "incident.updated" and body["data"]["incident_update"]["body"] == text
    assert body["data"]["incident"]["id"] == str(incident.id)
