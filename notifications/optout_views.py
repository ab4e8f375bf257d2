"""Operator console: opt-outs (search, add, remove, audited) and the inbound SMS log.

Viewers read; operators write. Writes go through notifications.optouts and commit once per request."""
import math
from datetime import datetime, timedelta, timezone

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from core.db import db
from core.errors import ValidationError
from notifications import optouts
from notifications.forms import AddOptOutForm
from ops.auth import current_actor, role_required
from ops.models import Role

bp = Blueprint("optouts_console", __name__, url_prefix="/ops")

PER_PAGE = 50
MAX_PAGE = 1_000_000
KEYWORDS = ("stop", "start", "help", "status", "other")


@bp.context_processor
def _helpers():
    return {"can_write": bool(current_user.is_authenticated and current_user.can(Role.OPERATOR))}


def _page() -> int:
    return min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)


def _day(name: str) -> tuple[datetime | None, str | None]:
    """A YYYY-MM-DD query parameter as the start of that UTC day, or an error message."""
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None, None
    try:
        return datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=timezone.utc), None
    except ValueError:
        return None, "Use a date like 2026-11-26."


def _list_page(form: AddOptOutForm | None = None, status: int = 200):
    args = {k: (request.args.get(k) or "").strip()[:254] for k in ("q", "channel", "source", "since", "until")}
    since, since_error = _day("since")
    until, until_error = _day("until")
    errors = {k: e for k, e in (("since", since_error), ("until", until_error)) if e}
    rows, total = optouts.list_opt_outs(db.session, q=args["q"], channel=args["channel"], source=args["source"],
                                        since=since, until=until + timedelta(days=1) if until else None,
                                        page=_page(), per_page=PER_PAGE)
    return render_template("ops/optouts.html", rows=rows, total=total, page=_page(),
                           pages=max(1, math.ceil(total / PER_PAGE)), args=args, errors=errors,
                           sources=optouts.sources(db.session),
                           form=form or AddOptOutForm(formdata=None)), 422 if errors else status


@bp.get("/opt-outs")
@role_required(Role.VIEWER)
def optouts_list():
    return _list_page()


@bp.post("/opt-outs")
@role_required(Role.OPERATOR)
def optouts_add():
    form = AddOptOutForm()
    if not form.validate():
        return _list_page(form, 422)
    try:
        optouts.opt_out(db.session, form.channel.data, form.address.data or "", "operator", actor=current_actor())
    except ValidationError as e:
        db.session.rollback()
        for name, message in (e.fields or {"address": e.message}).items():
            getattr(form, name).errors = [*getattr(form, name).errors, message]
        return _list_page(form, 422)
    db.session.commit()
    flash(f"{form.address.data.strip()} will get no more {form.channel.data} messages.", "success")
    return redirect(url_for(".optouts_list"), 303)


@bp.post("/opt-outs/<int:opt_out_id>/remove")
@role_required(Role.OPERATOR)
def optouts_remove(opt_out_id: int):
    row = optouts.remove_by_id(db.session, opt_out_id, actor=current_actor())  # NotFound -> 404
    db.session.commit()
    flash(f"{row.address} may get {row.channel.value} messages again.", "success")
    return redirect(url_for(".optouts_list"), 303)


@bp.get("/inbound")
@role_required(Role.VIEWER)
def inbound_list():
    q = (request.args.get("q") or "").strip()[:32]
    keyword = request.args.get("keyword") or ""
    rows, total = optouts.list_inbound(db.session, q=q, keyword=keyword if keyword in KEYWORDS else "",
                                       page=_page(), per_page=PER_PAGE)
    return render_template("ops/inbound.html", rows=rows, total=total, page=_page(), q=q, keyword=keyword,
                           keywords=KEYWORDS, pages=max(1, math.ceil(total / PER_PAGE)))
