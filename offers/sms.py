"""The SMS reply ACCEPT <code> (or a bare ACCEPT when exactly one offer of this number is open).

Not YES: carriers and Twilio treat YES as an opt-in keyword. Replies are short English texts."""
import sqlalchemy as sa

from accounts.sms_status import accounts_for_phone
from core.errors import Conflict
from offers import grants
from offers.models import GrantState, OfferGrant
from offers.service import display_code, normalise_code


def accept_reply(session, *, phone: str, body: str) -> str:
    """Accept the offer named in an inbound text from `phone`; returns the reply to send."""
    account_ids = [a.id for a in accounts_for_phone(session, phone)]
    if not account_ids:
        return "We could not find an account with this phone number, so there is no offer to accept."
    code = normalise_code("".join((body or "").split()[1:]))
    if code:
        grant = session.scalar(sa.select(OfferGrant).where(OfferGrant.code == code,
                                                           OfferGrant.account_id.in_(account_ids)))
        if grant is None:
            return f"We could not find offer {display_code(code) if len(code) == 10 else code} for this number. " \
                   "Check the code and reply ACCEPT followed by it."
    else:
        open_ = list(session.scalars(sa.select(OfferGrant).where(
            OfferGrant.account_id.in_(account_ids), OfferGrant.state == GrantState.OFFERED.value)
            .order_by(OfferGrant.id).limit(5)))
        if not open_:
            return "You have no open offers to accept."
        if len(open_) > 1:
            codes = ", ".join(display_code(g.code) for g in open_)
            return f"You have several open offers ({codes}). Reply ACCEPT followed by the code you want."
        grant = open_[0]
    try:
        first = grants.accept(session, grant, via="sms")
    except Conflict as e:
        return e.message
    program = grant.program
    if not first:
        return f"You already accepted {program.name} (code {display_code(grant.code)})."
    return f"Thank you: you accepted {program.name} (code {display_code(grant.code)}). We will let you know " \
           "when it is applied."
