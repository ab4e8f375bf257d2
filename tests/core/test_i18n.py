"""Internationalisation with Flask-Babel: gettext catalogs for what subscribers read, CLDR formats, <html lang>,
operators' own text marked with its language, and a new language added by one catalog."""
import re

import sqlalchemy as sa
from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from accounts.models import AffectedAccount
from app import create_app
from core.db import db
from incidents import service as incidents
from notifications.templates import render_parts, sms_segments
from ops.audit import Actor
from tests.accounts.factories import HEADER, make_incident, open_personal_page, recover, run_import

ACTOR = Actor.cli("test")


def personal_page(client, number: str) -> str:
    affected = db.session.scalars(sa.select(AffectedAccount).join(AffectedAccount.account)
                                  .where(sa.text("accounts.account_number = :n")).params(n=number)).one()
    return open_personal_page(client, affected.id)


def test_a_spanish_page_is_spanish_throughout_except_what_the_operator_wrote(client, app):
    incident = make_incident()
    job = run_import(incident.id, HEADER + "S1,María García,+12065550101,maria@example.com,es-MX\n")
    assert job.status.value == "done"
    recover(incident.id, "S1,photos,lost,1250,0,\n")
    incidents.post_update(db.session, actor=ACTOR, incident_id=incident.id,
                          data={"status": "identified", "message": "We found the **storage fault**."})
    db.session.commit()
    html = personal_page(client, "S1")
    assert '<html lang="es">' in html
    assert "Su cuenta" in html and "Sus datos" in html and "No pudimos recuperar sus fotos." in html
    assert "Your account" not in html and "Updated" not in html
    assert "Nuestro equipo escribe estas novedades en inglés." in html
    assert re.search(r'<div class="message" lang="en"><p>We found the <strong>storage fault</strong>', html)
    # Dates in CLDR Spanish ('5 dic 2026, 14:03 UTC'), not 'Dec 05, 2026'.
    times = re.findall(r"<time [^>]*>([^<]+)</time>", html)
    assert times and all(re.match(r"\d{1,2} [a-z]{3,4} \d{4}, \d{1,2}:\d{2} UTC$", t) for t in times), times


def test_an_email_in_spanish_says_the_operators_message_is_in_english_and_marks_it(app):
    context = {"name": "María García", "message": "We found the fault.\n\nMore soon.", "subject": "",
               "link": "https://status.example.com/m/x"}
    parts = render_parts("broadcast", "es", context)
    assert parts["txt"].startswith("Hola, María García:\n\nNuestro equipo escribió este mensaje en inglés:\n\n"
                                   "We found the fault.")
    assert '<div lang="en"><p>We found the fault.</p>' in parts["html"] and "Su página personal" in parts["html"]
    english = render_parts("broadcast", "en", {**context, "name": "Ann"})
    assert english["txt"].startswith("Hello Ann,\n\nWe found the fault.") and "wrote this message" not in english["txt"]


def test_spanish_texts_keep_to_gsm7_and_amounts_and_dates_follow_cldr(app):
    from offers import text
    from offers.models import OfferKind, OfferProgram
    from datetime import datetime, timezone

    program = OfferProgram(name="P", kind=OfferKind.GIFT_CARD, value_minor=10_000, currency="EUR",
                           valid_until=datetime(2026, 12, 31, 12, tzinfo=timezone.utc))
    fields = {"offer_what": text.what(program, "es"), "offer_keyword": text.keyword("es"), "offer_code": "ABCDE-FGHJK",
              "offer_valid_until": text.date(program.valid_until, "es"), "link": "https://s.example/m/abc"}
    sms = render_parts("offer", "es", fields)["sms"]
    assert sms == ("Lifeboat: le ofrecemos una tarjeta regalo de 100,00 €. Responda ACEPTO ABCDE-FGHJK antes del "
                   "31 dic 2026 o conteste en https://s.example/m/abc")
    assert sms_segments(sms)[1] == "GSM-7"  # CLDR's no-break space would have made it UCS-2


def test_the_lookup_page_follows_the_browsers_language(client):
    html = client.get("/my", headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert '<html lang="es">' in html and "Consultar mi cuenta" in html and "Enviarme un código" in html
    english = client.get("/my", headers={"Accept-Language": "de,en;q=0.5"}).get_data(as_text=True)
    assert '<html lang="en">' in english and "Check my account" in english


FRENCH = {"Your account": "Votre compte", "Your data": "Vos données", "Hello %(name)s,": "Bonjour %(name)s,",
          "We are still checking {obj}.": "Nous vérifions encore {obj}.", "your photos": "vos photos",
          "Your data: %(headline)s": "Vos données : %(headline)s"}


def test_adding_a_language_is_one_catalog(tmp_path, _migrated):
    folder = tmp_path / "translations"
    (folder / "fr" / "LC_MESSAGES").mkdir(parents=True)
    catalog = Catalog(locale="fr")
    for english, french in FRENCH.items():
        catalog.add(english, french)
    with open(folder / "fr" / "LC_MESSAGES" / "messages.po", "wb") as f:
        write_po(f, catalog)
    from core.i18n import TRANSLATIONS

    app = create_app({"SQLALCHEMY_DATABASE_URI": _migrated, "TESTING": True, "SESSION_COOKIE_SECURE": False,
                      "BABEL_TRANSLATION_DIRECTORIES": f"{TRANSLATIONS};{folder}", "PUBLIC_RENDER_CHECK_SECONDS": 0})
    app.instance_path = str(tmp_path / "instance")
    with app.app_context():
        try:
            from core.i18n import languages

            assert languages() == ("en", "es", "fr")
            incident = make_incident()
            job = run_import(incident.id, HEADER + "F1,Zoé Martin,+12065550109,zoe@example.com,fr\n")
            assert job.status.value == "done", job.errors  # the import accepts the new language
            html = personal_page(app.test_client(), "F1")
            assert '<html lang="fr">' in html and "Votre compte" in html and "Vos données" in html
            assert "Nous vérifions encore vos photos." in html
            assert "Sign out" in html  # not in the tiny catalog: English, never a blank
            assert render_parts("recovery", "fr", {"name": "Zoé", "headline": "H", "summary": [],
                                                   "link": "x"})["subject"] == "Vos données : H"
        finally:
            db.session.remove()
            from tests.conftest import _empty_all_tables
            _empty_all_tables()
            db.engine.dispose()


def test_the_unsubscribe_pages_speak_the_addresss_language(client):
    from notifications.unsubscribe import unsubscribe_url

    incident = make_incident()
    run_import(incident.id, HEADER + "S2,Ana Ruiz,,ana@example.com,es\n")
    path = unsubscribe_url("email", "ana@example.com").split("example.com", 1)[1]
    html = client.get(path).get_data(as_text=True)
    assert '<html lang="es">' in html and "¿Dejar de recibir correos?" in html and "<strong>ana@example.com</strong>" in html
    unknown = unsubscribe_url("email", "nobody@example.org").split("example.com", 1)[1]
    assert "Stop emails?" in client.get(unknown, headers={"Accept-Language": "en"}).get_data(as_text=True)
    bad = client.get("/unsubscribe/not-a-token", headers={"Accept-Language": "es"})
    assert bad.status_code == 404 and "No reconocemos este enlace" in bad.get_data(as_text=True)
