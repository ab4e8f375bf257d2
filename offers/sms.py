"""The SMS reply ACCEPT <code> (or a bare ACCEPT when exactly one offer of this number is open).

Not YES: carriers and Twilio treat YES as an opt-in keyword. ACEPTO works too (notifications.webhooks maps
both to offers). Replies are short texts in the account's language (offers.text.SMS); a number we do not
know is answered in the language of the keyword it used."""
import sqlalchemy as sa

from accounts.plain_language import language_of
from accounts.sms_status import accounts_for_phone
from core.errors import Conflict
from offers import grants, text
from offers.models import GrantState, OfferGrant
from offers.service import display_code, normalise_code

SPANISH_KEYWORDS = ("ACEPTO", "ACEPTAR")


def _keyword_language(body: str) -> str:
    words = (body or "").split()
    first = words[0].strip(".,;:!?¡¿").upper() if words else ""
    return "es" if first in SPANISH_KEYWORDS else "en"


def accept_reply(session, *, phone: str, body: str) -> str:
    """Accept the offer named in an inbound text from `phone`; returns the reply to send."""
    accounts = accounts_for_phone(session, phone)
    if not accounts:
        return text.sms("no_account", _keyword_language(body))
    languages = {a.id: language_of(a.language) for a in accounts}
    zones = {a.id: a.time_zone for a in accounts}
    lang = languages[accounts[0].id]
    code = normalise_code("".join((body or "").split()[1:]))
    if code:
        grant = session.scalar(sa.select(OfferGrant).where(OfferGrant.code == code,
                                                           OfferGrant.account_id.in_(list(languages))))
        if grant is None:
            return text.sms("not_found", lang, code=display_code(code) if len(code) == 10 else code)
    else:
        open_ = list(session.scalars(sa.select(OfferGrant).where(
            OfferGrant.account_id.in_(list(languages)), OfferGrant.state == GrantState.OFFERED.value)
            .order_by(OfferGrant.id).limit(5)))
        if not open_:
            return text.sms("none_open", lang)
        if len(open_) > 1:
            return text.sms("several", lang, codes=", ".join(display_code(g.code) for g in open_))
        grant = open_[0]
    lang = languages[grant.account_id]  # several accounts on one phone: the offer's own account speaks
    try:
        first = grants.accept(session, grant, via="sms")
    except Conflict:
        return text.refused(grant, grant.program, "accept", lang, zones[grant.account_id])
    program = grant.program
    return text.sms("accepted" if first else "already", lang, name=program.name, code=display_code(grant.code))


def keyword_reply(session, *, phone: str, body: str) -> str:
    """The notifier's handler for ACCEPT / ACEPTO / ACEPTAR (notifications.webhooks.register_keyword)."""
    return accept_reply(session, phone=phone, body=body)
