"""Offers on the subscriber's personal page: shown with their code, accepted or declined with CSRF."""
from datetime import timedelta

import sqlalchemy as sa

from accounts.models import Account
from core.db import db, utcnow
from offers.models import GrantState, OfferGrant
from offers.service import display_code
from ops.models import AuditEntry
from tests.conftest import csrf_from
from tests.accounts.factories import open_personal_page
from tests.offers.helpers import incident_with, issue, make_program


def open_page(client, grant: OfferGrant) -> str:
    return open_personal_page(client, grant.affected_account_id)


def setup():
    incident = incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}})
    program = make_program(incident.id, description="We are sorry for the lost photos.")
    issue(program.id)
    return program, db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.account_id)).all()


def test_the_subscriber_sees_the_offer_and_accepts_it_once(client, app):
    program, (mine, _other) = setup()
    html = open_page(client, mine)
    assert "Your offers" in html and display_code(mine.code) in html and "$100.00 gift card" in html
    assert "Answer by" in html and "Or reply ACCEPT " + display_code(mine.code) in html
    url = f"/my/offers/{mine.id}/accept"
    token = csrf_from(html)
    response = client.post(url, data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith("/my/account#offers")
    page = client.get("/my/account").get_data(as_text=True)
    assert "You accepted Gift card. We will let you know when it is applied." in page and "Accepted" in page
    again = client.post(url, data={"csrf_token": token}, follow_redirects=True)
    assert "already accepted" in again.get_data(as_text=True)
    db.session.refresh(mine)
    assert mine.state == GrantState.ACCEPTED and mine.accepted_via == "web"
    [entry] = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "offer.grant.accept")).all()
    assert entry.actor.startswith("subscriber ") and entry.after == {"state": "accepted", "via": "web"}


def test_without_csrf_or_for_someone_elses_offer_nothing_happens(client, app):
    program, (mine, other) = setup()
    html = open_page(client, mine)
    assert client.post(f"/my/offers/{mine.id}/accept").status_code == 400
    assert client.post(f"/my/offers/{other.id}/accept", data={"csrf_token": csrf_from(html)}).status_code == 404
    db.session.refresh(mine)
    db.session.refresh(other)
    assert mine.state == other.state == GrantState.OFFERED


def test_declining_and_an_expired_offer_say_so(client, app):
    program, (mine, _other) = setup()
    html = open_page(client, mine)
    token = csrf_from(html)
    program.valid_until = utcnow() - timedelta(minutes=1)
    db.session.commit()
    page = client.post(f"/my/offers/{mine.id}/decline", data={"csrf_token": token}, follow_redirects=True)
    assert "expired on" in page.get_data(as_text=True)
    db.session.refresh(mine)
    assert mine.state == GrantState.EXPIRED


def test_a_subscriber_can_decline(client, app):
    program, (mine, _other) = setup()
    html = open_page(client, mine)
    page = client.post(f"/my/offers/{mine.id}/decline", data={"csrf_token": csrf_from(html)},
                       follow_redirects=True)
    assert "You declined" in page.get_data(as_text=True)
    assert client.get("/my/account").get_data(as_text=True).count("Declined") == 1


