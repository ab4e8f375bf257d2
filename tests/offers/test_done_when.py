"""Issue 5, "done when", walked end to end as its users would: an operator defines "lost data -> $100 gift card,
everyone else -> a free month", issues both to the accounts of an incident, tells subscribers, and hands
finance an exact list of who accepted; subscribers accept from their personal page or by text, or decline.

Every step goes through the real routes (console forms with their CSRF tokens, the ops API with a bearer token,
the subscriber's pages, Twilio's signed inbound webhook), the real notifier worker, the Twilio stand-in and a
real SMTP server. Only the passing of time (an offer running out) is written to the database directly."""
import csv
import io
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from core.db import db, utcnow
from offers.models import OfferProgram
from tests.acceptance_helpers import (PUBLIC, connect_peers, deliver, email_text, emails_to, file_incident,
                                      import_csv, open_link, sms_bodies, text_us)
from tests.conftest import csrf_from, post_form
from tests.ops.api_client import CsvAwareClient

ACCOUNTS = """account_number,name,phone,email,locale
A1,Ann Lee,+12065550101,ann@example.com,en
A2,Bruno Díaz,+12065550102,bruno@example.com,es-MX
A3,Cleo Park,+12065550103,cleo@example.com,en
A4,Dev Shah,,dev@example.com,en
A5,Eve Moss,+12065550105,eve@example.com,en
A6,Finn Cole,+12065550106,,en
"""
RECOVERY = """account_number,category,state,items_total,items_recovered,note
A1,photos,lost,1200,0,The backup of these photos was destroyed
A1,contacts,recovered,300,300,
A2,contacts,lost,80,0,
A3,photos,partially_recovered,500,420,Some photos were damaged
A3,contacts,recovered,120,120,
A4,contacts,recovered,95,95,
A5,photos,at_risk,,,
A6,calendar,lost,40,0,
A6,photos,recovered,10,10,
"""
PHONE = {n: f"+120655501{n[1:].zfill(2)}" for n in ("A1", "A2", "A3", "A5", "A6")}
EXPORT_HEADER = ["code", "account_number", "name", "email", "phone", "kind", "months", "value", "currency",
                 "accepted_at", "accepted_via"]
EN_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
ES_MONTHS = "ene feb mar abr may jun jul ago sept oct nov dic".split()
CODE = re.compile(r"\b([2-9A-HJ-NP-Z]{5}-[2-9A-HJ-NP-Z]{5})\b")
EVERY_OTHER_STATE = ["unknown", "at_risk", "recovering", "recovered", "partially_recovered"]


