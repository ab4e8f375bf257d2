"""Public self-service pages: /my (ask for a code), /my/verify, /my/account, /m/<token> (personal link).

The personal page never takes an account id from the URL or a form: only from the signed session, which
is set by a verified code or a valid personal link. Every response here is private and not stored; the one
thing kept is the empty lookup form's HTML, rendered once per process with nothing of any visitor in it, each
answer putting in its visitor's own CSRF token (core.renders.csrf_form)."""
import time
from functools import lru_cache

import phonenumbers
from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, session, url_for

from accounts import plain_language as pl
from accounts import selfservice
from accounts.forms import CodeForm, LookupForm, SignOutForm
from accounts.selfservice import Challenge, CodeRefused, Limited, say
from core import i18n, markdown, renders
from core.i18n import N_
from core.db import db

bp = Blueprint("my", __name__)

CHALLENGE_KEY = "my_challenge"
VERIFIED_KEY = "my"


@bp.after_request
def _private(response: Response) -> Response:
    # Personal data and per-browser challenges: never in a shared cache or the browser's history cache.
    response.headers["Cache-Control"] = "private, no-store"
    return response


@lru_cache(maxsize=512)
def _update_html(update_id: int, body: str):
    """Rendered timeline updates: every subscriber of an incident reads the same few, so render each once."""
    return markdown.render(body)


def _limited(e: Limited) -> Response:
    db.session.commit()
    response = Response(render_template("public/my_message.html", title=say(N_("Too many attempts")),
                                        message=e.message, offer_new=False), status=429)
    response.headers["Retry-After"] = str(e.retry_after)
    return response


def _challenge() -> Challenge | None:
    data = session.get(CHALLENGE_KEY)
    if not isinstance(data, dict):
        return None
    return Challenge(handle=data["h"], expires_ts=data["exp"], tries=data.get("n", 0))


def _sign_in(account_id: int, affected_id: int | None) -> None:
    """A fresh session that holds only who was verified (and, for a link, which incident), for a short while."""
    session.clear()
    session[VERIFIED_KEY] = {"a": account_id, "aa": affected_id,
                             "exp": time.time() + current_app.config["MY_SESSION_SECONDS"]}


@lru_cache(maxsize=16)
def _example_phone(region: str) -> str:
    """The numbering plan's example mobile number of the region, as people write it there ('(201) 555-0123')."""
    number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL) if number else ""


def _lookup_page(form) -> dict:
    """The lookup page's context: the form, and the examples its hint gives (from the settings)."""
    config = current_app.config
    return {"form": form, "example_account": config["ACCOUNT_NUMBER_EXAMPLE"],
            "example_phone": _example_phone(config["PHONE_DEFAULT_REGION"])}


def _visitor_language() -> str:
    """Before we know the account: the browser's preferred language among ours (Accept-Language)."""
    return i18n.use(request.accept_languages.best_match(i18n.languages(), default=i18n.DEFAULT))


@bp.route("/my", methods=["GET", "POST"])
def lookup():
    _visitor_language()
    if request.method == "GET" and "_flashes" not in session:
        # The empty form is the same for everyone but its CSRF token: rendered once, not per visitor, so a
        # crowd at the door costs a token and a cookie each (core.renders.csrf_form). No database either way.
        return renders.csrf_form("public/my.html", lambda: _lookup_page(LookupForm(meta={"csrf": False})))
    form = LookupForm()
    if not form.validate_on_submit():
        return render_template("public/my.html", **_lookup_page(form)), 422 if form.is_submitted() else 200
    try:
        challenge = selfservice.request_code(db.session, raw=form.identifier.data, ip=request.remote_addr or "")
    except Limited as e:
        return _limited(e)
    db.session.commit()
    session[CHALLENGE_KEY] = {"h": challenge.handle, "exp": challenge.expires_ts, "n": 0}
    return redirect(url_for("my.verify"), code=303)


@bp.route("/my/verify", methods=["GET", "POST"])
def verify():
    _visitor_language()
    challenge = _challenge()
    if challenge is None:
        flash(CodeRefused("missing").message, "info")
        return redirect(url_for("my.lookup"), code=303)
    form = CodeForm()
    if not form.validate_on_submit():
        return render_template("public/my_code.html", form=form, error=None), 422 if form.is_submitted() else 200
    try:
        account_id = selfservice.verify_code(db.session, challenge=challenge, code=form.code.data,
                                             ip=request.remote_addr or "")
    except Limited as e:
        return _limited(e)
    except CodeRefused as e:
        db.session.commit()  # the attempt counts
        if e.reason in ("wrong", "dead"):
            session[CHALLENGE_KEY] = {"h": challenge.handle, "exp": challenge.expires_ts, "n": challenge.tries + 1}
        return render_template("public/my_code.html", form=form, error=e.message,
                               dead=e.reason in ("dead", "expired")), 422
    db.session.commit()
    _sign_in(account_id, None)
    return redirect(url_for("my.account"), code=303)


@bp.get("/my/account")
def account():
    verified = session.get(VERIFIED_KEY)
    if not isinstance(verified, dict) or verified.get("exp", 0) <= time.time():
        if verified:
            session.pop(VERIFIED_KEY, None)
            flash("For your privacy you were signed out. Request a new code to see your account again.", "info")
        return redirect(url_for("my.lookup"), code=303)
    page = selfservice.personal_page(db.session, account_id=verified["a"], affected_id=verified.get("aa"))
    if page is None:
        session.pop(VERIFIED_KEY, None)
        return redirect(url_for("my.lookup"), code=303)
    i18n.use(page.lang)  # the whole page in the account's language: words, dates, <html lang>
    ui = pl.ui(page.lang)
    ui["written_in"] = ui["written_in"].format(
        language=i18n.language_name(current_app.config["OPERATOR_LANGUAGE"], page.lang))
    return render_template("public/my_account.html", page=page, ui=ui, form=SignOutForm(),
                           update_html=_update_html, incident_status=pl.incident_status,
                           minutes=current_app.config["MY_SESSION_SECONDS"] // 60)


@bp.post("/my/sign-out")
def sign_out():
    form = SignOutForm()
    if form.validate_on_submit():
        session.pop(VERIFIED_KEY, None)
        session.pop(CHALLENGE_KEY, None)
        flash("You are signed out.", "info")
    return redirect(url_for("my.lookup"), code=303)


@bp.get("/m/<token>")
def personal_link(token: str):
    try:
        affected = selfservice.open_personal_link(db.session, token=token, ip=request.remote_addr or "")
    except Limited as e:
        return _limited(e)
    db.session.commit()
    if affected is None:
        _visitor_language()
        return render_template("public/my_message.html", title=say(N_("This link cannot be used")),
                               message=say(N_("This link has expired or is no longer valid.")), offer_new=True), 404
    _sign_in(affected.account_id, affected.id)
    # Redirect, so the token leaves the address bar and is never sent on as a Referer.
    return redirect(url_for("my.account"), code=303)
