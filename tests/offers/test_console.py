"""The operator console for offers: preview, create, issue, download, fulfil by upload, revoke."""
import io
from datetime import timedelta

import sqlalchemy as sa

from core.db import db, utcnow
from offers.models import GrantState, OfferGrant, OfferProgram
from offers import grants
from offers.service import display_code
from tests.conftest import csrf_from, make_operator, post_form, sign_in
from tests.offers.helpers import incident_with


def form(**extra):
    until = (utcnow() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    return {"name": "Lost data: gift card", "description": "Sorry.", "kind": "gift_card", "value": "100.00",
            "currency": "usd", "eligible_states": ["lost"], "valid_until": until, "action": "preview", **extra}


def test_an_operator_previews_creates_and_issues_an_offer(signed_in):
    client, _operator = signed_in
    incident = incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "recovered"}, "A3": {"photos": "lost"}})
    url = f"/ops/incidents/{incident.id}/offers"
    page = post_form(client, url, form())
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<strong>2</strong> accounts are eligible" in html and "200.00 USD" in html
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OfferProgram)) == 0
    created = post_form(client, url, form(action="create"))
    assert created.status_code == 303
    program_url = created.headers["Location"]
    page = client.get(program_url)
    token = csrf_from(page.get_data(as_text=True))
    done = client.post(f"{program_url}/issue", data={"csrf_token": token}, follow_redirects=True)
    assert "Issued 2 grants." in done.get_data(as_text=True)
    first = db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.id)).first()
    grants.accept(db.session, first, via="web")
    db.session.commit()
    csv = client.get(f"{program_url}/accepted.csv")
    assert csv.mimetype == "text/csv" and display_code(first.code) in csv.get_data(as_text=True)
    upload = client.post(f"{program_url}/fulfil", data={
        "csrf_token": token, "file": (io.BytesIO(f"code\n{display_code(first.code)}\n".encode()), "done.csv")},
        content_type="multipart/form-data", follow_redirects=True)
    assert "Marked 1 grants fulfilled." in upload.get_data(as_text=True)
    second = db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.id)).all()[1]
    revoked = client.post(f"{program_url}/revoke", data={"csrf_token": token, "code": second.code,
                                                         "reason": "Duplicate"}, follow_redirects=True)
    assert "revoked; the subscriber is told why" in revoked.get_data(as_text=True)
    db.session.refresh(second)
    assert second.state == GrantState.REVOKED


def test_form_errors_are_shown_beside_the_fields(signed_in):
    client, _operator = signed_in
    incident = incident_with({"A1": {"photos": "lost"}})
    page = post_form(client, f"/ops/incidents/{incident.id}/offers",
                     form(value="", eligible_states=[], valid_until="soon", action="create"))
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert 'id="value-error"' in html and "Use a date and time (UTC)." in html and "Choose one or more" in html


def test_viewers_can_look_but_not_create_or_issue(client, app):
    incident = incident_with({"A1": {"photos": "lost"}})
    viewer = make_operator("viewer")
    sign_in(client, viewer)
    url = f"/ops/incidents/{incident.id}/offers"
    assert client.get(url).status_code == 200
    assert post_form(client, url, form(action="create")).status_code == 403