def flash_of(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def press(client, program_id: int, action: str) -> str:
    """Press a button on the program's console page (its form carries the page's CSRF token)."""
    page = client.get(f"/ops/offers/{program_id}")
    assert page.status_code == 200 and f"/ops/offers/{program_id}/{action}" in page.get_data(as_text=True)
    url = f"/ops/offers/{program_id}/{action}"
    confirm = client.post(url, data={"csrf_token": csrf_from(page.get_data(as_text=True))})  # what it would do
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and 'name="confirmed" value="1"' in html, html[:500]
    return flash_of(client.post(url, data={"csrf_token": csrf_from(html), "confirmed": "1"}, follow_redirects=True))


def offer_items(html: str) -> list[str]:
    """The offers listed on the personal page, one HTML fragment each."""
    return re.findall(r'<li class="my-offer .*?</li>', html, re.S)


def offer_form(code: str, html: str, action: str) -> str:
    """The accept/decline form action of the offer with `code` on the personal page."""
    for item in offer_items(html):
        if code in item:
            match = re.search(rf'action="(/my/offers/\d+/{action})"', item)
            assert match, f"offer {code} cannot be answered ({action}) on the page"
            return match.group(1)
    raise AssertionError(f"offer {code} is not on the personal page")


def answer_on_page(subscriber, html: str, code: str, action: str) -> str:
    url = offer_form(code, html, action)
    response = subscriber.post(url, data={"csrf_token": csrf_from(html)})
    assert response.status_code == 303 and response.headers["Location"].endswith("/my/account#offers")
    return subscriber.get("/my/account").get_data(as_text=True)


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def day(when, months) -> str:
    return f"{when.day} {months[when.month - 1]} {when.year}"


def program_form(**extra) -> dict:
    return {"description": "We are sorry.", "currency": "usd", "remind_days_before": "", "action": "preview",
            **extra}


def test_lost_data_gets_a_gift_card_everyone_else_a_free_month_and_finance_gets_who_accepted(
        app, signed_in, api_token, twilio_standin, smtp_server):
    connect_peers(app, twilio_standin, smtp_server)
    operator, _ = signed_in
    api = CsvAwareClient(app.test_client(), api_token[1])  # checks answers against the OpenAPI document

    # -- The incident and its six affected accounts, imported in the console.
    incident_id = file_incident(operator, name="Sidekick data loss", categories="contacts calendar photos")
    import_csv(operator, incident_id, ACCOUNTS, "accounts")
    import_csv(operator, incident_id, RECOVERY, "recovery")
    listed = operator.get(f"/ops/incidents/{incident_id}/accounts").get_data(as_text=True)
    assert all(f"A{i}" in listed for i in range(1, 7))

    valid_until = (utcnow() + timedelta(days=30)).replace(hour=12, minute=0, second=0, microsecond=0)
    offers_url = f"/ops/incidents/{incident_id}/offers"

    # -- "Lost data -> $100 gift card", previewed then created in the console.
    gift_fields = program_form(name="Lost data: $100 gift card", kind="gift_card", value="100.00",
                               eligible_states=["lost"], valid_until=f"{valid_until:%Y-%m-%dT%H:%M}")
    preview = post_form(operator, offers_url, gift_fields)
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200, html[:3000]
    assert "<strong>3</strong> accounts are eligible now; issuing would grant <strong>3</strong>" in html
    assert "Total liability if every eligible account accepts: <strong>300.00 USD</strong>" in html
    created = post_form(operator, offers_url, {**gift_fields, "action": "create"})
    assert created.status_code == 303
    gift_id = int(created.headers["Location"].rsplit("/", 1)[1])

    # -- "Everyone else -> a free month": previewed in the console, created through the API.
    month_fields = program_form(name="Everyone else: a free month", kind="free_months", months="1",
                                value="29.99", eligible_states=EVERY_OTHER_STATE, exclude_states=["lost"],
                                valid_until=f"{valid_until:%Y-%m-%dT%H:%M}")
    html = post_form(operator, offers_url, month_fields).get_data(as_text=True)
    assert "<strong>3</strong> accounts are eligible now" in html and "<strong>89.97 USD</strong>" in html
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OfferProgram)) == 1  # a preview creates none
    response = api.post(f"/incidents/{incident_id}/offer-programs", json={
        "name": "Everyone else: a free month", "description": "We are sorry.", "kind": "free_months",
        "months": 1, "value": "29.99", "currency": "USD", "eligible_states": EVERY_OTHER_STATE,
        "exclude_states": ["lost"], "valid_until": valid_until.isoformat().replace("+00:00", "Z")})
    assert response.status_code == 201, response.get_json()
    month = response.get_json()
    month_id = month["id"]
    assert month["preview"] == {"eligible": 3, "new": 3, "would_issue": 3, "over_budget": 0,
                                "liability_minor": 8997}

    # A third, small goodwill credit for the account still at risk: it will run out before it is answered.
    response = api.post(f"/incidents/{incident_id}/offer-programs", json={
        "name": "Goodwill credit", "kind": "account_credit", "value": 5, "currency": "USD",
        "eligible_states": ["at_risk"], "valid_until": valid_until.isoformat().replace("+00:00", "Z")})
    assert response.status_code == 201, response.get_json()
    credit_id = response.get_json()["id"]

    # -- Issue: the gift card with the console button, the others through the API (which returns counts).
    assert "Issued 3 grants." in press(operator, gift_id, "issue")
    issued = api.post(f"/offer-programs/{month_id}/issue")
    assert issued.status_code == 200 and issued.get_json() == {"issued": 3, "not_issued": 0}
    assert api.post(f"/offer-programs/{credit_id}/issue").get_json() == {"issued": 1, "not_issued": 0}
    assert api.post(f"/offer-programs/{month_id}/issue").get_json() == {"issued": 0, "not_issued": 0}

    # -- Announce with the console button: SMS and email to every grant (A4 has no phone, A6 no email).
    assert "Queued 5 messages." in press(operator, gift_id, "announce")
    assert "Queued 5 messages." in press(operator, month_id, "announce")
    assert "Queued 2 messages." in press(operator, credit_id, "announce")
    assert deliver() == 12
    assert len(twilio_standin.messages) == 6 and len(smtp_server.messages) == 6

    # What each subscriber's phone shows: their own code and the end date, in their language.
    codes = {}
    for number in ("A1", "A6"):
        [sms] = sms_bodies(twilio_standin, PHONE[number])
        assert "we are offering you a $100.00 gift card" in sms and f"by {day(valid_until, EN_MONTHS)}" in sms
        codes[number] = CODE.search(sms).group(1)
        assert f"Reply ACCEPT {codes[number]}" in sms and f"{PUBLIC}/m/" in sms
    [bruno_sms] = sms_bodies(twilio_standin, PHONE["A2"])
    assert bruno_sms.startswith("Lifeboat: le ofrecemos una tarjeta regalo de 100,00 US$")
    assert f"antes del {day(valid_until, ES_MONTHS)}" in bruno_sms and "Responda ACEPTO " in bruno_sms
    codes["A2"] = CODE.search(bruno_sms).group(1)
    [cleo_sms] = sms_bodies(twilio_standin, PHONE["A3"])
    assert "1 free month of service" in cleo_sms and day(valid_until, EN_MONTHS) in cleo_sms
    codes["A3"] = CODE.search(cleo_sms).group(1)
    eve = sms_bodies(twilio_standin, PHONE["A5"])
    assert len(eve) == 2
    codes["A5"] = CODE.search(next(b for b in eve if "free month" in b)).group(1)
    eve_credit = next(b for b in eve if "$5.00 credit on your account" in b)
    codes["A5 credit"] = CODE.search(eve_credit).group(1)
    assert len(set(codes.values())) == len(codes)  # a code per account and program
    [dev_email] = emails_to(smtp_server, "dev@example.com")
    dev_text = email_text(dev_email)
    codes["A4"] = CODE.search(dev_text).group(1)
    assert "We are offering you 1 free month of service." in dev_text and "Answer by:" in dev_text
    assert codes["A1"] in email_text(emails_to(smtp_server, "ann@example.com")[0])

    # -- Ann taps the link in her text and accepts on her personal page.
    ann = app.test_client()
    page = open_link(ann, sms_bodies(twilio_standin, PHONE["A1"])[0])
    assert "Your offers" in page and codes["A1"] in page and "$100.00 gift card" in page
    page = answer_on_page(ann, page, codes["A1"], "accept")
    assert "You accepted Lost data: $100 gift card. We will let you know when it is applied." in page

    # -- Dev (email only) follows the link in the email and accepts the free month.
    dev = app.test_client()
    page = open_link(dev, dev_text)
    page = answer_on_page(dev, page, codes["A4"], "accept")
    assert "You accepted Everyone else: a free month." in page

    # -- Bruno (es-MX) texts ACCEPT with his code and is answered in Spanish, in TwiML.
    reply = text_us(app.test_client(), PHONE["A2"], f"ACCEPT {codes['A2'].lower()}")
    assert reply == (f"Gracias: ha aceptado Lost data: $100 gift card (código {codes['A2']}). "
                     "Le avisaremos cuando se aplique.")
    again = text_us(app.test_client(), PHONE["A2"], f"ACCEPT {codes['A2']}")
    assert again.startswith("Ya había aceptado")

    # -- Cleo checks her account at /my with a one-time code sent to her phone, and declines.
    cleo = app.test_client()
    asked = post_form(cleo, "/my", {"identifier": "A3"})
    assert asked.status_code == 303 and asked.headers["Location"].endswith("/my/verify")
    deliver()
    one_time = re.search(r"\b(\d{6})\b", sms_bodies(twilio_standin, PHONE["A3"])[-1]).group(1)
    verified = post_form(cleo, "/my/verify", {"code": one_time})
    assert verified.status_code == 303 and verified.headers["Location"].endswith("/my/account")
    page = cleo.get("/my/account").get_data(as_text=True)
    assert "Account A3" in page and codes["A3"] in page
    page = answer_on_page(cleo, page, codes["A3"], "decline")
    assert "You declined Everyone else: a free month." in page and "Declined" in page

    # -- Time passes: the goodwill credit runs out; Eve's late ACCEPT is refused, saying when it ended.
    ended_at = (utcnow() - timedelta(hours=1)).replace(second=0, microsecond=0)
    db.session.execute(sa.update(OfferProgram).where(OfferProgram.id == credit_id).values(valid_until=ended_at))
    db.session.commit()
    seattle = ended_at.astimezone(ZoneInfo("America/Los_Angeles"))  # Eve's number is a Seattle one
    ended = f"{day(seattle, EN_MONTHS)}, {seattle:%H:%M} {seattle.tzname()}"
    reply = text_us(app.test_client(), PHONE["A5"], f"ACCEPT {codes['A5 credit']}")
    assert reply == f"This offer expired on {ended} and can no longer be accepted."
    assert api.get(f"/offer-programs/{credit_id}").get_json()["counts"]["expired"] == 1
    eve_page = open_link(app.test_client(), eve_credit)
    assert offer_form(codes["A5"], eve_page, "accept")  # her free month is still open...
    [credit_item] = [i for i in offer_items(eve_page) if codes["A5 credit"] in i]
    assert "Expired" in credit_item and "<form" not in credit_item  # ...the credit is expired, without buttons

    # -- Finance downloads exactly who accepted, from the console and from the API.
    console_csv = operator.get(f"/ops/offers/{gift_id}/accepted.csv")
    assert console_csv.status_code == 200 and console_csv.mimetype == "text/csv"
    assert "attachment" in console_csv.headers["Content-Disposition"]
    rows = csv_rows(console_csv.get_data(as_text=True))
    assert rows[0] == EXPORT_HEADER
    assert sorted(((r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[10]) for r in rows[1:]),
                  key=lambda r: r[1]) == [
        (codes["A1"], "A1", "Ann Lee", "ann@example.com", "+12065550101", "gift_card", "", "100.00", "USD", "web"),
        (codes["A2"], "A2", "Bruno Díaz", "bruno@example.com", "+12065550102", "gift_card", "", "100.00", "USD",
         "sms")]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r[9]) for r in rows[1:])
    api_csv = api.get(f"/offer-programs/{gift_id}/accepted.csv")
    assert api_csv.status_code == 200 and api_csv.get_data(as_text=True) == console_csv.get_data(as_text=True)
    month_rows = csv_rows(api.get(f"/offer-programs/{month_id}/accepted.csv").get_data(as_text=True))
    assert [(r[0], r[1], r[5], r[6], r[7], r[10]) for r in month_rows[1:]] == [
        (codes["A4"], "A4", "free_months", "1", "29.99", "web")]
    assert csv_rows(api.get(f"/offer-programs/{credit_id}/accepted.csv").get_data(as_text=True)) == [EXPORT_HEADER]

    # -- Finance sends the gift cards and the operator uploads the same file to mark them fulfilled.
    page = operator.get(f"/ops/offers/{gift_id}").get_data(as_text=True)
    done = operator.post(f"/ops/offers/{gift_id}/fulfil", data={
        "csrf_token": csrf_from(page), "file": (io.BytesIO(console_csv.get_data()), "sent-gift-cards.csv")},
        content_type="multipart/form-data", follow_redirects=True)
    assert "Marked 2 grants fulfilled." in flash_of(done) and "Not fulfilled" not in done.get_data(as_text=True)
    assert csv_rows(operator.get(f"/ops/offers/{gift_id}/accepted.csv").get_data(as_text=True)) == [EXPORT_HEADER]
    ann_page = open_link(app.test_client(), sms_bodies(twilio_standin, PHONE["A1"])[0])
    assert "Applied" in ann_page

    # -- The dashboards add up: every grant issued is in exactly one state, liability follows the states.
    expected = {
        gift_id: ({"offered": 1, "accepted": 0, "fulfilled": 2, "declined": 0, "expired": 0, "revoked": 0},
                  {"offered": 10000, "accepted": 0, "fulfilled": 20000}),
        month_id: ({"offered": 1, "accepted": 1, "fulfilled": 0, "declined": 1, "expired": 0, "revoked": 0},
                   {"offered": 2999, "accepted": 2999, "fulfilled": 0}),
        credit_id: ({"offered": 0, "accepted": 0, "fulfilled": 0, "declined": 0, "expired": 1, "revoked": 0},
                    {"offered": 0, "accepted": 0, "fulfilled": 0}),
    }
    for program_id, (counts, liability) in expected.items():
        got = api.get(f"/offer-programs/{program_id}").get_json()
        assert got["counts"] == counts and got["liability_minor"] == liability, program_id
    gift_page = operator.get(f"/ops/offers/{gift_id}").get_data(as_text=True)
    assert "<dt>Offered</dt><dd>1</dd>" in gift_page and "<dt>Fulfilled</dt><dd>2</dd>" in gift_page
    assert "300.00 <span class=\"offer-currency\">USD</span>" in gift_page
    month_page = operator.get(f"/ops/offers/{month_id}").get_data(as_text=True)
    assert "<dt>Offered</dt><dd>1</dd>" in month_page and "<dt>Accepted</dt><dd>1</dd>" in month_page
    assert "<td>Declined</td><td class=\"num\">1</td>" in month_page
    incident_page = operator.get(offers_url).get_data(as_text=True)
    assert incident_page.count("<dt>Offered</dt><dd>1</dd>") == 2
