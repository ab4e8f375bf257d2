"""The subscriber's offers on the personal page (/my/account): see each offer, accept or decline it.

The page itself belongs to accounts.public_views; it includes public/my_offers.html, which calls
`my_offers(account_id)` (a template global registered here). Answers are POSTed with the CSRF token
that core.web's CSRFProtect checks for every form."""
import time

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, session, url_for

from core.db import db
from core.errors import Conflict
from offers import grants
from offers.models import GrantState, OfferGrant, OfferKind, OfferProgram
from offers.service import display_code

bp = Blueprint("my_offers", __name__)
VERIFIED_KEY = "my"  # accounts.public_views keeps the verified subscriber here


def _money(minor: int, currency: str) -> str:
    return f"{minor / 100:,.2f} {currency}"


def offers_for(account_id: int) -> list[dict]:
    """The account's grants, newest first, as the personal page shows them."""
    rows = db.session.execute(
        sa.select(OfferGrant, OfferProgram).join(OfferProgram, OfferProgram.id == OfferGrant.program_id)
        .where(OfferGrant.account_id == account_id, OfferGrant.state != GrantState.REVOKED.value)
        .order_by(OfferGrant.id.desc())).all()
    out = []
    for grant, program in rows:
        what = (f"{program.months} free month{'s' if (program.months or 1) > 1 else ''} of service"
                if program.kind == OfferKind.FREE_MONTHS else
                f"{'Gift card' if program.kind == OfferKind.GIFT_CARD else 'Account credit'} of "
                f"{_money(program.value_minor, program.currency)}")
        out.append({"id": grant.id, "name": program.name, "description": program.description, "what": what,
                    "code": display_code(grant.code), "state": grant.state.value,
                    "valid_until": program.valid_until, "open": grant.state == GrantState.OFFERED})
    return out


@bp.app_context_processor
def _globals():
    return {"my_offers": offers_for}


@bp.post("/my/offers/<int:grant_id>/<any(accept, decline):action>")
def answer(grant_id: int, action: str):
    verified = session.get(VERIFIED_KEY)
    if not isinstance(verified, dict) or verified.get("exp", 0) <= time.time():
        return redirect(url_for("my.lookup"), code=303)
    grant = db.session.get(OfferGrant, grant_id)
    if grant is None or grant.account_id != verified["a"]:
        abort(404)  # not this subscriber's offer: say nothing about it
    try:
        first = grants.accept(db.session, grant, via="web") if action == "accept" else grants.decline(db.session,
                                                                                                      grant)
        db.session.commit()
    except Conflict as e:
        db.session.commit()  # an expired offer was just marked so
        flash(e.message, "error")
        return redirect(url_for("my.account") + "#offers", code=303)
    done = "accepted" if action == "accept" else "declined"
    flash(f"You {done} {grant.program.name}." if first else f"You had already {done} this offer.", "info")
    return redirect(url_for("my.account") + "#offers", code=303)
