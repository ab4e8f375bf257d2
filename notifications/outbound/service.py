"""Webhook endpoints: register, list, change, rotate the secret, delete, send a test event. Shared by the ops
API and the console; every write is audited (never with the secret); the caller commits."""
import base64
import secrets
import socket
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from core import bulk
from core.db import utcnow
from core.errors import Conflict, NotFound, ValidationError
from notifications.outbound import events, targets
from notifications.outbound.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from ops.audit import Actor, record, snapshot

SECRET_BYTES = 32  # Standard Webhooks: 24 to 64 bytes of randomness
DESCRIPTION_MAX = 500
FIELDS = ("url", "events", "description", "enabled")  # what the audit log records (never the secret)
ID_MAX = 2**31 - 1


def new_secret() -> str:
    """"whsec_" + base64 of 32 random bytes: the Standard Webhooks secret format."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _check(data: dict, *, allow_private: bool, partial: bool, resolver) -> dict:
    """The fields of `data` that may be stored, or ValidationError naming each bad one."""
    errors, clean = {}, {}
    if "url" in data or not partial:
        try:
            clean["url"] = targets.check_url(data.get("url") or "", allow_private=allow_private, resolver=resolver)
        except targets.Refused as e:
            errors["url"] = str(e)
    if "events" in data or not partial:
        wanted, known = data.get("events"), set(events.names())
        if not isinstance(wanted, list) or not wanted or not all(isinstance(e, str) for e in wanted):
            errors["events"] = "Choose at least one event."
        elif unknown := [e for e in wanted if e not in known]:
            errors["events"] = f"Unknown event {unknown[0]!r}; choose from: {', '.join(sorted(known))}."
        else:
            clean["events"] = sorted(set(wanted))
    if "description" in data:
        text = (data.get("description") or "").strip()
        if len(text) > DESCRIPTION_MAX:
            errors["description"] = f"At most {DESCRIPTION_MAX} characters."
        clean["description"] = text
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            errors["enabled"] = "Must be true or false."
        clean["enabled"] = data["enabled"]
    if errors:
        raise ValidationError("Please correct the highlighted fields.", errors)
    return clean


def create(session, *, actor: Actor, data: dict, allow_private: bool,
           resolver=socket.getaddrinfo) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint (url, events, description); returns it and its secret, which is shown this once."""
    clean = _check(data, allow_private=allow_private, partial=False, resolver=resolver)
    now = utcnow()
    secret = new_secret()
    endpoint = WebhookEndpoint(**clean, secret=secret, enabled=True, created_by=actor.label, created_at=now,
                               updated_at=now)
    session.add(endpoint)
    session.flush()
    record(session, actor=actor, action="webhook.create", entity_type="webhook", entity_id=endpoint.id,
           after=snapshot(endpoint, FIELDS))
    return endpoint, secret


def get(session, *, endpoint_id: int) -> WebhookEndpoint:
    """The endpoint, or NotFound (404)."""
    endpoint = session.get(WebhookEndpoint, endpoint_id) if 0 < endpoint_id <= ID_MAX else None
    if endpoint is None:
        raise NotFound(f"No webhook with id {endpoint_id}.")
    return endpoint


def list_all(session) -> list[WebhookEndpoint]:
    """Every endpoint, oldest first."""
    return session.scalars(sa.select(WebhookEndpoint).order_by(WebhookEndpoint.id)).all()


def update(session, *, actor: Actor, endpoint_id: int, data: dict, allow_private: bool,
           resolver=socket.getaddrinfo) -> WebhookEndpoint:
    """Change url, events, description or enabled; enabling again starts the failure clock afresh."""
    endpoint = get(session, endpoint_id=endpoint_id)
    clean = _check(data, allow_private=allow_private, partial=True, resolver=resolver)
    before = snapshot(endpoint, FIELDS)
    if clean.get("enabled") and not endpoint.enabled:
        endpoint.failing_since = endpoint.disabled_at = endpoint.disabled_reason = None
    for key, value in clean.items():
        setattr(endpoint, key, value)
    endpoint.updated_at = utcnow()
    session.flush()
    record(session, actor=actor, action="webhook.update", entity_type="webhook", entity_id=endpoint.id,
           before=before, after=snapshot(endpoint, FIELDS))
    return endpoint


KEEP_PREVIOUS_MAX_HOURS = 72


