"""What subscribers read about their offers, in the account's language (gettext; msgids are the English
texts): the offer itself (kind, value, months), dates, states, the personal page's words, the answers to accept
/ decline and the SMS replies.

Used by the message templates (through `offer_fields`, which notifications.templates calls at send time),
offers.sms and the personal page (offers.public_views). Amounts and dates are CLDR's for the language
('$100.00' / '100,00 US$'; '31 Dec 2026' / '31 dic 2026'), in the account's time zone when it is known, else
UTC. Spanish texts avoid á í ó ú where the wording stays natural, so SMS stay in GSM-7 (é, ñ, ü are GSM-7)."""
from datetime import datetime

import sqlalchemy as sa

from accounts.plain_language import language_of
from core import i18n
from core.i18n import N_, t, tn
from offers.models import GrantState, OfferGrant, OfferKind, OfferProgram

S = GrantState
KEYWORD = N_("ACCEPT")  # ACEPTO in Spanish; every language's word works (notifications.webhooks.KEYWORDS)

_WHAT = {OfferKind.GIFT_CARD: (N_("a {amount} gift card"), N_("{amount} gift card")),
         OfferKind.ACCOUNT_CREDIT: (N_("a {amount} credit on your account"), N_("{amount} credit on your account"))}

_STATE = {S.OFFERED: N_("Waiting for your answer"), S.ACCEPTED: N_("Accepted"), S.FULFILLED: N_("Applied"),
          S.DECLINED: N_("Declined"), S.EXPIRED: N_("Expired"), S.REVOKED: N_("Withdrawn")}

# Why an answer was refused, by the state the grant is in afterwards; {when} is the end of its validity.
_REFUSED = {S.EXPIRED: {"accept": N_("This offer expired on {when} and can no longer be accepted."),
                        "decline": N_("This offer expired on {when} and can no longer be declined.")},
            S.REVOKED: N_("This offer was withdrawn."), S.DECLINED: N_("This offer was declined."),
            S.ACCEPTED: N_("This offer was already accepted."),
            S.FULFILLED: N_("This offer was already accepted and applied."),
            None: N_("This offer cannot be answered any more.")}

# The offers section of the personal page and the answers to its buttons.
_UI = {"title": N_("Your offers"), "code": N_("Code"), "answer_by": N_("Answer by"), "accept": N_("Accept"),
       "decline": N_("No, thank you"), "by_sms": N_("Or reply {keyword} {code} to our text message."),
       "accepted": N_("You accepted {name}. We will let you know when it is applied."),
       "declined": N_("You declined {name}."), "already_accepted": N_("You had already accepted this offer."),
       "already_declined": N_("You had already declined this offer.")}

# Replies to an SMS ACCEPT / ACEPTO (offers.sms).
SMS = {"no_account": N_("We could not find an account with this phone number, so there is no offer to accept."),
       "not_found": N_("We could not find offer {code} for this number. Check the code and reply ACCEPT "
                       "followed by it."),
       "none_open": N_("You have no open offers to accept."),
       "several": N_("You have several open offers ({codes}). Reply ACCEPT followed by the code you want."),
       "already": N_("You already accepted {name} (code {code})."),
       "accepted": N_("Thank you: you accepted {name} (code {code}). We will let you know when it is applied.")}


def display_code(code: str) -> str:
    """XXXXX-XXXXX (the same as offers.service.display_code, kept here so templates need nothing else)."""
    return f"{code[:5]}-{code[5:]}" if code else ""


def money(minor: int, currency: str, lang: str) -> str:
    """10000, USD -> '$100.00' (en) / '100,00 US$' (es): CLDR's format for the language."""
    return i18n.money(minor, currency, language_of(lang))


def _forms(program: OfferProgram, lang: str) -> tuple[str, str]:
    lang = language_of(lang)
    if program.kind == OfferKind.FREE_MONTHS:
        n = program.months or 1
        text = tn(lang, "{n} free month of service", "{n} free months of service", n, n=n)
        return text, text
    amount = money(program.value_minor, program.currency, lang)
    kind = OfferKind(program.kind)
    with_article, alone = _WHAT.get(kind, _WHAT[OfferKind.GIFT_CARD])
    return t(lang, with_article, amount=amount), t(lang, alone, amount=amount)


def what(program: OfferProgram, lang: str) -> str:
    """What is offered, inside a sentence: 'a $100.00 gift card' / 'una tarjeta regalo de 100,00 US$'."""
    return _forms(program, lang)[0]


def label(program: OfferProgram, lang: str) -> str:
    """What is offered, as a heading: '$100.00 gift card' / 'Tarjeta regalo de 100,00 US$'."""
    return _forms(program, lang)[1]


def date(when: datetime, lang: str, time_zone: str | None = None) -> str:
    """'31 Dec 2026' / '31 dic 2026'."""
    return i18n.date(when, language_of(lang), time_zone)


def date_time(when: datetime, lang: str, time_zone: str | None = None) -> str:
    """'31 Dec 2026, 23:59 UTC' / '31 dic 2026, 23:59 UTC' (the zone's abbreviation when it is not UTC)."""
    return i18n.date_time(when, language_of(lang), time_zone)


def state(grant_state: GrantState, lang: str) -> str:
    """'Accepted' / 'Aceptada'."""
    return t(lang, _STATE[GrantState(grant_state)])


def refused(grant: OfferGrant, program: OfferProgram, action: str, lang: str,
            time_zone: str | None = None) -> str:
    """Why accepting or declining (`action`) this grant was refused, from the state it is in now."""
    text = _REFUSED.get(GrantState(grant.state), _REFUSED[None])
    if isinstance(text, dict):
        text = text[action]
    return t(lang, text, when=date_time(program.valid_until, lang, time_zone))


def ui(lang: str) -> dict:
    """The personal page's words for offers."""
    return {key: t(lang, text) for key, text in _UI.items()}


def keyword(lang: str) -> str:
    """The word to text back to accept: ACCEPT / ACEPTO."""
    return t(lang, KEYWORD)


def sms(key: str, lang: str, **values) -> str:
    """One SMS reply in the language, with its fields filled in."""
    return t(lang, SMS[key], **values)


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
