"""Public subscriptions (accounts.subscriptions): /subscribe, the confirmation page (its button confirms, the
link alone does not) and the manage page (components, unsubscribe). Private, never cached; the same answer for
every valid address; the code page of SMS subscriptions. And the operators' page, /ops/subscriptions: counts,
search, removal, import and the CSV."""
import sqlalchemy as sa
from flask import (Blueprint, Response, abort, current_app, flash, redirect, render_template, request,
                   stream_with_context, url_for)
from flask_login import current_user

from accounts import erasure, selfservice, subscriptions
from accounts.forms import SubscribeCodeForm, SubscribeForm, SubscriberImportForm
from accounts.models import Subscription
from core import i18n, paging
from core.db import db
from core.errors import NotFound, ServiceError, ValidationError
from core.i18n import N_
from incidents.models import Component
from ops import exports
from ops.auth import current_actor, role_required
from ops.models import Role

bp = Blueprint("subscribe", __name__)


@bp.after_request
def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the links carry their token
    return response


def _components():
    return db.session.scalars(sa.select(Component).order_by(Component.position, Component.id)).all()


def _chosen() -> list[int] | None:
    """The components ticked, or None for "all of them" (also when none is ticked)."""
    if request.form.get("follow") != "some":
        return None
    ids = [int(v) for v in request.form.getlist("component") if v.isdigit() and len(v) <= 10]
    return ids or None


def _lang() -> str:
    lang = i18n.language_for(request.accept_languages.best_match(i18n.languages()) or "en")
    i18n.use(lang)
    return lang


def _subscription(read, token: str) -> Subscription:
    """The subscription a signed link names (read: subscriptions.read_verify, read_confirm or read_manage), or
    the "this link does not work" page (404)."""
    try:
        return read(db.session, token)
    except subscriptions.InvalidLink:
        abort(Response(render_template("public/subscribe_invalid.html"), status=404))


