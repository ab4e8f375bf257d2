"""Message templates: SMS segment counting, languages, personal fields, and the sandbox."""
import pytest
import sqlalchemy as sa

from accounts.models import Account, AffectedAccount, RecoveryCategory, RecoveryState, RecoveryStatus
from core.db import db
from core.errors import ValidationError
from incidents.models import Impact, Incident, IncidentKind, IncidentStatus
from notifications import broadcasts, templates
from notifications.models import Broadcast, Channel, Notification
from notifications.templates import sms_segments


def test_plain_gsm7_text_fits_160_characters_in_one_part():
    assert sms_segments("a" * 160) == (1, "GSM-7")
    assert sms_segments("a" * 161) == (2, "GSM-7")
    assert sms_segments("a" * 306) == (2, "GSM-7")
    assert sms_segments("a" * 307) == (3, "GSM-7")


def test_extension_characters_like_euro_and_caret_count_double():
    assert sms_segments("€" * 80) == (1, "GSM-7")
    assert sms_segments("€" * 81) == (2, "GSM-7")
    assert sms_segments("a" * 159 + "^") == (2, "GSM-7")
    assert sms_segments("{}[]~|\\") == (1, "GSM-7")


def test_spanish_e_acute_is_gsm7_but_a_acute_forces_ucs2():
    assert sms_segments("Qué pasó con el café") == (1, "UCS-2")  # ó is not in GSM 03.38
    assert sms_segments("é" * 160) == (1, "GSM-7")
    assert sms_segments("ñÑüÜ¿¡ Él") == (1, "GSM-7")
    assert sms_segments("á") == (1, "UCS-2")
    assert sms_segments("á" * 70) == (1, "UCS-2")
    assert sms_segments("á" * 71) == (2, "UCS-2")
    assert sms_segments("á" * 134) == (2, "UCS-2")
    assert sms_segments("á" * 135) == (3, "UCS-2")


def test_emoji_are_surrogate_pairs_and_count_two_units():
    assert sms_segments("😀" * 35) == (1, "UCS-2")
    assert sms_segments("😀" * 36) == (2, "UCS-2")
    assert sms_segments("a" * 69 + "😀") == (2, "UCS-2")


def _affected(language="en", name="Ana"):
    incident = Incident(kind=IncidentKind.INCIDENT, name="Sync outage", impact=Impact.MAJOR,
                        status=IncidentStatus.INVESTIGATING)
    db.session.add(incident)
    db.session.flush()
    account = Account(account_number="A1", name=name, phone="+12065550100", email="ana@example.com",
                      language=language)
    db.session.add(account)
    db.session.flush()
    aa = AffectedAccount(incident_id=incident.id, account_id=account.id, state=RecoveryState.RECOVERED)
    photos = RecoveryCategory(incident_id=incident.id, key="photos", label="Photos", position=1)
    db.session.add_all([aa, photos])
    db.session.flush()
    db.session.add(RecoveryStatus(affected_account_id=aa.id, category_id=photos.id, state=RecoveryState.RECOVERED))
    db.session.flush()
    return account, aa


def _row(account, aa, template, channel, **kw):
    n = Notification(dedupe_key=f"t:{template}:{channel}", channel=Channel(channel), recipient="x",
                     account_id=account.id, template=template, language=account.language, data={"aa": aa.id},
                     body=None, **kw)
    db.session.add(n)
    db.session.flush()
    return n


def test_the_recovery_message_is_written_in_the_accounts_language_with_summary_and_link(app):
    account, aa = _affected(language="es-MX", name="Lucía")
    email = templates.render(_row(account, aa, "recovery", "email"))
    assert email.subject == "Sus datos: Buenas noticias: hemos recuperado sus datos."
    assert "Hola, Lucía:" in email.body and "- Hemos recuperado sus fotos." in email.body
    assert "http://status.example.com/m/" in email.body
    assert "<li>Hemos recuperado sus fotos.</li>" in email.html_body
    sms = templates.render(_row(account, aa, "recovery", "sms"))
    assert sms.subject == "" and sms.html_body is None
    assert sms.body.startswith("Buenas noticias") and "/m/" in sms.body


def test_an_unknown_language_falls_back_to_english(app):
    account, aa = _affected(language="fr-CA")
    email = templates.render(_row(account, aa, "recovery", "email"))
    assert "Hello Ana," in email.body and "We recovered your photos." in email.body


def test_a_broadcast_fills_in_the_name_and_escapes_html(app):
    account, aa = _affected(name="<b>Ana</b>")
    b = Broadcast(cause="incident:1", kind="broadcast", message="Hi {{ name }} & co", subject="News",
                  channels=["email"], audience="all")
    db.session.add(b)
    db.session.flush()
    email = templates.render(_row(account, aa, "broadcast", "email", broadcast_id=b.id))
    assert email.subject == "News"
    assert "Hi <b>Ana</b> & co" in email.body
    assert "Hi &lt;b&gt;Ana&lt;/b&gt; &amp; co" in email.html_body


@pytest.mark.parametrize("trick", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ name.__class__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ nmae }}",
    "{% if %}",
])
def test_the_sandbox_refuses_attribute_tricks_and_broken_templates(app, trick):
    with pytest.raises(ValidationError) as e:
        broadcasts.check_request({"message": trick, "channels": ["sms"]})
    assert "message" in e.value.fields


