"""The console's webhooks page (/ops/webhooks, admin only): the endpoints, their state and recent delivery log,
and forms to register, enable, disable, rotate the secret, send a test event and delete. Writes are audited by
the service and committed once per request; a secret is shown once, on a page nobody may cache."""
from flask import Blueprint, current_app, flash, make_response, redirect, render_template, request, url_for

from core.db import db, utcnow
from core.errors import ServiceError
from notifications.outbound import events, service
from notifications.outbound.forms import WebhookActionForm, WebhookCreateForm
from ops.auth import current_actor, role_required
from ops.models import Role

bp = Blueprint("webhooks_console", __name__, url_prefix="/ops")


def _create_form(bound: bool = True) -> WebhookCreateForm:
    form = WebhookCreateForm() if bound else WebhookCreateForm(formdata=None)
    form.events.choices = [(e.name, f"{e.name}: {e.description}") for e in events.types()]
    return form


def _page(form=None, errors=None, status=200):
    endpoints = service.list_all(db.session)
    return render_template("ops/webhooks.html", endpoints=endpoints, form=form or _create_form(bound=False),
                           errors=errors or {}, now=utcnow(),
                           log=service.recent_deliveries(db.session, [e.id for e in endpoints]),
                           allow_private=current_app.config.get("WEBHOOKS_ALLOW_PRIVATE_TARGETS")), status


def _secret_page(endpoint, secret: str, what: str):
    response = make_response(render_template("ops/webhooks_secret.html", endpoint=endpoint, secret=secret,
                                             what=what))
    response.headers["Cache-Control"] = "no-store"  # the secret must not linger in any cache
    return response


@bp.get("/webhooks")
@role_required(Role.ADMIN)
def webhooks():
    return _page()


@bp.post("/webhooks")
@role_required(Role.ADMIN)
def webhook_create():
    form = _create_form()
    if not form.validate():
        return _page(form, status=422)
    try:
        endpoint, secret = service.create(
            db.session, actor=current_actor(), allow_private=bool(current_app.config.get("WEBHOOKS_ALLOW_PRIVATE_TARGETS")),
            data={"url": form.url.data, "events": form.events.data or [], "description": form.description.data})
    except ServiceError as e:
        db.session.rollback()
        for name, message in e.fields.items():
            if name in form:
                form[name].errors = [*form[name].errors, message]
        return _page(form, {} if e.fields else {"error": e.message}, e.status)
    db.session.commit()
    return _secret_page(endpoint, secret, "registered")


def _act(endpoint_id: int, do, done: str):
    """Run one button's action (CSRF-checked), commit, and say what happened."""
    if not WebhookActionForm().validate_on_submit():
        flash("The form expired; please try again.", "error")
        return redirect(url_for(".webhooks"))
    try:
        result = do()
    except ServiceError as e:
        db.session.rollback()
        flash(e.message, "error")
        return redirect(url_for(".webhooks"))
    db.session.commit()
    if done:
        flash(done, "success")
    return result or redirect(url_for(".webhooks") + f"#webhook-{endpoint_id}")


def _allow() -> bool:
    return bool(current_app.config.get("WEBHOOKS_ALLOW_PRIVATE_TARGETS"))


@bp.post("/webhooks/<int:endpoint_id>/edit")
@role_required(Role.ADMIN)
def webhook_edit(endpoint_id: int):
    """Change the URL, events and description (from the endpoint's own form on the page)."""
    form = _create_form()
    if not form.validate():
        flash("; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()), "error")
        return redirect(url_for(".webhooks") + f"#webhook-{endpoint_id}")
    try:
        service.update(db.session, actor=current_actor(), endpoint_id=endpoint_id, allow_private=_allow(), data={
            "url": form.url.data, "events": form.events.data or [], "description": form.description.data})
    except ServiceError as e:
        db.session.rollback()
        flash(" ".join([e.message] + [f"{name.capitalize()}: {message}" for name, message in e.fields.items()]),
              "error")
        return redirect(url_for(".webhooks") + f"#webhook-{endpoint_id}")
    db.session.commit()
    flash(f"Webhook {endpoint_id} is changed.", "success")
    return redirect(url_for(".webhooks") + f"#webhook-{endpoint_id}")


@bp.post("/webhooks/<int:endpoint_id>/enable")
@role_required(Role.ADMIN)
def webhook_enable(endpoint_id: int):
    return _act(endpoint_id, lambda: service.update(db.session, actor=current_actor(), endpoint_id=endpoint_id,
                                                    data={"enabled": True}, allow_private=_allow()) and None,
                f"Webhook {endpoint_id} is enabled.")


@bp.post("/webhooks/<int:endpoint_id>/disable")
@role_required(Role.ADMIN)
def webhook_disable(endpoint_id: int):
    return _act(endpoint_id, lambda: service.update(db.session, actor=current_actor(), endpoint_id=endpoint_id,
                                                    data={"enabled": False}, allow_private=_allow()) and None,
                f"Webhook {endpoint_id} is disabled: nothing is sent to it until it is enabled.")


@bp.post("/webhooks/<int:endpoint_id>/test")
@role_required(Role.ADMIN)
def webhook_test(endpoint_id: int):
    return _act(endpoint_id, lambda: service.send_test(db.session, actor=current_actor(),
                                                       endpoint_id=endpoint_id) and None,
                f"A test event is queued for webhook {endpoint_id}; its delivery shows below once sent.")


@bp.post("/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver")
@role_required(Role.ADMIN)
def webhook_redeliver(endpoint_id: int, delivery_id: int):
    return _act(endpoint_id, lambda: service.redeliver(db.session, actor=current_actor(), endpoint_id=endpoint_id,
                                                       delivery_id=delivery_id) and None,
                f"Delivery {delivery_id} is queued again for webhook {endpoint_id}.")


@bp.post("/webhooks/<int:endpoint_id>/rotate-secret")
@role_required(Role.ADMIN)
def webhook_rotate(endpoint_id: int):
    """Rotate the secret; the "keep the old one" button sends keep_previous_hours=24."""
    keep = 24 if request.form.get("keep_previous_hours") == "24" else 0
    return _act(endpoint_id, lambda: _secret_page(*service.rotate_secret(
        db.session, actor=current_actor(), endpoint_id=endpoint_id, keep_previous_hours=keep),
        "rotated" + (": requests are signed with the old secret too for 24 hours" if keep else "")), "")


@bp.post("/webhooks/<int:endpoint_id>/delete")
@role_required(Role.ADMIN)
def webhook_delete(endpoint_id: int):
    return _act(endpoint_id, lambda: service.delete(db.session, actor=current_actor(), endpoint_id=endpoint_id),
                f"Webhook {endpoint_id} and its delivery log are deleted.")


def home_panel(session) -> dict:
    """The console home's notice: endpoints the worker disabled after a day of failures."""
    return {"disabled_webhooks": service.disabled(session)}
