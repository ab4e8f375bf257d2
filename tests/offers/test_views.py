"""Offers on the subscriber's personal page: shown with their code, accepted or declined with CSRF."""
from datetime import timedelta

import sqlalchemy as sa

from accounts import links
from core.db import db, utcnow
from offers.models import GrantState, OfferGrant
from offers.service import display_code
from tests.conftest import csrf_from
from tests.offers.helpers import incident_with, issue, make_program


def open_page(client, grant: OfferGrant) -> str:
    token = links.issue_link(db.session, grant.affected_account_id)
    db.session.commit()
    assert client.get(f"/m/{token}").status_code == 303
    page = client.get("/my/account")
    assert page.status_code == 200
    return page.get_data(as_text=True)


def setup():
    incident = incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}})
    program = make_program(incident.id, description="We are sorry for the lost photos.")
    issue(program.id)
    return program, db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.account_id)).all()


def test_the_subscriber_sees_the_offer_and_accepts_it_once(client, app):
    program, (mine, _other) = setup()
    html = open_page(client, mine)
    assert "Your offers" in html and display_code(mine.code) in html and "100.00 USD" in html
    url = f"/my/offers/{mine.id}/accept"
    token = csrf_from(html)
    response = client.post(url, data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith("/my/account#offers")
    assert "You accepted Gift card" in client.get("/my/account").get_data(as_text=True)
    again = client.post(url, data={"csrf_token": token}, follow_redirects=True)
    assert "already accepted" in again.get_data(as_text=True)
    db.session.refresh(mine)
    assert mine.state == GrantState.ACCEPTED and mine.accepted_via == "web"


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