def test_the_preview_counts_the_parts_of_the_sms_a_subscriber_gets(app):
    p = broadcasts.preview("Servicio restablecido, gracias {{ name }}")
    assert p["sms"].startswith("Servicio restablecido, gracias Ana http://status.example.com/m/")
    assert (p["segments"], p["encoding"]) == (1, "GSM-7")


# ---- offer messages (offers.notify queues them; the fields come from offers.text.offer_fields) ----------

OFFER_TEMPLATES = ("offer", "offer_reminder", "offer_revoked")


def _offer(account, aa, **program):
    from datetime import datetime, timezone

    from offers.models import GrantState, OfferGrant, OfferKind, OfferProgram

    p = OfferProgram(incident_id=aa.incident_id, name="Lost data: gift card", description="Sorry.",
                     kind=OfferKind.GIFT_CARD, value_minor=10_000, currency="USD", eligible_states=["lost"],
                     valid_until=datetime(2099, 12, 31, 18, tzinfo=timezone.utc), **program)
    db.session.add(p)
    db.session.flush()
    g = OfferGrant(program_id=p.id, affected_account_id=aa.id, account_id=account.id, code="ABCDE23456",
                   state=GrantState.REVOKED, revoke_reason="Duplicate account")
    db.session.add(g)
    db.session.flush()
    return g


@pytest.mark.parametrize("template", OFFER_TEMPLATES)
@pytest.mark.parametrize("language", ["en", "es"])
def test_every_offer_template_has_every_part_and_a_short_sms(app, template, language):
    context = {"name": "Ana", "link": "http://status.example.com/m/AbCdEfGhIjKlMnOp", "offer_code": "ABCDE-23456",
               "offer_name": "Lost data: gift card", "offer_description": "Sorry.",
               "offer_what": "a $100.00 gift card" if language == "en" else "una tarjeta regalo de 100,00 US$",
               "offer_valid_until": "31 Dec 2099", "offer_valid_until_long": "31 Dec 2099, 10:00 PST",
               "offer_revoke_reason": "Duplicate account"}
    parts = templates.render_parts(template, language, context)
    assert all(parts[p] for p in templates.PARTS)
    assert "ABCDE-23456" in parts["sms"] and "ABCDE-23456" in parts["txt"] and "ABCDE-23456" in parts["html"]
    assert templates.sms_segments(parts["sms"]) in ((1, "GSM-7"), (2, "GSM-7"))


def test_an_offer_row_gets_its_fields_from_the_grant_in_the_accounts_language_with_one_query(app):
    account, aa = _affected(language="es-MX", name="Lucía")
    account.time_zone = "America/Mexico_City"
    grant = _offer(account, aa)
    plain = _row(account, aa, "offer", "email")
    offer = Notification(dedupe_key="t:offer:grant", channel=Channel.EMAIL, recipient="x", account_id=account.id,
                         template="offer_revoked", language=account.language,
                         data={"aa": aa.id, "grant": grant.id}, body=None)
    db.session.add(offer)
    db.session.flush()
    statements = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731

    def count(row) -> tuple[dict, int]:
        db.session.expire_all()
        statements.clear()
        sa.event.listen(db.engine, "before_cursor_execute", listen)
        try:
            context = templates.personal_context(db.session, db.session.get(Notification, row.id))
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", listen)
        return context, len(statements)

    without, base = count(plain)
    context, queries = count(offer)
    assert queries == base + 1  # the grant and its program together
    assert without["offer_code"] == "" and "offer_name" not in without
    assert {k: v for k, v in context.items() if k.startswith("offer_")} == {
        "offer_code": "ABCDE-23456", "offer_name": "Lost data: gift card", "offer_description": "Sorry.",
        "offer_what": "una tarjeta regalo de 100,00 US$", "offer_label": "Tarjeta regalo de 100,00 US$",
        "offer_valid_until": "31 dic 2099", "offer_valid_until_long": "31 dic 2099, 12:00 CST",
        "offer_revoke_reason": "Duplicate account", "offer_keyword": "ACEPTO"}
    email = templates.render(db.session.get(Notification, offer.id))
    assert email.subject == "Hemos retirado su oferta: Lost data: gift card"
    assert "Hola, Lucía:" in email.body and "Motivo: Duplicate account" in email.body


def test_an_operator_broadcast_can_still_say_the_offer_code(app):
    account, aa = _affected()
    grant = _offer(account, aa)
    b = Broadcast(cause="incident:1", kind="broadcast", message="Your code: {{ offer_code }}", subject="Offer",
                  channels=["sms"], audience="all")
    db.session.add(b)
    db.session.flush()
    from_grant = _row(account, aa, "broadcast", "sms", broadcast_id=b.id)
    from_grant.data = {"aa": aa.id, "grant": grant.id}
    as_written = Notification(dedupe_key="t:code", channel=Channel.SMS, recipient="x", account_id=account.id,
                              template="broadcast", language="en", broadcast_id=b.id,
                              data={"aa": aa.id, "offer_code": "ZZZZZ-99999"}, body=None)
    db.session.add(as_written)
    db.session.flush()
    assert templates.render(from_grant).body.startswith("Your code: ABCDE-23456 http://status.example.com/m/")
    assert templates.render(as_written).body.startswith("Your code: ZZZZZ-99999 ")
    assert "offer_code" in templates.TEXT_NAMES and templates.check_text("{{ offer_code }}") is None
