"""Public subscriptions (accounts.subscriptions): /subscribe, the confirmation page (its button confirms, the
link alone does not) and the manage page (components, unsubscribe). Private, never cached; the same answer for
every valid address."""
import sqlalchemy as sa
from flask import Blueprint, Response, render_template, request

from accounts import subscriptions
from accounts.forms import SubscribeForm
from core import i18n
from core.db import db
from core.errors import ValidationError
from incidents.models import Component

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


@bp.route("/subscribe", methods=["GET", "POST"])
def subscribe():
    lang = _lang()
    form = SubscribeForm()
    if request.method == "GET" or not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("public/subscribe.html", form=form, components=_components(), chosen=set()), status
    try:
        subscriptions.request(db.session, email=form.email.data, component_ids=_chosen(), language=lang,
                              ip=request.remote_addr or "")
    except ValidationError as e:
        db.session.rollback()
        form.email.errors = [e.fields.get("email", e.message)]
        return render_template("public/subscribe.html", form=form, components=_components(), chosen=set()), 422
    except subscriptions.Limited as e:
        db.session.rollback()
        response = Response(render_template("public/subscribe_limited.html", minutes=max(1, e.retry_after // 60)),
                            status=429)
        response.headers["Retry-After"] = str(e.retry_after)
        return response
    db.session.commit()
    return render_template("public/subscribe_sent.html")


@bp.route("/subscribe/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    _lang()
    try:
        sub = subscriptions.read_confirm(db.session, token)
    except subscriptions.InvalidLink:
        return render_template("public/subscribe_invalid.html"), 404
    if request.method == "POST":
        subscriptions.confirm(db.session, sub)
        db.session.commit()
        return render_template("public/subscribe_done.html", manage=subscriptions.manage_url(sub))
    return render_template("public/subscribe_confirm.html", token=token, address=sub.address,
                           confirmed=sub.confirmed_at is not None)


@bp.route("/subscribe/manage/<token>", methods=["GET", "POST"])
def manage(token: str):
    _lang()
    try:
        sub = subscriptions.read_manage(db.session, token)
    except subscriptions.InvalidLink:
        return render_template("public/subscribe_invalid.html"), 404
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


def init_app(app) -> None:
    app.register_blueprint(bp)