def test_the_offers_section_and_every_answer_are_in_spanish_for_a_spanish_speaking_account(client, app):
    program, (mine, other) = setup()
    db.session.execute(sa.update(Account).where(Account.id == mine.account_id)
                       .values(language="es-MX", time_zone="America/Mexico_City"))
    db.session.commit()
    html = open_page(client, mine)
    assert "Sus ofertas" in html and "Your offers" not in html and "Tarjeta regalo de 100,00 US$" in html
    assert "We are sorry for the lost photos." in html  # the operator's own description, as written
    assert f"Código <strong class=\"offer-code\">{display_code(mine.code)}</strong>" in html
    assert "Responda antes del <time" in html and " CST</time>" in html and "data-date-only" in html
    assert ">Aceptar</button>" in html and ">No, gracias</button>" in html
    assert f"O responda ACEPTO {display_code(mine.code)} a nuestro mensaje de texto." in html
    token = csrf_from(html)
    page = client.post(f"/my/offers/{mine.id}/accept", data={"csrf_token": token}, follow_redirects=True)
    text = page.get_data(as_text=True)
    assert "Ha aceptado Gift card. Le avisaremos cuando se aplique." in text and "Aceptada" in text
    page = client.post(f"/my/offers/{mine.id}/accept", data={"csrf_token": token}, follow_redirects=True)
    assert "Ya había aceptado esta oferta." in page.get_data(as_text=True)
    page = client.post(f"/my/offers/{mine.id}/decline", data={"csrf_token": token}, follow_redirects=True)
    assert "Esta oferta ya fue aceptada." in page.get_data(as_text=True)
    db.session.refresh(mine)
    assert mine.state == GrantState.ACCEPTED


def test_a_spanish_speaking_subscriber_is_told_in_spanish_that_an_expired_offer_cannot_be_accepted(client, app):
    program, (mine, _other) = setup()
    db.session.execute(sa.update(Account).where(Account.id == mine.account_id).values(language="es"))
    db.session.commit()
    token = csrf_from(open_page(client, mine))
    program.valid_until = utcnow() - timedelta(minutes=1)
    db.session.commit()
    page = client.post(f"/my/offers/{mine.id}/accept", data={"csrf_token": token}, follow_redirects=True)
    text = page.get_data(as_text=True)
    assert "Esta oferta caducó el " in text and "y ya no se puede aceptar." in text
    assert "Caducada" in text and ">Aceptar</button>" not in text
    db.session.refresh(mine)
    assert mine.state == GrantState.EXPIRED


MARKDOWN = "A **$100 gift card** for the photos & contacts you lost.\n\nSee [the terms](https://example.com/terms)."


def test_an_offer_description_is_markdown_rendered_and_sanitised_on_the_page_and_in_the_console(client, app):
    from tests.conftest import make_operator, sign_in

    incident = incident_with({"A1": {"photos": "lost"}})
    program = make_program(incident.id, description=MARKDOWN + "\n\n<script>alert(1)</script>")
    issue(program.id)
    grant = db.session.scalars(sa.select(OfferGrant)).one()
    html = open_page(client, grant)
    assert "<strong>$100 gift card</strong>" in html and "**" not in html
    assert '<a href="https://example.com/terms" rel="nofollow noopener">the terms</a>' in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html  # shown as text, never run
    operator = client.application.test_client()
    sign_in(operator, make_operator("operator"))
    console = operator.get(f"/ops/offers/{program.id}").get_data(as_text=True)
    assert "<strong>$100 gift card</strong>" in console and "**$100" not in console


def test_offer_emails_render_the_markdown_and_their_text_part_reads_as_plain_text(app):
    from notifications.templates import render_parts

    context = {"name": "Ann", "offer_name": "Lost photos", "offer_description": MARKDOWN, "offer_what": "a gift card",
               "offer_code": "ABCDE-FGHJK", "offer_valid_until": "Jan 3", "offer_valid_until_long": "3 January",
               "link": "https://status.example.com/m/x"}
    for lang in ("en", "es"):
        parts = render_parts("offer", lang, context)
        assert "<strong>$100 gift card</strong>" in parts["html"] and "&amp; contacts" in parts["html"]
        assert "A $100 gift card for the photos & contacts you lost.\n\nSee the terms (https://example.com/terms)." \
            in parts["txt"]
        assert "**" not in parts["txt"] + parts["sms"] and "&amp;" not in parts["txt"]


def test_the_personal_page_puts_the_offer_first_then_the_data_then_the_timeline(client, app):
    program, (mine, _other) = setup()
    html = open_page(client, mine)
    order = [html.index(h) for h in ("Your offers", "Your data", "What is being done", "What happened")]
    assert order == sorted(order), order
