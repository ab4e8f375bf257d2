"""What subscribers read about offers: amounts, what is offered, dates and refusals in English and Spanish
(CLDR formats, gettext catalogs: they need an app, whose catalogs they read)."""
from datetime import datetime, timezone

import pytest

from offers import text
from offers.models import GrantState, OfferGrant, OfferKind, OfferProgram

pytestmark = pytest.mark.usefixtures("app")
END = datetime(2026, 12, 31, 3, 30, tzinfo=timezone.utc)


def program(kind=OfferKind.GIFT_CARD, value_minor=10_000, currency="USD", months=None) -> OfferProgram:
    return OfferProgram(name="P", kind=kind, value_minor=value_minor, currency=currency, months=months,
                        valid_until=END)


@pytest.mark.parametrize("minor, currency, en, es", [
    (10_000, "USD", "$100.00", "100,00 US$"),
    (123_456_789, "EUR", "€1,234,567.89", "1.234.567,89 €"),
    (2_550, "GBP", "£25.50", "25,50 GBP"),
    (5_000, "CAD", "CA$50.00", "50,00 CAD"),
    (100_000, "JPY", "¥1,000", "1.000 JPY"),  # CLDR: the yen has no minor unit
])
def test_amounts_follow_each_languages_conventions(minor, currency, en, es):
    assert text.money(minor, currency, "en") == en
    assert text.money(minor, currency, "es-MX") == es


def test_what_is_offered_reads_naturally_in_a_sentence_and_as_a_heading():
    gift, credit = program(), program(kind=OfferKind.ACCOUNT_CREDIT, value_minor=2_500)
    one, three = program(kind=OfferKind.FREE_MONTHS, months=1), program(kind=OfferKind.FREE_MONTHS, months=3)
    assert [text.what(p, "en") for p in (gift, credit, one, three)] == [
        "a $100.00 gift card", "a $25.00 credit on your account", "1 free month of service",
        "3 free months of service"]
    assert [text.what(p, "es") for p in (gift, credit, one, three)] == [
        "una tarjeta regalo de 100,00 US$", "un crédito de 25,00 US$ en su cuenta", "1 mes de servicio gratis",
        "3 meses de servicio gratis"]
    assert text.label(gift, "en") == "$100.00 gift card" and text.label(gift, "es") == "Tarjeta regalo de 100,00 US$"
    assert text.what(gift, "fr") == "a $100.00 gift card"  # a language we do not write in: English


def test_dates_are_in_the_subscribers_language_and_time_zone_when_known():
    assert text.date(END, "en") == "31 Dec 2026" and text.date(END, "es") == "31 dic 2026"
    assert text.date_time(END, "en") == "31 Dec 2026, 03:30 UTC"
    # In Mexico City it is still the 30th: the date follows the account's zone, and the zone is named.
    assert text.date(END, "es", "America/Mexico_City") == "30 dic 2026"
    assert text.date_time(END, "es", "America/Mexico_City") == "30 dic 2026, 21:30 CST"
    assert text.date_time(END, "en", "Not/AZone") == "31 Dec 2026, 03:30 UTC"
    assert [text.date(datetime(2026, m, 1, 12, tzinfo=timezone.utc), "es") for m in (1, 4, 8)] == \
        ["1 ene 2026", "1 abr 2026", "1 ago 2026"]


def test_a_refusal_says_why_in_the_subscribers_language():
    p = program()
    expired = OfferGrant(state=GrantState.EXPIRED)
    assert text.refused(expired, p, "accept", "en") == \
        "This offer expired on 31 Dec 2026, 03:30 UTC and can no longer be accepted."
    assert text.refused(expired, p, "decline", "es") == \
        "Esta oferta caducó el 31 dic 2026, 03:30 UTC y ya no se puede rechazar."
    assert text.refused(OfferGrant(state=GrantState.REVOKED), p, "accept", "es") == "Esta oferta fue retirada."
    assert text.refused(OfferGrant(state=GrantState.ACCEPTED), p, "decline", "en") == \
        "This offer was already accepted."


def test_every_state_and_word_exists_in_both_languages():
    for lang in ("en", "es"):
        assert all(text.state(s, lang) for s in GrantState)
        assert all(text.ui(lang).values()) and all(text.sms(key, lang, name="N", code="C", codes="C")
                                                   for key in text.SMS)
    assert text.ui("es")["title"] == "Sus ofertas" and text.keyword("es") == "ACEPTO"
    assert text.state(GrantState.DECLINED, "es-MX") == "Rechazada"
