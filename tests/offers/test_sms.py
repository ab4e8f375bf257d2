"""Accepting an offer by SMS reply: ACCEPT <code>, a bare ACCEPT with one open offer, and the refusals, each
answered in the account's language (through the signed inbound webhook)."""
from datetime import timedelta

import sqlalchemy as sa

from accounts.models import Account
from core.db import db, utcnow
from notifications.templates import sms_segments
from offers.models import GrantState, OfferGrant
from offers.service import display_code
from ops.models import AuditEntry
from tests.notifications.twilio_helpers import inbound, reply_of
from tests.offers.helpers import incident_with, issue, make_program

FIRST, SECOND = "+12065550000", "+12065550001"  # phones tests.accounts.factories.attach gives A1, A2


def setup_offers(count: int = 1):
    incident = incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}})
    programs = [make_program(incident.id, name=f"Gift card {i + 1}") for i in range(count)]
    for p in programs:
        issue(p.id)
    return programs


def grant_of(phone_index: int, program_id: int) -> OfferGrant:
    return db.session.scalars(sa.select(OfferGrant).where(OfferGrant.program_id == program_id)
                              .order_by(OfferGrant.account_id)).all()[phone_index]


def test_accept_with_the_code_accepts_that_offer_once(twilio_app, client):  # noqa: F811
    (program,) = setup_offers()
    grant = grant_of(0, program.id)
    text = reply_of(inbound(client, f"accept {display_code(grant.code).lower()}", sender=FIRST))
    assert "you accepted Gift card 1" in text
    db.session.refresh(grant)
    assert grant.state == GrantState.ACCEPTED and grant.accepted_via == "sms"
    again = reply_of(inbound(client, f"ACCEPT {grant.code}", sender=FIRST, sid="SM" + "2" * 32))
    assert "already accepted" in again
    # The subscriber's answer is in the audit log, once, as theirs.
    [entry] = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "offer.grant.accept")).all()
    number = db.session.scalar(sa.select(Account.account_number).where(Account.id == grant.account_id))
    assert (entry.actor, entry.entity_id, entry.entity_label) == (f"subscriber {number}", str(grant.id),
                                                                  display_code(grant.code))
    assert entry.before == {"state": "offered"} and entry.after == {"state": "accepted", "via": "sms"}


def test_a_bare_accept_works_only_when_exactly_one_offer_is_open(twilio_app, client):  # noqa: F811
    first, second = setup_offers(2)
    text = reply_of(inbound(client, "ACCEPT", sender=FIRST))
    assert "several open offers" in text and display_code(grant_of(0, first.id).code) in text
    reply_of(inbound(client, f"ACCEPT {grant_of(0, first.id).code}", sender=FIRST, sid="SM" + "2" * 32))
    text = reply_of(inbound(client, "Accept", sender=FIRST, sid="SM" + "3" * 32))
    assert "Gift card 2" in text
    assert reply_of(inbound(client, "ACCEPT", sender=FIRST, sid="SM" + "4" * 32)) == \
        "You have no open offers to accept."


def test_someone_elses_code_an_unknown_number_and_an_expired_offer_are_refused(twilio_app, client):  # noqa: F811
    (program,) = setup_offers()
    other = grant_of(1, program.id)
    assert "could not find offer" in reply_of(inbound(client, f"ACCEPT {other.code}", sender=FIRST))
    assert "could not find an account" in reply_of(inbound(client, "ACCEPT", sender="+12065559999",
                                                           sid="SM" + "2" * 32))
    program.valid_until = utcnow() - timedelta(hours=1)
    db.session.commit()
    text = reply_of(inbound(client, "ACCEPT", sender=SECOND, sid="SM" + "3" * 32))
    assert "no open offers" in text or "expired" in text
    text = reply_of(inbound(client, f"ACCEPT {other.code}", sender=SECOND, sid="SM" + "4" * 32))
    assert "expired on" in text
    db.session.refresh(other)
    assert other.state == GrantState.EXPIRED


def test_yes_is_still_an_opt_in_and_accepts_nothing(twilio_app, client):  # noqa: F811
    (program,) = setup_offers()
    reply_of(inbound(client, "YES", sender=FIRST))
    assert grant_of(0, program.id).state == GrantState.OFFERED


def speaks_spanish(phone: str) -> None:
    db.session.execute(sa.update(Account).where(Account.phone == phone).values(language="es-MX"))
    db.session.commit()


def test_a_spanish_speaking_subscriber_accepts_with_acepto_or_accept_and_is_answered_in_spanish(
        twilio_app, client):  # noqa: F811
    first, second = setup_offers(2)
    speaks_spanish(FIRST)
    text = reply_of(inbound(client, "ACEPTO", sender=FIRST))
    assert text.startswith("Tiene varias ofertas pendientes (") and "Responda ACEPTO seguido del" in text
    code = display_code(grant_of(0, first.id).code)
    text = reply_of(inbound(client, f"Acepto {code.lower()}", sender=FIRST, sid="SM" + "2" * 32))
    assert text == f"Gracias: ha aceptado Gift card 1 (código {code}). Le avisaremos cuando se aplique."
    assert sms_segments(text) == (2, "UCS-2")
    assert grant_of(0, first.id).state == GrantState.ACCEPTED
    assert reply_of(inbound(client, f"ACCEPT {code}", sender=FIRST, sid="SM" + "3" * 32)) == \
        f"Ya había aceptado Gift card 1 (código {code})."
    text = reply_of(inbound(client, "accept", sender=FIRST, sid="SM" + "4" * 32))  # English keyword, Spanish reply
    assert text.startswith("Gracias: ha aceptado Gift card 2")
    assert reply_of(inbound(client, "Aceptar", sender=FIRST, sid="SM" + "5" * 32)) == \
        "No tiene ofertas pendientes de aceptar."
    assert sms_segments("No tiene ofertas pendientes de aceptar.") == (1, "GSM-7")


def test_spanish_refusals_say_why_in_spanish(twilio_app, client):  # noqa: F811
    (program,) = setup_offers()
    speaks_spanish(SECOND)
    mine = grant_of(1, program.id)
    assert reply_of(inbound(client, "ACEPTO AAAAA-BBBBB", sender=SECOND)) == (
        "No encontramos la oferta AAAAA-BBBBB para este teléfono. Revise el código y responda ACEPTO seguido "
        "del código.")
    program.valid_until = utcnow() - timedelta(hours=1)
    db.session.commit()
    text = reply_of(inbound(client, f"ACEPTO {mine.code}", sender=SECOND, sid="SM" + "2" * 32))
    assert text.startswith("Esta oferta caducó el ") and text.endswith(" y ya no se puede aceptar.")
    db.session.refresh(mine)
    assert mine.state == GrantState.EXPIRED
    # A number we do not know is answered in the language of the keyword it used.
    assert reply_of(inbound(client, "ACEPTO", sender="+12065559999", sid="SM" + "3" * 32)) == \
        "No encontramos ninguna cuenta con este teléfono, por eso no hay oferta que aceptar."
