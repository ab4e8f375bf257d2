"""Operator console for messages: a broadcast's progress, and the message log (what the log provider "sent").
The broadcast form picks an incident's affected accounts, which the notifier does not know: accounts adds it
to this blueprint (accounts.broadcast_views).

Viewers read; sending and retrying need the operator role. Writes commit once per request."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from core.db import db
from core.errors import NotFound
from notifications import broadcasts, service
from notifications.models import Channel, Notification
from ops.auth import current_actor, role_required
from ops.models import Role

bp = Blueprint("notifications_console", __name__, url_prefix="/ops")


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
    channel = request.args.get("channel") or None
    if channel not in (None, "sms", "email"):
        abort(400)
    rows = service.recent(db.session, limit=200, channel=Channel(channel) if channel else None)
    return render_template("ops/messages.html", rows=rows, channel=channel)


@bp.get("/messages/<int:message_id>")
@role_required(Role.VIEWER)
def message(message_id: int):
    row = db.session.get(Notification, message_id)
    if row is None:
        abort(404)
    return render_template("ops/messages_detail.html", m=row)