def rotate_secret(session, *, actor: Actor, endpoint_id: int, keep_previous_hours: int = 0
                  ) -> tuple[WebhookEndpoint, str]:
    """A new secret: every attempt from now on (retries of earlier events too) is signed with it, and for
    `keep_previous_hours` also with the old one, so the receiver can change secrets without refusing requests."""
    if not 0 <= keep_previous_hours <= KEEP_PREVIOUS_MAX_HOURS:
        raise ValidationError("Please correct the highlighted fields.", {
            "keep_previous_hours": f"Must be from 0 to {KEEP_PREVIOUS_MAX_HOURS}."})
    endpoint = get(session, endpoint_id=endpoint_id)
    secret, now = new_secret(), utcnow()
    endpoint.previous_secret = endpoint.secret if keep_previous_hours else None
    endpoint.previous_secret_until = now + timedelta(hours=keep_previous_hours) if keep_previous_hours else None
    endpoint.secret = secret
    endpoint.secret_rotated_at = endpoint.updated_at = now
    session.flush()
    record(session, actor=actor, action="webhook.rotate_secret", entity_type="webhook", entity_id=endpoint.id,
           after={"url": endpoint.url, "secret": "(new secret, not logged)",
                  "previous_kept_until": endpoint.previous_secret_until and endpoint.previous_secret_until.isoformat()})
    return endpoint, secret


def delete(session, *, actor: Actor, endpoint_id: int) -> None:
    """Remove an endpoint with its deliveries and their log."""
    endpoint = get(session, endpoint_id=endpoint_id)
    record(session, actor=actor, action="webhook.delete", entity_type="webhook", entity_id=endpoint.id,
           before=snapshot(endpoint, FIELDS))
    session.delete(endpoint)
    session.flush()


def send_test(session, *, actor: Actor, endpoint_id: int) -> WebhookDelivery:
    """Queue a test event to one endpoint (the worker sends it, as every delivery)."""
    endpoint = get(session, endpoint_id=endpoint_id)
    if not endpoint.enabled:
        raise Conflict("This endpoint is disabled: enable it first, then send a test event.")
    delivery = events.emit_test(session, endpoint, actor_label=actor.label)
    record(session, actor=actor, action="webhook.test", entity_type="webhook", entity_id=endpoint.id,
           after={"delivery_id": delivery.id, "message_id": delivery.message_id})
    return delivery


def redeliver(session, *, actor: Actor, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    """Queue a finished delivery again (same webhook-id and body, a fresh retry schedule): after a receiver's bug
    was fixed, or an endpoint was enabled again."""
    endpoint = get(session, endpoint_id=endpoint_id)
    delivery = session.get(WebhookDelivery, delivery_id) if 0 < delivery_id <= ID_MAX else None
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound(f"Webhook {endpoint_id} has no delivery with id {delivery_id}.")
    if not endpoint.enabled:
        raise Conflict("This endpoint is disabled: enable it first, then send the delivery again.")
    if delivery.status not in (DeliveryStatus.FAILED, DeliveryStatus.DELIVERED):
        raise Conflict(f"This delivery is {delivery.status.value}: it will be attempted anyway.")
    before = {"status": delivery.status.value, "attempts": delivery.attempts}
    delivery.status, delivery.attempts, delivery.next_attempt_at = DeliveryStatus.PENDING, 0, utcnow()
    delivery.finished_at = delivery.lease_until = None
    session.flush()
    record(session, actor=actor, action="webhook.redeliver", entity_type="webhook", entity_id=endpoint.id,
           before=before, after={"delivery_id": delivery.id, "message_id": delivery.message_id,
                                 "event_type": delivery.event_type})
    return delivery


def recent_deliveries(session, endpoint_ids: list[int], *, per_endpoint: int = 10
                      ) -> dict[int, list[tuple[WebhookDelivery, list[WebhookAttempt]]]]:
    """The newest deliveries of each endpoint with their attempts (newest first), for the log views."""
    out: dict[int, list] = {i: [] for i in endpoint_ids}
    if not endpoint_ids:
        return out
    for endpoint_id in endpoint_ids:  # a few endpoints; each read is a short range of ix_webhook_deliveries_endpoint
        rows = session.scalars(sa.select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
                               .order_by(WebhookDelivery.id.desc()).limit(per_endpoint)).all()
        out[endpoint_id] = [(d, []) for d in rows]
    by_id = {d.id: attempts for items in out.values() for d, attempts in items}
    if by_id:
        for attempt in session.scalars(sa.select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(list(by_id)))
                                       .order_by(WebhookAttempt.id.desc())):
            by_id[attempt.delivery_id].append(attempt)
    return out


def disabled(session) -> list[WebhookEndpoint]:
    """Endpoints the worker turned off after a day of failures (shown on the console home)."""
    return session.scalars(sa.select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(False),
                                                            WebhookEndpoint.disabled_at.is_not(None))
                           .order_by(WebhookEndpoint.disabled_at.desc())).all()


LOG_RETENTION_DAYS = 30


def prune_due(session, now: datetime) -> str:
    """The periodic task (core.periodic): delete deliveries finished more than WEBHOOKS_LOG_RETENTION_DAYS ago,
    with their attempts (0 keeps them forever); the caller commits."""
    days = int(current_app.config.get("WEBHOOKS_LOG_RETENTION_DAYS", LOG_RETENTION_DAYS))
    gone = bulk.delete_older(session, WebhookDelivery.__table__.c.finished_at, now=now, days=days)
    return f"{gone} finished webhook deliveries deleted"
