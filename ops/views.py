"""The operator console's own pages: sign-in, account, and the admin pages (operators, tokens, audit log)."""
import json
import math
from urllib.parse import urlsplit

from flask import (Blueprint, Response, current_app, flash, g, make_response, redirect, render_template, request,
                   session, stream_with_context, url_for)
from flask_login import current_user, login_required, login_user, logout_user
from wtforms.fields.choices import SelectChoice

from core.db import db, utcnow
from core.errors import ServiceError
from ops import audit, service
from ops.monitoring import home_panels
from ops.auth import SignInThrottled, authenticate, client_ip, current_actor, role_required
from ops.forms import (ChangePasswordForm, ConfirmForm, OperatorCreateForm, ResetPasswordForm, RoleForm,
                       SignInForm, TokenCreateForm)
from ops.models import Role

bp = Blueprint("ops", __name__, url_prefix="/ops")

AUDIT_PER_PAGE = 50


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths, so sign-in cannot be used as an open redirect."""
    # Browsers read "/\evil.com" like "//evil.com", so backslashes are refused too.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("ops.home")


def _field_errors(form, error: ServiceError) -> dict:
    """Put a service error's field messages beside the form's fields; return the ones with no field."""
    rest = {}
    for name, message in error.fields.items():
        if name in form:
            form[name].errors = [*form[name].errors, message]
        else:
            rest[name] = message
    if not error.fields:
        rest["error"] = error.message
    return rest


def _fresh_session() -> None:
    """Empty the session, and forget the CSRF token Flask-WTF cached for it in `g` (it lived in the old session)."""
    session.clear()
    g.pop("csrf_token", None)


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    if current_user.is_authenticated:
        return redirect(url_for("ops.home"))
    form = SignInForm()
    status, throttled = (200 if request.method == "GET" else 400), None
    if form.validate_on_submit():
        try:
            operator = authenticate(db.session, email=form.email.data, password=form.password.data,
                                    ip=client_ip())
        except SignInThrottled as e:
            db.session.commit()  # keep the audit entry
            status, throttled = e.status, e
        except ServiceError as e:
            db.session.commit()  # keep the counted failure and its audit entry
            form.password.errors.append(e.message)
            status = e.status
        else:
            db.session.commit()
            _fresh_session()  # nothing from before sign-in survives (session fixation)
            login_user(operator, remember=form.remember.data)
            session.permanent = True  # so PERMANENT_SESSION_LIFETIME bounds it
            return redirect(_safe_next(request.args.get("next")))
    response = make_response(render_template("ops/sign_in.html", form=form, throttled=throttled), status)
    if throttled is not None:
        response.headers["Retry-After"] = str(max(1, int((throttled.until - utcnow()).total_seconds())))
    return response


@bp.post("/sign-out")
@login_required
def sign_out():
    # Bumping the session version ends this operator's sessions on every device, and voids any copy of the
    # session or remember-me cookie (a replayed cookie no longer loads the operator).
    service.sign_out(db.session, actor=current_actor(), operator=current_user._get_current_object())
    db.session.commit()
    # Empty the session first: logout_user() leaves the marker that makes Flask-Login delete the remember-me
    # cookie, and clearing after it would drop that marker.
    _fresh_session()
    logout_user()
    flash("You are signed out.", "info")
    response = redirect(url_for("ops.sign_in"))
    cookie = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
    response.delete_cookie(cookie, path=current_app.config.get("REMEMBER_COOKIE_PATH", "/"),
                           domain=current_app.config.get("REMEMBER_COOKIE_DOMAIN"))
    return response


@bp.get("/")
@role_required(Role.VIEWER)
def home():
    """The console's home: the panels other domains registered (ops.monitoring), e.g. the notifier's queue."""
    panels = home_panels(db.session)
    if not panels:
        return redirect(url_for("incidents_console.dashboard"))
    return render_template("ops/home.html", panels=panels)


@bp.route("/account", methods=["GET", "POST"])
@role_required(Role.VIEWER)
def account():
    form, errors = ChangePasswordForm(), {}
    if form.validate_on_submit():
        operator = current_user._get_current_object()
        try:
            service.change_own_password(db.session, actor=current_actor(), operator=operator,
                                        current=form.current_password.data, new=form.new_password.data)
        except ServiceError as e:
            db.session.rollback()
            errors = _field_errors(form, e)
        else:
            db.session.commit()
            login_user(operator)  # the old session version is void now; this session takes the new one
            flash("Your password is changed. Other sessions have been signed out.", "success")
            return redirect(url_for("ops.account"))
    status = 422 if request.method == "POST" else 200
    return render_template("ops/account.html", form=form, errors=errors), status


# ---- operators ------------------------------------------------------------------------------------

def _operators_page(create_form=None, errors=None, status=200):
    return render_template("ops/operators.html", operators=service.list_operators(db.session),
                           form=create_form or OperatorCreateForm(formdata=None), confirm=ConfirmForm(),
                           errors=errors or {}, roles=[r.value for r in Role]), status


@bp.get("/operators")
@role_required(Role.ADMIN)
def operators():
    return _operators_page()


@bp.post("/operators")
@role_required(Role.ADMIN)
def operator_create():
    form = OperatorCreateForm()
    if not form.validate():
        return _operators_page(form, status=422)
    try:
        operator = service.create_operator(db.session, actor=current_actor(), email=form.email.data,
                                           role=form.role.data, password=form.password.data)
    except ServiceError as e:
        db.session.rollback()
        return _operators_page(form, _field_errors(form, e), e.status)
    db.session.commit()
    flash(f"Created {operator.role.value} {operator.email}.", "success")
    return redirect(url_for("ops.operators"))


def _operator_change(change, done: str):
    """Run one change from the operators list; a refusal re-shows the list with the reason."""
    try:
        operator = change()
    except ServiceError as e:
        db.session.rollback()
        return _operators_page(errors=e.fields or {"error": e.message}, status=e.status)
    db.session.commit()
    flash(done.format(email=operator.email, role=operator.role.value), "success")
    return redirect(url_for("ops.operators"))


@bp.post("/operators/<int:operator_id>/role")
@role_required(Role.ADMIN)
def operator_role(operator_id: int):
    form = RoleForm()
    if not form.validate():
        return _operators_page(errors={"role": "Choose one of: viewer, operator, admin."}, status=422)
    return _operator_change(lambda: service.set_role(db.session, actor=current_actor(), operator_id=operator_id,
                                                     role=form.role.data), "{email} is now {role}.")


@bp.post("/operators/<int:operator_id>/<any(disable, enable):what>")
@role_required(Role.ADMIN)
def operator_active(operator_id: int, what: str):
    active = what == "enable"
    return _operator_change(
        lambda: service.set_active(db.session, actor=current_actor(), operator_id=operator_id, active=active),
        "{email} is " + ("enabled." if active else "disabled; their sessions have ended."))


@bp.route("/operators/<int:operator_id>/password", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def operator_password(operator_id: int):
    operator = service.get_operator(db.session, operator_id)
    form, errors = ResetPasswordForm(), {}
    if form.validate_on_submit():
        try:
            service.reset_password(db.session, actor=current_actor(), operator_id=operator_id,
                                   password=form.password.data)
        except ServiceError as e:
            db.session.rollback()
            errors = _field_errors(form, e)
        else:
            db.session.commit()
            flash(f"New password set for {operator.email}; their sessions have ended.", "success")
            return redirect(url_for("ops.operators"))
    status = 422 if request.method == "POST" else 200
    return render_template("ops/operators_password.html", operator=operator, form=form, errors=errors), status


# ---- API tokens -----------------------------------------------------------------------------------

def _token_form(bound: bool = True):
    form = TokenCreateForm() if bound else TokenCreateForm(formdata=None)
    form.operator_id.choices = [SelectChoice(o.id, f"{o.email} ({o.role.value})")
                                for o in service.list_operators(db.session) if o.active]
    return form


def _tokens_page(form=None, errors=None, status=200):
    return render_template("ops/tokens.html", tokens=service.list_tokens(db.session),
                           form=form or _token_form(bound=False), errors=errors or {}), status


@bp.get("/tokens")
@role_required(Role.ADMIN)
def tokens():
    return _tokens_page()


@bp.post("/tokens")
@role_required(Role.ADMIN)
def token_create():
    form = _token_form()
    if not form.validate():
        return _tokens_page(form, status=422)
    try:
        token, secret = service.create_token(db.session, actor=current_actor(), operator_id=form.operator_id.data,
                                             name=form.name.data)
    except ServiceError as e:
        db.session.rollback()
        return _tokens_page(form, _field_errors(form, e), e.status)
    db.session.commit()
    response = make_response(render_template("ops/tokens_created.html", token=token, secret=secret))
    response.headers["Cache-Control"] = "no-store"  # the secret must not linger in any cache
    return response


@bp.route("/tokens/<int:token_id>/revoke", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def token_revoke(token_id: int):
    token = service.get_token(db.session, token_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        service.revoke_token(db.session, actor=current_actor(), token_id=token_id)
        db.session.commit()
        flash(f"Token {token.prefix}… of {token.operator.email} is revoked.", "success")
        return redirect(url_for("ops.tokens"))
    return render_template("ops/tokens_revoke.html", token=token, form=form)


# ---- audit log ------------------------------------------------------------------------------------

def _show(value) -> str:
    return "—" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def audit_diff(before: dict | None, after: dict | None) -> list[tuple[str, str, str]]:
    """(field, before, after) rows for the fields that differ, readable in a table."""
    before, after = before or {}, after or {}
    keys = list(before) + [k for k in after if k not in before]
    return [(k, _show(before.get(k)), _show(after.get(k))) for k in keys if before.get(k) != after.get(k)]


def _audit_filters() -> tuple[str, int | None]:
    action = (request.args.get("action") or "").strip()[:64]
    operator_id = request.args.get("operator", type=int)
    if operator_id is not None and not 0 < operator_id < 2**31:
        operator_id = None  # cannot exist; also keeps PostgreSQL from refusing an out-of-range integer
    return action, operator_id


@bp.get("/audit.csv", endpoint="audit_csv")
@role_required(Role.ADMIN)
def audit_csv():
    """The whole audit log (or the filtered part), oldest first, streamed as CSV; the download is audited."""
    action, operator_id = _audit_filters()
    audit.record_export(db.session, actor=current_actor(), via="console", action=action or None,
                        operator_id=operator_id)
    db.session.commit()
    chunks = audit.csv_chunks(audit.iter_entries(db.session, action=action or None, operator_id=operator_id))
    response = Response(stream_with_context(chunks), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
    return response


@bp.get("/audit", endpoint="audit")
@role_required(Role.ADMIN)
def audit_log():
    action, operator_id = _audit_filters()
    page = min(max(1, request.args.get("page", 1, type=int)), 10**6)
    entries, total = audit.list_entries(db.session, page=page, per_page=AUDIT_PER_PAGE, action=action or None,
                                        operator_id=operator_id)
    pages = max(1, math.ceil(total / AUDIT_PER_PAGE))
    return render_template("ops/audit.html", entries=entries, total=total, page=page, pages=pages, action=action,
                           operator_id=operator_id, operators=service.list_operators(db.session), diff=audit_diff)
