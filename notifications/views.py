"""Operator console for messages: a broadcast's progress, and the message log (what the log provider "sent").
The broadcast form picks an incident's affected accounts, which the notifier does not know: accounts adds it
to this blueprint (accounts.broadcast_views).

Viewers read; sending and retrying need the operator role. Writes commit once per request."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from core import paging
from core.db import db
from core.errors import NotFound
from notifications import broadcasts, record
from notifications.models import Channel, Notification, NotificationStatus
from ops.auth import current_actor, role_required
from ops.models import Role

bp = Blueprint("notifications_console", __name__, url_prefix="/ops")
PAGE = 100  # messages per page of the log


@bp.get("/broadcasts/<int:broadcast_id>")
@role_required(Role.VIEWER)
def broadcast_page(broadcast_id: int):
    try:
        progress = broadcasts.progress(db.session, broadcast_id)
    except NotFound:
        abort(404)
    return render_template("ops/broadcast_progress.html", p=progress, b=progress["broadcast"],
                           can_write=current_user.can(Role.OPERATOR))


@bp.post("/broadcasts/<int:broadcast_id>/retry")
@role_required(Role.OPERATOR)
def broadcast_retry(broadcast_id: int):
    try:
        n = broadcasts.retry_failed(db.session, actor=current_actor(), broadcast_id=broadcast_id)
    except NotFound:
        abort(404)
    db.session.commit()
    flash(f"{n} failed message{'' if n == 1 else 's'} queued again.")
    return redirect(url_for(".broadcast_page", broadcast_id=broadcast_id))


@bp.get("/messages")
@role_required(Role.VIEWER)
def messages():
    """Every message, newest first, 100 a page; searched by recipient or account number, filtered by channel,
    status and broadcast."""
    args = request.args
    channel, status = args.get("channel") or None, args.get("status") or None
    if channel not in (None, "sms", "email") or (status and status not in NotificationStatus._value2member_map_):
        abort(400)
    find = (args.get("q") or "").strip()[:254]
    broadcast_id = args.get("broadcast", type=int)
    filters = record.Filters(
        channel=Channel(channel) if channel else None, status=NotificationStatus(status) if status else None,
        broadcast_id=broadcast_id, recipient=find if find and ("@" in find or find.startswith("+")) else None,
        account_number=find if find and not ("@" in find or find.startswith("+")) else None)
    try:
        page = record.search(db.session, filters, limit=PAGE, cursor=args.get("cursor") or None)
    except paging.BadCursor:
        abort(400)
    numbers = record.account_numbers(db.session, page.rows)
    return render_template("ops/messages.html", page=page, numbers=numbers, shown=record.shown, channel=channel,
                           status=status, q=find, broadcast_id=broadcast_id, statuses=list(NotificationStatus),
                           first=not args.get("cursor"))


@bp.get("/messages/<int:message_id>")
@role_required(Role.VIEWER)
def message(message_id: int):
    row = db.session.get(Notification, message_id)
    if row is None:
        abort(404)
    return render_template("ops/messages_detail.html", m=row, shown=record.shown,
                           history=record.history(db.session, row),
                           account_number=record.account_numbers(db.session, [row]).get(row.account_id))
