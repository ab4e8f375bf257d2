"""The operator console's own pages: sign-in, sign-out, home."""
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from core.db import db, utcnow
from ops import service
from ops.auth import check_password, role_required
from ops.forms import SignInForm
from ops.models import Role

bp = Blueprint("ops", __name__, url_prefix="/ops")


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths, so sign-in cannot be used as an open redirect."""
    if target and urlsplit(target).netloc == "" and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("ops.home")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    if current_user.is_authenticated:
        return redirect(url_for("ops.home"))
    form = SignInForm()
    if form.validate_on_submit():
        operator = service.get_operator_by_email(db.session, form.email.data)
        if check_password(operator, form.password.data) and operator.active:
            operator.last_sign_in_at = utcnow()
            db.session.commit()
            login_user(operator, remember=form.remember.data)
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors.append("That email and password do not match an active operator.")
    return render_template("ops/sign_in.html", form=form), 200 if request.method == "GET" else 400


@bp.post("/sign-out")
@login_required
def sign_out():
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("ops.sign_in"))


@bp.get("/")
@role_required(Role.VIEWER)
def home():
    return redirect(url_for("incidents_console.dashboard"))
