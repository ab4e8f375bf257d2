"""The subscriber's offers on the personal page (/my/account): see each offer, accept or decline it.

The page itself belongs to accounts.public_views; it includes public/my_offers.html, which calls
`my_offers(account_id, lang, time_zone)` (a template global registered here). Every word is in the page's language
(offers.text). Answers are POSTed with the CSRF token that core.web's CSRFProtect checks for every form."""
import time
from datetime import timezone

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, session, url_for

from accounts.models import Account
from accounts.plain_language import language_of
from core.db import db
from core.errors import Conflict
from offers import grants, text
from offers.models import GrantState, OfferGrant, OfferProgram
from offers.service import display_code

bp = Blueprint("my_offers", __name__)
VERIFIED_KEY = "my"  # accounts.public_views keeps the verified subscriber here


def offers_for(account_id: int, lang: str = "en", time_zone: str | None = None) -> list[dict]:
    """The account's grants, newest first, as the personal page shows them, worded in `lang` (times in the
    account's time zone when known, else UTC, always saying which)."""
    rows = db.session.execute(
        sa.select(OfferGrant, OfferProgram).join(OfferProgram, OfferProgram.id == OfferGrant.program_id)
        .where(OfferGrant.account_id == account_id, OfferGrant.state != GrantState.REVOKED.value)
        .order_by(OfferGrant.id.desc())).all()
    lang = language_of(lang)
    out = []
    for grant, program in rows:
        until = program.valid_until.astimezone(timezone.utc)
        out.append({"id": grant.id, "name": program.name, "description": program.description,
                    "what": text.label(program, lang), "code": display_code(grant.code),
                    "state": grant.state.value, "state_label": text.state(grant.state, lang),
                    "valid_until": until, "valid_until_iso": until.isoformat().replace("+00:00", "Z"),
                    "valid_until_text": text.date_time(program.valid_until, lang, time_zone),
                    "open": grant.state == GrantState.OFFERED})
    return out


@bp.app_context_processor
def _globals():
    return {"my_offers": offers_for, "offers_ui": text.ui, "offer_keyword": text.keyword}


@bp.post("/my/offers/<int:grant_id>/<any(accept, decline):action>")
def answer(grant_id: int, action: str):
    verified = session.get(VERIFIED_KEY)
    if not isinstance(verified, dict) or verified.get("exp", 0) <= time.time():
        return redirect(url_for("my.lookup"), code=303)
    grant = db.session.get(OfferGrant, grant_id)
    if grant is None or grant.account_id != verified["a"]:
        abort(404)  # not this subscriber's offer: say nothing about it
    account = db.session.get(Account, grant.account_id)
    lang = language_of(account.language if account else None)
    words = text.ui(lang)
    try:
        first = grants.accept(db.session, grant, via="web") if action == "accept" else grants.decline(db.session,
                                                                                                      grant)
        db.session.commit()
    except Conflict:
        db.session.commit()  # an expired offer was just marked so
        flash(text.refused(grant, grant.program, action, lang, account.time_zone if account else None), "error")
        return redirect(url_for("my.account") + "#offers", code=303)
    done = "accepted" if action == "accept" else "declined"
    flash(words[done].format(name=grant.program.name) if first else words[f"already_{done}"], "info")
    return redirect(url_for("my.account") + "#offers", code=303)
