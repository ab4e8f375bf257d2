"""Message templates: SMS segment counting, languages, personal fields, and the sandbox."""
import pytest

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
