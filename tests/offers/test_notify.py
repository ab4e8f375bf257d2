"""Telling subscribers: the offer, reminders and withdrawals go through the notifier with each code."""
import sqlalchemy as sa

from core.db import db
from notifications import optouts, templates
from notifications.models import Channel, Notification
from offers import grants, notify
from offers.models import OfferGrant
from offers.service import display_code
from tests.accounts.factories import ACTOR
from tests.offers.helpers import incident_with, issue, make_program


def queued(**where) -> list[Notification]:
    """Offer messages (the recovery imports in the setup queue their own "recovery" messages too)."""
    return list(db.session.scalars(sa.select(Notification).filter_by(template="broadcast", **where)
                                   .order_by(Notification.id)))


def test_announcing_queues_one_sms_and_email_per_grant_with_its_code_and_link(app):
    incident = incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}, "A3": {"photos": "recovered"}})
    program = make_program(incident.id)
    issue(program.id)
    optouts.opt_out(db.session, Channel.EMAIL, "a2@example.com", "test")
    assert notify.announce(db.session, actor=ACTOR, program_id=program.id) == 3  # 2 SMS + 1 email
    db.session.commit()
    grant = db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.account_id)).first()
    sms = next(n for n in queued(channel="sms") if n.account_id == grant.account_id)
    assert sms.data["offer_code"] == display_code(grant.code)
    text = templates.render(sms).body
    assert display_code(grant.code) in text and f"ACCEPT {display_code(grant.code)}" in text
    assert "a 100.00 USD gift card" in text and "http://status.example.com/m/" in text
    email = templates.render(queued(channel="email")[0])
    assert email.subject == "Gift card" and display_code(grant.code) in email.body
    # Re-announcing reaches only grants not told yet.
    assert notify.announce(db.session, actor=ACTOR, program_id=program.id) == 0


def test_a_reminder_goes_once_and_only_to_unanswered_offers(app):
    incident = incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}})
    program = make_program(incident.id)
    issue(program.id)
    first = db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.id)).first()
    grants.accept(db.session, first, via="web")
    assert notify.remind(db.session, actor=ACTOR, program_id=program.id) == 2  # one account, SMS + email
    assert notify.remind(db.session, actor=ACTOR, program_id=program.id) == 0
    assert all("Reminder" in templates.render(n).body for n in queued())


def test_a_revoked_offer_tells_the_subscriber_with_the_reason(app):
    incident = incident_with({"A1": {"photos": "lost"}})
    program = make_program(incident.id)
    issue(program.id)
    grant = db.session.scalar(sa.select(OfferGrant))
    grants.revoke(db.session, actor=ACTOR, grant_id=grant.id, reason="Account closed before the incident")
    db.session.commit()
    rows = queued()
    assert {n.channel.value if hasattr(n.channel, "value") else n.channel for n in rows} == {"sms", "email"}
    text = templates.render(rows[0]).body
    assert "withdrawn: Account closed before the incident" in text and display_code(grant.code) in text
