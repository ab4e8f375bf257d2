"""The operator console for offers: preview, create, issue, download, fulfil by upload, revoke, edit, close."""
import io
from datetime import timedelta

import sqlalchemy as sa

from core.db import db, utcnow
from offers import grants
from offers.models import GrantState, OfferGrant, OfferProgram, ProgramStatus
from offers.service import as_input, display_code
from ops.models import AuditEntry
from tests.conftest import csrf_from, make_operator, post_form, sign_in
from tests.offers.helpers import incident_with, issue, make_program


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
    confirm = client.post(f"{program_url}/issue", data={"csrf_token": token})
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "<strong>2</strong> new offers with a code each" in html
    assert "200.00 USD" in html and db.session.scalar(sa.select(sa.func.count()).select_from(OfferGrant)) == 0
    done = client.post(f"{program_url}/issue", data={"csrf_token": token, "confirmed": "1"}, follow_redirects=True)
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


# ---- edit and close ---------------------------------------------------------------------------------

def program_for(incident, **data):
    return make_program(incident.id, **data)


def test_the_create_form_sets_the_reminder_and_keeps_a_bad_one_as_typed(signed_in):
    client, _operator = signed_in
    incident = incident_with({"A1": {"photos": "lost"}})
    url = f"/ops/incidents/{incident.id}/offers"
    page = client.get(url).get_data(as_text=True)
    assert 'name="remind_days_before"' in page and 'value="3"' in page
    bad = post_form(client, url, form(action="create", remind_days_before="soonish", valid_until="next week"))
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and 'id="remind_days_before-error"' in html
    assert 'value="soonish"' in html and 'value="next week"' in html  # nothing typed is lost
    assert post_form(client, url, form(action="create", remind_days_before="")).status_code == 303
    assert post_form(client, url, form(action="create", remind_days_before="10")).status_code == 303
    assert [p.remind_days_before for p in db.session.scalars(sa.select(OfferProgram).order_by(OfferProgram.id))] \
        == [None, 10]


