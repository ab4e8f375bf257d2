"""A subscriber's walk in a real browser: the status page, "Check my account", a code texted to their phone
(through the real worker and the Twilio stand-in), their personal page in English and in Spanish, and an
offer accepted. At 1280 px and 360 px; every page checked by axe-core and for JavaScript errors."""
import re
from datetime import timedelta, timezone

import pytest

from core.db import db, utcnow
from offers import service as offers
from ops.audit import Actor
from tests.acceptance_helpers import connect_peers, deliver, sms_bodies
from tests.accounts.factories import make_incident, recover, run_import

pytestmark = pytest.mark.browser
ACTOR = Actor.cli("test")
ACCOUNTS = """account_number,name,phone,email,locale
SK100001,Ann Lee,+12065550101,ann@example.com,en
SK100002,María García,+12065550102,maria@example.com,es
"""
RECOVERY = """SK100001,photos,lost,1200,0,The backup of these photos was destroyed
SK100001,contacts,recovered,300,300,
SK100002,contacts,partially_recovered,80,60,
SK100002,photos,lost,500,0,
"""


def setup_outage():
    incident = make_incident("Sidekick data loss")
    job = run_import(incident.id, ACCOUNTS)
    assert job.status.value == "done", job.errors
    recover(incident.id, RECOVERY)
    program = offers.create_program(db.session, actor=ACTOR, incident_id=incident.id, data={
        "name": "Lost data", "kind": "gift_card", "value": "100.00", "currency": "USD",
        "description": "A **$100 gift card** for what was lost.", "eligible_states": ["lost", "partially_recovered"],
        "valid_until": utcnow().replace(tzinfo=timezone.utc) + timedelta(days=30)})
    db.session.commit()
    offers.issue(db.session, actor=ACTOR, program_id=program.id)
    db.session.commit()
    return incident


def sign_in_with_code(b, standin, identifier: str, phone: str):
    b.goto("/", "status page")
    b.click("Check my account")
    b.page.get_by_role("textbox").fill(identifier)
    b.click("Send me a code", role="button", check="enter your code")
    deliver()
    code = re.search(r"\b(\d{6})\b", sms_bodies(standin, phone)[-1]).group(1)
    b.page.get_by_role("textbox").fill(code)
    return b.click(re.compile("Show my account|Ver mi cuenta"), role="button", check=f"personal page {identifier}")


def test_a_subscriber_reads_their_page_and_accepts_an_offer(browser, app, twilio_standin, smtp_server):
    connect_peers(app, twilio_standin, smtp_server)
    setup_outage()
    page = sign_in_with_code(browser, twilio_standin, "SK100001", "+12065550101")
    text = page.inner_text("main")
    assert "Photos" in text and "Lost" in text
    # The first screen answers "what happened to my data, and what do I do", on a phone too.
    screen = page.viewport_size["height"]
    for element in (page.locator(".my-summary .my-headline").first, page.locator(".my-glance").first,
                    page.get_by_role("button", name=re.compile("^Accept")).first):
        box = element.bounding_box()
        assert box and box["y"] + box["height"] <= screen, (element, box, screen)
    page.get_by_role("button", name=re.compile("^Accept")).first.click()
    page.wait_for_load_state("load")
    browser.check("offer accepted")
    assert re.search(r"accepted", page.inner_text("main"), re.I)
    browser.click(re.compile("Sign out"), role="button", check="signed out")

    page = sign_in_with_code(browser, twilio_standin, "SK100002", "+12065550102")
    assert page.get_attribute("html", "lang") == "es"
    text = page.inner_text("main")
    assert "Su cuenta" in text and "Contactos" in text and "Sus ofertas" in text and "Your" not in text
    assert "Tarjeta regalo de 100,00 US$" in text
    # The operator's words keep their language, marked for screen readers and said in Spanish.
    assert page.locator(".my-offer [lang=en]").count() >= 1 and "escribe estas novedades en inglés" in text


def test_a_visitor_subscribes_from_the_status_page_and_confirms_with_the_button(browser, app, smtp_server):
    from tests.acceptance_helpers import email_text, emails_to

    app.config.update({**smtp_server.env(), "MAIL_FROM": "Lifeboat <status@lifeboat.example>",
                       "EMAIL_RATE_PER_SECOND": 1000})
    setup_outage()
    b = browser
    b.goto("/", "status page")
    b.click("Get updates", check="subscribe form")
    b.page.get_by_label("Email address").fill("visitor@example.org")
    b.click("Subscribe", role="button", exact=True, check="check your email")
    assert "Check your email" in b.page.inner_text("main")
    deliver()
    mail = emails_to(smtp_server, "visitor@example.org")[-1]
    link = re.search(r"https?://\S+(/subscribe/confirm/\S+)", email_text(mail))
    b.goto(link.group(1), "confirm subscription")
    b.click("Yes, send me updates", role="button", check="subscribed")
    assert "You are subscribed" in b.page.inner_text("main")
    b.click("Change what you follow", check="manage subscription")
    b.click("Unsubscribe", role="button", exact=True, check="unsubscribed")
    assert "Unsubscribed" in b.page.inner_text("main")


def test_a_visitor_subscribes_by_text_and_types_the_texted_code(browser, app, twilio_standin, smtp_server):
    connect_peers(app, twilio_standin, smtp_server)
    make_incident()
    b = browser
    b.goto("/", "status page")
    b.click("Get updates", check="subscribe form with a number")
    b.page.get_by_label("Mobile number, for text messages").fill("(206) 555-0177")
    b.click("Subscribe", role="button", exact=True, check="enter the texted code")
    assert "+12065550177" in b.page.inner_text("main")
    deliver()
    code = re.search(r"your code is (\d{6})", sms_bodies(twilio_standin, "+12065550177")[-1]).group(1)
    b.page.get_by_role("textbox", name="Code").fill(code)
    b.click("Confirm", role="button", exact=True, check="subscribed by text")
    assert "You are subscribed" in b.page.inner_text("main") and "Reply STOP" in b.page.inner_text("main")
