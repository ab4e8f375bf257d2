"""What subscribers read about their offers, in English and Spanish: the offer itself (kind, value, months),
dates, states, the personal page's words, the answers to accept / decline and the SMS replies.

Used by the message templates (through `offer_fields`, which notifications.templates calls at send time),
offers.sms and the personal page (offers.public_views). Amounts are "$100.00" / "100,00 USD"; dates "31 Dec 2026" /
"31 dic 2026", in the account's time zone when it is known, else UTC. Spanish texts avoid á í ó ú where the
wording stays natural, so SMS stay in GSM-7 (é, ñ, ü are GSM-7)."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from accounts.plain_language import language_of
from offers.models import GrantState, OfferGrant, OfferKind, OfferProgram

S = GrantState
MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "es": ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"),
}
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}  # English puts these before the amount; others get the code
NO_DECIMALS = {"JPY"}
KEYWORD = {"en": "ACCEPT", "es": "ACEPTO"}  # both work in both languages (notifications.webhooks.KEYWORDS)

_WHAT = {
    "en": {OfferKind.GIFT_CARD: ("a {amount} gift card", "{amount} gift card"),
           OfferKind.ACCOUNT_CREDIT: ("a {amount} credit on your account", "{amount} credit on your account")},
    "es": {OfferKind.GIFT_CARD: ("una tarjeta regalo de {amount}", "Tarjeta regalo de {amount}"),
           OfferKind.ACCOUNT_CREDIT: ("un crédito de {amount} en su cuenta", "Crédito de {amount} en su cuenta")},
}
_MONTHS_FREE = {"en": ("{n} free month of service", "{n} free months of service"),
                "es": ("{n} mes de servicio gratis", "{n} meses de servicio gratis")}

_STATE = {
    "en": {S.OFFERED: "Waiting for your answer", S.ACCEPTED: "Accepted", S.FULFILLED: "Applied",
           S.DECLINED: "Declined", S.EXPIRED: "Expired", S.REVOKED: "Withdrawn"},
    "es": {S.OFFERED: "Pendiente de su respuesta", S.ACCEPTED: "Aceptada", S.FULFILLED: "Aplicada",
           S.DECLINED: "Rechazada", S.EXPIRED: "Caducada", S.REVOKED: "Retirada"},
}

# Why an answer was refused, by the state the grant is in afterwards; {when} is the end of its validity.
_REFUSED = {
    "en": {S.EXPIRED: {"accept": "This offer expired on {when} and can no longer be accepted.",
                       "decline": "This offer expired on {when} and can no longer be declined."},
           S.REVOKED: "This offer was withdrawn.", S.DECLINED: "This offer was declined.",
           S.ACCEPTED: "This offer was already accepted.",
           S.FULFILLED: "This offer was already accepted and applied.",
           None: "This offer cannot be answered any more."},
    "es": {S.EXPIRED: {"accept": "Esta oferta caducó el {when} y ya no se puede aceptar.",
                       "decline": "Esta oferta caducó el {when} y ya no se puede rechazar."},
           S.REVOKED: "Esta oferta fue retirada.", S.DECLINED: "Esta oferta fue rechazada.",
           S.ACCEPTED: "Esta oferta ya fue aceptada.", S.FULFILLED: "Esta oferta ya fue aceptada y aplicada.",
           None: "Ya no se puede responder a esta oferta."},
}

# The offers section of the personal page and the answers to its buttons.
UI = {
    "en": {"title": "Your offers", "code": "Code", "answer_by": "Answer by", "accept": "Accept",
           "decline": "No, thank you", "by_sms": "Or reply {keyword} {code} to our text message.",
           "accepted": "You accepted {name}. We will let you know when it is applied.",
           "declined": "You declined {name}.", "already_accepted": "You had already accepted this offer.",
           "already_declined": "You had already declined this offer."},
    "es": {"title": "Sus ofertas", "code": "Código", "answer_by": "Responda antes del", "accept": "Aceptar",
           "decline": "No, gracias", "by_sms": "O responda {keyword} {code} a nuestro mensaje de texto.",
           "accepted": "Ha aceptado {name}. Le avisaremos cuando se aplique.",
           "declined": "Ha rechazado {name}.", "already_accepted": "Ya había aceptado esta oferta.",
           "already_declined": "Ya había rechazado esta oferta."},
}

# Replies to an SMS ACCEPT / ACEPTO (offers.sms).
SMS = {
    "en": {"no_account": "We could not find an account with this phone number, so there is no offer to accept.",
           "not_found": "We could not find offer {code} for this number. Check the code and reply ACCEPT "
                        "followed by it.",
           "none_open": "You have no open offers to accept.",
           "several": "You have several open offers ({codes}). Reply ACCEPT followed by the code you want.",
           "already": "You already accepted {name} (code {code}).",
           "accepted": "Thank you: you accepted {name} (code {code}). We will let you know when it is applied."},
    "es": {"no_account": "No encontramos ninguna cuenta con este teléfono, por eso no hay oferta que aceptar.",
           "not_found": "No encontramos la oferta {code} para este teléfono. Revise el código y responda ACEPTO "
                        "seguido del código.",
           "none_open": "No tiene ofertas pendientes de aceptar.",
           "several": "Tiene varias ofertas pendientes ({codes}). Responda ACEPTO seguido del código que quiera.",
           "already": "Ya había aceptado {name} (código {code}).",
           "accepted": "Gracias: ha aceptado {name} (código {code}). Le avisaremos cuando se aplique."},
}


def display_code(code: str) -> str:
    """XXXXX-XXXXX (the same as offers.service.display_code, kept here so templates need nothing else)."""
    return f"{code[:5]}-{code[5:]}" if code else ""


def _number(value: float, decimals: int, lang: str) -> str:
    text = f"{value:,.{decimals}f}"  # 1,234.56
    return text.translate(str.maketrans(",.", ".,")) if lang == "es" else text


def money(minor: int, currency: str, lang: str) -> str:
    """10000, USD -> '$100.00' (en) / '100,00 USD' (es); other currencies '100.00 CAD' in English."""
    lang = language_of(lang)
    decimals = 0 if currency in NO_DECIMALS else 2
    amount = _number(minor / 100, decimals, lang)
    if lang == "en" and currency in SYMBOLS:
        return f"{SYMBOLS[currency]}{amount}"
    return f"{amount} {currency}"


def _forms(program: OfferProgram, lang: str) -> tuple[str, str]:
    lang = language_of(lang)
    if program.kind == OfferKind.FREE_MONTHS:
        n = program.months or 1
        text = _MONTHS_FREE[lang][0 if n == 1 else 1].format(n=n)
        return text, text
    amount = money(program.value_minor, program.currency, lang)
    kind = OfferKind(program.kind)
    if kind not in _WHAT[lang]:
        kind = OfferKind.GIFT_CARD
    with_article, alone = _WHAT[lang][kind]
    return with_article.format(amount=amount), alone.format(amount=amount)


def what(program: OfferProgram, lang: str) -> str:
    """What is offered, inside a sentence: 'a $100.00 gift card' / 'una tarjeta regalo de 100,00 USD'."""
    return _forms(program, lang)[0]


def label(program: OfferProgram, lang: str) -> str:
    """What is offered, as a heading: '$100.00 gift card' / 'Tarjeta regalo de 100,00 USD'."""
    return _forms(program, lang)[1]


def local(when: datetime, time_zone: str | None = None) -> datetime:
    """`when` in the account's time zone when it is a known one, else in UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        zone = ZoneInfo(time_zone) if time_zone else timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        zone = timezone.utc
    return when.astimezone(zone)