def test_an_operator_edits_a_program_and_mistakes_come_back_beside_the_fields(signed_in):
    client, _operator = signed_in
    incident = incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}})
    program = program_for(incident, description="Sorry.")
    url = f"/ops/offers/{program.id}/edit"
    page = client.get(url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and csrf_from(html) and 'name="terms" value="1"' in html
    assert 'value="Gift card"' in html and 'name="kind" disabled' not in html
    saved = post_form(client, url, edit_form(program, name="Photos lost: gift card", value="25",
                                             remind_days_before="5"))
    assert saved.status_code == 303 and saved.headers["Location"].endswith(f"/ops/offers/{program.id}")
    db.session.refresh(program)
    assert (program.name, program.value_minor, program.remind_days_before) == ("Photos lost: gift card", 2500, 5)
    issue(program.id)
    html = client.get(url).get_data(as_text=True)
    assert 'name="terms"' not in html and "2 grants already carry them" in html
    assert 'id="kind" name="kind" disabled' in html and "Can be extended, not shortened" in html
    shorter = (program.valid_until - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    refused = post_form(client, url, {"name": "Typed name", "description": "Typed text", "valid_until": shorter,
                                      "budget_cap": "10", "remind_days_before": "999"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    for field in ("valid_until", "budget_cap", "remind_days_before"):
        assert f'id="{field}-error"' in html, field
    assert "subscribers were told" in html and "50.00 USD already granted" in html
    assert 'value="Typed name"' in html and ">Typed text</textarea>" in html and f'value="{shorter}"' in html
    assert 'value="10"' in html and 'value="999"' in html
    db.session.refresh(program)
    assert program.name == "Photos lost: gift card" and program.budget_cap_minor is None
    # The unchanged date (shown to the minute) is not taken for a shortening.
    same = post_form(client, url, {"name": "Final", "description": "", "remind_days_before": "",
                                   "valid_until": program.valid_until.strftime("%Y-%m-%dT%H:%M")})
    assert same.status_code == 303
    db.session.refresh(program)
    assert program.name == "Final" and program.remind_days_before is None
    # A crafted post of the terms after grants exist is refused, saying why.
    crafted = post_form(client, url, edit_form(program, value="1"))
    assert crafted.status_code == 422 and "already carry these terms" in crafted.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action == "offer.program.update")) == 2


def edit_form(program, **extra):
    """The edit form as a browser sends it with the terms editable, nothing changed but `extra`."""
    data = {k: v for k, v in as_input(program).items() if v is not None}
    return {**data, "terms": "1", "valid_until": program.valid_until.strftime("%Y-%m-%dT%H:%M"), **extra}


def test_an_operator_closes_a_program_after_confirming_with_a_reason(signed_in):
    client, _operator = signed_in
    incident = incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}})
    program = program_for(incident)
    issue(program.id)
    first = db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.id)).first()
    grants.accept(db.session, first, via="web")
    db.session.commit()
    html = client.get(f"/ops/offers/{program.id}").get_data(as_text=True)
    assert f"/ops/offers/{program.id}/close" in html and f"/ops/offers/{program.id}/edit" in html
    url = f"/ops/offers/{program.id}/close"
    page = client.get(url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and csrf_from(html) and "data-confirm=" in html
    assert "1 open offer stays valid until" in html and "1 accepted grant stays accepted" in html
    assert client.post(url, data={"reason": "No token"}).status_code == 400  # CSRF checked
    missing = post_form(client, url, {"reason": " ", "expire_open": "y"})
    html = missing.get_data(as_text=True)
    assert missing.status_code == 422 and 'id="reason-error"' in html and 'value="y" checked' in html
    db.session.refresh(program)
    assert program.status == ProgramStatus.ACTIVE
    done = post_form(client, url, {"reason": "Replaced", "expire_open": "y"}, follow_redirects=True)
    html = done.get_data(as_text=True)
    assert "closed: it issues and sends nothing more. 1 open offer ended now." in html
    assert "Replaced" in html and "Issue to newly eligible accounts" not in html
    assert f"/ops/offers/{program.id}/edit" not in html
    db.session.refresh(program)
    assert program.status == ProgramStatus.CLOSED and grants.dashboard(db.session, program.id)["counts"][
        "expired"] == 1
    token = csrf_from(html)
    refused = client.post(f"/ops/offers/{program.id}/announce", data={"csrf_token": token}, follow_redirects=True)
    assert "no more announcements or reminders" in refused.get_data(as_text=True)
    again = client.post(url, data={"csrf_token": token, "reason": "Twice"}, follow_redirects=True)
    assert again.status_code == 200 and "already closed" in again.get_data(as_text=True)
    assert "already closed" in client.get(url, follow_redirects=True).get_data(as_text=True)
    assert "can no longer be edited" in client.get(f"/ops/offers/{program.id}/edit",
                                                   follow_redirects=True).get_data(as_text=True)
    csv = client.get(f"/ops/offers/{program.id}/accepted.csv")
    assert display_code(first.code) in csv.get_data(as_text=True)


def test_viewers_cannot_edit_or_close(client, app):
    incident = incident_with({"A1": {"photos": "lost"}})
    program = program_for(incident)
    sign_in(client, make_operator("viewer"))
    html = client.get(f"/ops/offers/{program.id}").get_data(as_text=True)
    assert f"/ops/offers/{program.id}/edit" not in html and "Issue to newly" not in html
    assert client.get(f"/ops/offers/{program.id}/edit").status_code == 403
    assert client.get(f"/ops/offers/{program.id}/close").status_code == 403
    token = csrf_from(html)
    assert client.post(f"/ops/offers/{program.id}/close", data={"csrf_token": token, "reason": "x"}) \
        .status_code == 403
    assert client.post(f"/ops/offers/{program.id}/edit", data={"csrf_token": token, "name": "x"}).status_code == 403
    db.session.refresh(program)
    assert program.status == ProgramStatus.ACTIVE and program.name == "Gift card"
    assert client.get("/ops/offers/999/edit").status_code in (403, 404)


def test_signed_out_visitors_are_sent_to_sign_in(client, app):
    incident = incident_with({"A1": {"photos": "lost"}})
    program = program_for(incident)
    for path in (f"/ops/offers/{program.id}/edit", f"/ops/offers/{program.id}/close"):
        assert client.get(path).status_code == 302


def test_the_incident_offers_page_shows_counts_and_liability_per_program(signed_in):
    client, _operator = signed_in
    incident = incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}})
    program = program_for(incident, value="1250")
    issue(program.id)
    html = client.get(f"/ops/incidents/{incident.id}/offers").get_data(as_text=True)
    assert "<dt>Offered</dt><dd>2</dd>" in html and "2,500.00" in html
    page = client.get(f"/ops/offers/{program.id}").get_data(as_text=True)
    assert '<svg class="offer-bar"' in page and 'class="grant-offered"' in page and "style=" not in page


def test_telling_subscribers_shows_what_it_will_send_and_acts_only_on_confirmation(signed_in, app):
    import re

    from notifications.models import Notification

    client, _operator = signed_in
    app.config["SMS_RATE_PER_SECOND"] = 1
    incident = incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}, "A3": {"photos": "lost"}})
    program = make_program(incident.id)
    issue(program.id)
    page = client.get(f"/ops/offers/{program.id}").get_data(as_text=True)
    url = f"/ops/offers/{program.id}/announce"
    confirm = client.post(url, data={"csrf_token": csrf_from(page)})
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "<strong>6</strong>:\n    3 SMS, 3 email" in html
    segments = int(re.search(r"(\d+) parts? each, GSM-7", html).group(1))
    assert f"<strong>{3 * segments}</strong> parts billed" in html
    assert f"about <strong>{3 * segments} s</strong> at 1.0 SMS parts per second" in html
    assert "Reply ACCEPT" in html  # the SMS itself, as a subscriber gets it
    offers_queued = sa.select(sa.func.count()).select_from(Notification).where(Notification.template == "offer")
    assert db.session.scalar(offers_queued) == 0  # nothing yet
    done = client.post(url, data={"csrf_token": csrf_from(html), "confirmed": "1"}, follow_redirects=True)
    assert "Queued 6 messages." in done.get_data(as_text=True)
    again = client.post(url, data={"csrf_token": csrf_from(html)}).get_data(as_text=True)
    assert "Nobody to tell" in again and re.search(r'<button type="submit" class="primary" disabled>', again)
    assert client.post(url, data={"csrf_token": csrf_from(html)}).status_code == 200
    assert db.session.scalar(offers_queued) == 6