def _limited(e: subscriptions.Limited) -> Response:
    db.session.rollback()
    response = Response(render_template("public/subscribe_limited.html", minutes=max(1, e.retry_after // 60)),
                        status=429)
    response.headers["Retry-After"] = str(e.retry_after)
    return response


@bp.route("/subscribe", methods=["GET", "POST"])
def subscribe():
    """Email, a mobile number or both: the email gets a link to confirm, the number a code typed on the next
    page. What was typed and ticked comes back with any error."""
    lang = _lang()
    form = SubscribeForm()
    sms = bool(current_app.config["SUBSCRIBE_SMS_REGIONS"])
    posted = request.method == "POST"
    chosen = _chosen() if posted else None

    def again():
        return render_template("public/subscribe.html", form=form, components=_components(), sms=sms,
                               chosen=set(chosen or ()), follows_all=chosen is None), 422 if posted else 200

    if not posted or not form.validate_on_submit():
        return again()
    email, phone = (form.email.data or "").strip(), (form.phone.data or "").strip() if sms else ""
    if not email and not phone:
        form.email.errors = [selfservice.say(N_("Enter an email address or a mobile number.") if sms else
                                             N_("Enter an email address, like ana@example.com."))]
        return again()
    # Both are checked before anything is sent, so a typo in one does not send the other twice.
    for value, check, f in ((email, subscriptions.check_email, form.email), (phone, subscriptions.check_phone,
                                                                               form.phone)):
        try:
            if value:
                check(value)
        except ValidationError as e:
            f.errors = list(e.fields.values())
    if form.email.errors or form.phone.errors:
        return again()
    ip, token = request.remote_addr or "", None
    try:
        if email:
            subscriptions.request(db.session, email=email, component_ids=chosen, language=lang, ip=ip)
        if phone:
            token = subscriptions.request_sms(db.session, phone=phone, component_ids=chosen, language=lang, ip=ip)
    except subscriptions.Limited as e:
        return _limited(e)
    db.session.commit()
    if token:
        return redirect(url_for(".verify", token=token, email="1" if email else None), 303)
    return render_template("public/subscribe_sent.html")


@bp.route("/subscribe/verify/<token>", methods=["GET", "POST"])
def verify(token: str):
    """The code page of an SMS subscription: type the texted code, or ask for a new one."""
    _lang()
    sub = _subscription(subscriptions.read_verify, token)
    form, error, dead, status = SubscribeCodeForm(), None, False, 200
    emailed = request.args.get("email") == "1"
    if request.method == "POST":
        try:
            if request.form.get("action") == "resend":  # (CSRFProtect has checked the token of every POST)
                subscriptions.resend_code(db.session, sub, ip=request.remote_addr or "")
                db.session.commit()
                return redirect(url_for(".verify", token=token, sent="1"), 303)
            if form.validate_on_submit():
                subscriptions.verify_code(db.session, sub, form.code.data, ip=request.remote_addr or "")
                db.session.commit()
                return render_template("public/subscribe_done.html", manage=subscriptions.manage_url(sub),
                                       channel="sms")
            status = 422
        except subscriptions.Limited as e:
            return _limited(e)
        except selfservice.CodeRefused as e:
            db.session.commit()  # the guess counts
            error, dead, status = e.message, e.reason in ("dead", "expired"), 422
    return render_template("public/subscribe_code.html", form=form, token=token, address=sub.address, error=error,
                           dead=dead, emailed=emailed, sent=request.args.get("sent") == "1"), status


@bp.route("/subscribe/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    _lang()
    sub = _subscription(subscriptions.read_confirm, token)
    if request.method == "POST":
        subscriptions.confirm(db.session, sub)
        db.session.commit()
        return render_template("public/subscribe_done.html", manage=subscriptions.manage_url(sub), channel="email")
    return render_template("public/subscribe_confirm.html", token=token, address=sub.address,
                           confirmed=sub.confirmed_at is not None)


@bp.route("/subscribe/manage/<token>", methods=["GET", "POST"])
def manage(token: str):
    _lang()
    sub = _subscription(subscriptions.read_manage, token)
    saved = False
    if request.method == "POST":
        if request.form.get("action") == "unsubscribe":
            subscriptions.unsubscribe(db.session, sub)
            db.session.commit()
            return render_template("public/subscribe_gone.html")
        subscriptions.update(db.session, sub, _chosen())
        db.session.commit()
        saved = True
    return render_template("public/subscribe_manage.html", token=token, sub=sub, components=_components(),
                           chosen=subscriptions.followed_ids(db.session, sub), saved=saved)


# ---- the console: /ops/subscriptions ------------------------------------------------------------------

console = Blueprint("subscriptions_console", __name__, url_prefix="/ops")
PAGE = 100


@console.get("/subscriptions")
@role_required(Role.VIEWER)
def console_list():
    address, state = (request.args.get("q") or "").strip()[:254], request.args.get("state") or None
    if state not in (None, "confirmed", "pending"):
        abort(400)
    try:
        page = paging.page(db.session, subscriptions.search_query(address=address, state=state), Subscription.id,
                           limit=PAGE, cursor=request.args.get("cursor") or None)
    except paging.BadCursor:
        abort(400)
    return _console_page(page, address, state)


def _console_page(page, address="", state=None, *, form=None, result=None, status=200):
    return render_template("ops/subscriptions.html", page=page, counts=subscriptions.counts(db.session), q=address,
                           state=state, can_write=current_user.can(Role.OPERATOR),
                           can_erase=current_user.can(Role.ADMIN),
                           form=form or SubscriberImportForm(), result=result), status


@console.post("/subscriptions/import")
@role_required(Role.OPERATOR)
def console_import():
    """Upload a CSV of people who agreed elsewhere; all or nothing, every bad row listed."""
    form = SubscriberImportForm()
    result = None
    if form.validate_on_submit():
        upload = form.file.data
        try:
            result = subscriptions.import_rows(db.session, upload.stream, actor=current_actor(),
                                               consent=form.consent.data, filename=upload.filename or "upload.csv")
        except ValidationError as e:
            db.session.rollback()
            target = form.consent if "consent" in e.fields else form.file
            target.errors = [e.fields.get("consent") or e.fields.get("file") or e.message]
        else:
            if not result.error_count:
                db.session.commit()
                flash(f"Imported: {result.added} added, {result.confirmed} pending confirmed, {result.unchanged} "
                      f"already subscribed, {result.opted_out} skipped (opted out). Each new subscriber is sent one "
                      "welcome message.", "success")
                return redirect(url_for(".console_list"), 303)
            db.session.rollback()
    page = paging.page(db.session, subscriptions.search_query(), Subscription.id, limit=PAGE, cursor=None)
    return _console_page(page, form=form, result=result, status=422)


@console.route("/subscriptions/<int:subscription_id>/erase", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def console_erase(subscription_id: int):
    """Erase a status-page subscriber who has no account, after the admin confirms (accounts.erasure)."""
    sub = db.session.get(Subscription, subscription_id)
    if sub is None:
        abort(404)
    error = None
    if request.method == "POST":
        try:
            counts = erasure.erase_subscriber(db.session, actor=current_actor(), channel=sub.channel,
                                              address=sub.address)
        except ServiceError as e:
            db.session.rollback()
            error = e.message
        else:
            db.session.commit()
            flash(f"Erased: {erasure.describe(counts)}.", "success")
            return redirect(url_for(".console_list"), 303)
    return render_template("ops/subscription_erase.html", sub=sub, error=error), 409 if error else 200


@console.get("/subscriptions.csv")
@role_required(Role.OPERATOR)
def console_csv():
    """Every subscription as CSV (the subscriptions dataset; it imports back as it is); the reading is audited."""
    dataset = exports.get("subscriptions")
    exports.audit_reading(db.session, dataset, actor=current_actor(), via="console csv")
    db.session.commit()
    response = Response(stream_with_context(exports.csv_chunks(db.session, dataset)), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="subscriptions.csv"'
    return response


@console.post("/subscriptions/<int:subscription_id>/remove")
@role_required(Role.OPERATOR)
def console_remove(subscription_id: int):
    try:
        sub = subscriptions.remove(db.session, actor=current_actor(), subscription_id=subscription_id)
    except NotFound:
        abort(404)
    db.session.commit()
    flash(f"Removed the subscription of {sub.address}.", "success")
    return redirect(url_for(".console_list"), 303)


def init_app(app) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(console)
