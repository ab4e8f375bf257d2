"""Telling subscribers: the offer, reminders and withdrawals go through the real worker (log provider) with
each subscriber's code, in English or Spanish by the account's language."""
from datetime import datetime, timezone

import sqlalchemy as sa

from accounts.models import Account
from core.db import db
from notifications import optouts, worker
from notifications.models import Broadcast, Channel, Notification, NotificationStatus
from notifications.providers import LogProvider
from notifications.templates import sms_segments
from offers import grants, notify, service
from offers.models import OfferGrant
from offers.service import display_code
from tests.accounts.factories import ACTOR
from tests.offers.helpers import incident_with, issue, make_program

UNTIL = datetime(2099, 12, 31, 18, 0, tzinfo=timezone.utc)  # far ahead: the texts below do not age


def speaks(number: str, language: str) -> None:
    db.session.execute(sa.update(Account).where(Account.account_number == number).values(language=language))
    db.session.commit()


def grant_of(number: str) -> OfferGrant:
    return db.session.scalar(sa.select(OfferGrant).join(Account, Account.id == OfferGrant.account_id)
                             .where(Account.account_number == number))


def send_all() -> None:
    db.session.commit()
    worker.run_once(db.session, providers={"sms": LogProvider(), "email": LogProvider()})


def sent(template: str, number: str, channel: str) -> Notification:
    """The one message of `template` on `channel` that went to account `number` (checks it was sent)."""
    (n,) = db.session.scalars(sa.select(Notification).join(Account, Account.id == Notification.account_id)
                              .where(Notification.template == template, Account.account_number == number,
                                     Notification.channel == channel)).all()
    assert n.status == NotificationStatus.SENT and n.provider == "log"
    return n


def offered(program_states=None, **program):
    incident = incident_with(program_states or {"A1": {"photos": "lost"}, "A2": {"photos": "lost"}})
    speaks("A2", "es-MX")
    p = make_program(incident.id, valid_until=program.pop("valid_until", UNTIL), **program)
    issue(p.id)
    return p



def test_the_offer_reaches_each_subscriber_in_english_with_code_expiry_and_how_to_accept(app):
    p = offered(description="We are sorry for the lost photos.")
    assert notify.announce(db.session, actor=ACTOR, program_id=p.id) == 4  # 2 accounts x (SMS + email)
    send_all()
    code = display_code(grant_of("A1").code)
    sms = sent("offer", "A1", "sms")
    assert sms.data["grant"] == grant_of("A1").id and "offer_code" not in sms.data
    assert sms.body.startswith("Lifeboat: we are offering you a $100.00 gift card. Reply ACCEPT " + code
                               + " by 31 Dec 2099 or answer at http://status.example.com/m/")
    assert sms_segments(sms.body) == (1, "GSM-7") and sms.segments == 1  # 148 characters with this link
    email = sent("offer", "A1", "email")
    assert email.subject == "Your offer: Gift card"
    assert "Hello Name A1," in email.body and "We are sorry for the lost photos." in email.body
    assert f"Your code: {code}" in email.body and "Answer by: 31 Dec 2099, 10:00 PST" in email.body
    assert f"reply ACCEPT {code}" in email.body and "http://status.example.com/m/" in email.body
    assert f"<strong>{code}</strong>" in email.html_body and "<strong>a $100.00 gift card</strong>" in email.html_body
    assert '<a href="http://status.example.com/m/' in email.html_body
    progress = db.session.scalar(sa.select(Broadcast).where(Broadcast.cause == f"offer:{p.id}"))
    assert progress.kind == "offer" and progress.recipients == 4


def test_a_spanish_speaking_account_gets_the_offer_in_spanish(app):
    p = offered(description="Lamentamos la pérdida de sus fotos.")
    notify.announce(db.session, actor=ACTOR, program_id=p.id)
    send_all()
    code = display_code(grant_of("A2").code)
    sms = sent("offer", "A2", "sms")
    assert sms.body.startswith("Lifeboat: le ofrecemos una tarjeta regalo de 100,00 US$. Responda ACEPTO "
                               + code + " antes del 31 dic 2099 o conteste en http://status.example.com/m/")
    # no á í ó ú: stays in GSM-7 (the parts were counted on the text sent; the stored one masks its link)
    assert sms.segments == 2 and sms_segments(sms.body)[1] == "GSM-7"
    email = sent("offer", "A2", "email")
    assert email.subject == "Su oferta: Gift card"
    assert "Hola, Name A2:" in email.body and "Le ofrecemos una tarjeta regalo de 100,00 US$." in email.body
    assert f"Su código: {code}" in email.body and "Responda antes del: 31 dic 2099, 10:00 PST" in email.body
    assert f"responda <strong>ACEPTO {code}</strong>" in email.html_body and "su página personal" in email.html_body
    assert "Lamentamos la pérdida de sus fotos." in email.html_body


def test_free_months_and_credit_are_worded_per_language_and_html_is_escaped(app):
    p = offered(name="Sorry <b>& thanks</b>", kind="free_months", months=3, value="30", currency="EUR")
    notify.announce(db.session, actor=ACTOR, program_id=p.id)
    send_all()
    assert "we are offering you 3 free months of service." in sent("offer", "A1", "sms").body
    assert "le ofrecemos 3 meses de servicio gratis." in sent("offer", "A2", "sms").body
    email = sent("offer", "A1", "email")
    assert email.subject == "Your offer: Sorry <b>& thanks</b>"
    assert "<h2>Sorry &lt;b&gt;&amp; thanks&lt;/b&gt;</h2>" in email.html_body and "<b>" not in email.html_body


