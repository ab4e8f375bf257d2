"""/ops/tasks: the scheduled tasks (core.periodic) for admins: where each stands, and "run now", which makes
the task due so the next pass of a worker runs it (the request itself never runs a task)."""
from flask import Blueprint, abort, flash, redirect, render_template, url_for

from core import periodic
from core.db import db, utcnow
from ops.audit import record
from ops.auth import current_actor, role_required
from ops.forms import ConfirmForm
from ops.models import Role

bp = Blueprint("periodic_console", __name__, url_prefix="/ops")


@bp.get("/tasks")
@role_required(Role.ADMIN)
def tasks():
    return render_template("ops/tasks.html", tasks=periodic.status(db.session, now=utcnow()), every=periodic.every)


@bp.post("/tasks/<name>/run")
@role_required(Role.ADMIN)
def run_now(name: str):
    if periodic.find(name) is None:
        abort(404)
    form = ConfirmForm()
    if not form.validate_on_submit():  # a stale or missing CSRF token is refused by CSRFProtect before this
        abort(400)
    row = periodic.make_due(db.session, name)
    record(db.session, actor=current_actor(), action="periodic.run_now", entity_type="periodic_task",
           entity_id=name, after={"next_run_at": row.next_run_at.isoformat()})
    db.session.commit()
    flash(f"{name} will run at the worker's next pass (within a minute, while the notifier runs).", "success")
    return redirect(url_for(".tasks"), 303)