def _day(d: datetime, lang: str) -> str:
    return f"{d.day} {MONTHS[language_of(lang)][d.month - 1]} {d.year}"


def date(when: datetime, lang: str, time_zone: str | None = None) -> str:
    """'31 Dec 2026' / '31 dic 2026'."""
    return _day(local(when, time_zone), lang)


def date_time(when: datetime, lang: str, time_zone: str | None = None) -> str:
    """'31 Dec 2026, 23:59 UTC' / '31 dic 2026, 23:59 UTC' (the zone's abbreviation when it is not UTC)."""
    d = local(when, time_zone)
    zone = d.tzname() or "UTC"
    if zone[0] in "+-":  # zones without an abbreviation: say UTC-06 rather than a bare -06
        zone = f"UTC{zone}"
    return f"{_day(d, lang)}, {d:%H:%M} {zone}"


def state(grant_state: GrantState, lang: str) -> str:
    """'Accepted' / 'Aceptada'."""
    return _STATE[language_of(lang)][GrantState(grant_state)]


def refused(grant: OfferGrant, program: OfferProgram, action: str, lang: str,
            time_zone: str | None = None) -> str:
    """Why accepting or declining (`action`) this grant was refused, from the state it is in now."""
    lang = language_of(lang)
    text = _REFUSED[lang].get(GrantState(grant.state), _REFUSED[lang][None])
    if isinstance(text, dict):
        text = text[action]
    return text.format(when=date_time(program.valid_until, lang, time_zone))


def ui(lang: str) -> dict:
    """The personal page's words for offers."""
    return UI[language_of(lang)]


def keyword(lang: str) -> str:
    """The word to text back to accept: ACCEPT / ACEPTO."""
    return KEYWORD[language_of(lang)]


def sms(key: str, lang: str, **values) -> str:
    """One SMS reply in the language, with its fields filled in."""
    return SMS[language_of(lang)][key].format(**values)


def offer_fields(session, grant_id, lang: str, time_zone: str | None = None) -> dict:
    """The fields the offer message templates use, for one grant (one query; {} when it is gone)."""
    try:
        grant_id = int(grant_id)
    except (TypeError, ValueError):
        return {}
    row = session.execute(sa.select(OfferGrant, OfferProgram)
                          .join(OfferProgram, OfferProgram.id == OfferGrant.program_id)
                          .where(OfferGrant.id == grant_id)).first()
    if row is None:
        return {}
    grant, program = row
    lang = language_of(lang)
    return {"offer_code": display_code(grant.code), "offer_name": program.name,
            "offer_description": program.description or "", "offer_what": what(program, lang),
            "offer_label": label(program, lang), "offer_valid_until": date(program.valid_until, lang, time_zone),
            "offer_valid_until_long": date_time(program.valid_until, lang, time_zone),
            # A grant ended early by closing its program is withdrawn for the program's reason.
            "offer_revoke_reason": grant.revoke_reason or program.close_reason or "", "offer_keyword": keyword(lang)}


def offer_context(session, notification, account, lang: str) -> dict:
    """The offer fields of an offer message (data key "grant"), for the notifier's templates
    (registered with notifications.templates.register_context)."""
    return offer_fields(session, (notification.data or {})["grant"], lang, account.time_zone if account else None)