def test_opt_outs_are_skipped_and_announcing_again_does_not_send_twice(app):
    p = offered({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}, "A3": {"photos": "recovered"}})
    optouts.opt_out(db.session, Channel.EMAIL, "a2@example.com", "test")
    optouts.opt_out(db.session, Channel.SMS, "+12065550000", "sms:STOP")
    assert notify.announce(db.session, actor=ACTOR, program_id=p.id) == 2  # A1 email, A2 SMS; A3 not eligible
    send_all()
    assert notify.announce(db.session, actor=ACTOR, program_id=p.id) == 0
    send_all()
    rows = db.session.scalars(sa.select(Notification).where(Notification.template == "offer")).all()
    assert sorted((n.recipient, n.status.value) for n in rows) == [("+12065550001", "sent"),
                                                                   ("a1@example.com", "sent")]


def test_a_reminder_goes_once_only_to_unanswered_offers_in_their_language(app):
    p = offered({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}, "A3": {"photos": "lost"}})
    assert notify.remind(db.session, actor=ACTOR, program_id=p.id) == 0  # never announced: nothing to remind
    assert notify.announce(db.session, actor=ACTOR, program_id=p.id) == 6
    send_all()
    grants.accept(db.session, grant_of("A1"), via="web")
    assert notify.remind(db.session, actor=ACTOR, program_id=p.id) == 4  # A2 and A3, SMS + email
    assert notify.remind(db.session, actor=ACTOR, program_id=p.id) == 0
    send_all()
    assert not db.session.scalars(sa.select(Notification).join(Account, Account.id == Notification.account_id)
                                  .where(Account.account_number == "A1",
                                         Notification.template == "offer_reminder")).all()
    en, es = sent("offer_reminder", "A3", "sms"), sent("offer_reminder", "A2", "sms")
    assert en.body.startswith("Lifeboat reminder: your offer of a $100.00 gift card ends on 31 Dec 2099. "
                              f"Reply ACCEPT {display_code(grant_of('A3').code)} or answer at http://")
    assert es.body.startswith("Lifeboat, recordatorio: su oferta de una tarjeta regalo de 100,00 US$ vence el "
                              f"31 dic 2099. Responda ACEPTO {display_code(grant_of('A2').code)} o conteste en")
    assert sms_segments(en.body)[0] <= 2 and sms_segments(es.body) == (2, "GSM-7")
    assert sent("offer_reminder", "A3", "email").subject == "Reminder: your offer ends on 31 Dec 2099"
    email = sent("offer_reminder", "A2", "email")
    assert email.subject == "Recordatorio: su oferta vence el 31 dic 2099"
    assert "todavía no ha respondido" in email.body and display_code(grant_of("A2").code) in email.html_body


def test_a_revoked_offer_tells_the_subscriber_with_the_reason_in_their_language(app):
    offered()
    for number, reason in (("A1", "Account closed before the incident"), ("A2", "Cuenta duplicada")):
        grants.revoke(db.session, actor=ACTOR, grant_id=grant_of(number).id, reason=reason)
    send_all()
    en, es = sent("offer_revoked", "A1", "sms"), sent("offer_revoked", "A2", "sms")
    assert en.body == (f"Lifeboat: your offer {display_code(grant_of('A1').code)} (a $100.00 gift card) has been "
                       "withdrawn. Reason: Account closed before the incident")
    assert es.body == (f"Lifeboat: hemos retirado su oferta {display_code(grant_of('A2').code)} (una tarjeta "
                       "regalo de 100,00 US$). Motivo: Cuenta duplicada")
    email = sent("offer_revoked", "A2", "email")
    assert email.subject == "Hemos retirado su oferta: Gift card" and "Motivo: Cuenta duplicada" in email.body
    assert sent("offer_revoked", "A1", "email").subject == "Your offer has been withdrawn: Gift card"


def test_ending_open_offers_when_closing_tells_each_subscriber_with_the_reason_in_their_language(app):
    p = offered({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}, "A3": {"photos": "lost"}})
    grants.accept(db.session, grant_of("A3"), via="web")
    service.close_program(db.session, actor=ACTOR, program_id=p.id, reason="Programa sustituido", expire_open=True)
    send_all()
    en, es = sent("offer_revoked", "A1", "sms"), sent("offer_revoked", "A2", "sms")
    assert en.body.endswith("has been withdrawn. Reason: Programa sustituido")
    assert es.body.endswith("Motivo: Programa sustituido")
    assert sent("offer_revoked", "A1", "email").subject
    # The accepted offer stays accepted, and its subscriber is not told anything.
    assert not db.session.scalars(sa.select(Notification).join(Account, Account.id == Notification.account_id)
                                  .where(Account.account_number == "A3",
                                         Notification.template == "offer_revoked")).all()
    # Closing again changes nothing and tells nobody twice.
    before = db.session.scalar(sa.select(sa.func.count()).select_from(Notification))
    service.close_program(db.session, actor=ACTOR, program_id=p.id, reason="x", expire_open=True)
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == before
