"""Webhook routes of the ops JSON API (admin only: an endpoint's URL may carry credentials, and its secret
signs what we send), and their piece of the OpenAPI document. The console calls the same service."""
from flask import current_app, jsonify, url_for

from core.db import db
from notifications.outbound import events, service
from notifications.outbound.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from core.errors import ValidationError
from ops.api import bp, created, iso, json_body, query_int, requires, transactional
from ops.auth import current_actor
from ops.models import Role
from ops.openapi import DATE_TIME_OUT, enum, nullable, obj, operation, path_id, query, ref, text


def webhook_json(e: WebhookEndpoint) -> dict:
    """An endpoint as the API shows it: everything but its secret."""
    return {"id": e.id, "url": e.url, "events": list(e.events), "description": e.description,
            "enabled": e.enabled, "failing_since": iso(e.failing_since), "disabled_at": iso(e.disabled_at),
            "disabled_reason": e.disabled_reason, "created_by": e.created_by, "created_at": iso(e.created_at),
            "updated_at": iso(e.updated_at), "secret_rotated_at": iso(e.secret_rotated_at),
            "previous_secret_until": iso(e.previous_secret_until)}


def attempt_json(a: WebhookAttempt) -> dict:
    """One attempt of a delivery, as its log shows it."""
    return {"attempt": a.attempt, "at": iso(a.at), "status_code": a.status_code, "latency_ms": a.latency_ms,
            "outcome": a.outcome, "error": a.error, "response_excerpt": a.response_excerpt}


def delivery_json(d: WebhookDelivery, attempts: list[WebhookAttempt] = ()) -> dict:
    """A delivery with its attempts (newest first) under "log"."""
    return {"id": d.id, "message_id": d.message_id, "event_type": d.event_type, "status": d.status.value,
            "attempts": d.attempts, "next_attempt_at": iso(d.next_attempt_at),
            "last_status_code": d.last_status_code, "last_error": d.last_error, "created_at": iso(d.created_at),
            "finished_at": iso(d.finished_at), "log": [attempt_json(a) for a in attempts]}


KEEP_PREVIOUS = {"type": "integer", "minimum": 0, "maximum": service.KEEP_PREVIOUS_MAX_HOURS, "default": 0}


def _allow_private() -> bool:
    return bool(current_app.config.get("WEBHOOKS_ALLOW_PRIVATE_TARGETS"))


@bp.get("/webhooks")
@requires(Role.ADMIN)
def list_webhooks():
    return jsonify({"webhooks": [webhook_json(e) for e in service.list_all(db.session)]})


@bp.post("/webhooks")
@requires(Role.ADMIN)
@transactional
def create_webhook():
    # With an Idempotency-Key this answer, secret included, is kept to replay it to the same token's retry.
    endpoint, secret = service.create(db.session, actor=current_actor(), data=json_body("WebhookCreate"),
                                      allow_private=_allow_private())
    response = created({**webhook_json(endpoint), "secret": secret},
                       url_for("api.get_webhook", endpoint_id=endpoint.id))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/webhooks/<int:endpoint_id>")
@requires(Role.ADMIN)
def get_webhook(endpoint_id: int):
    endpoint = service.get(db.session, endpoint_id=endpoint_id)
    recent = service.recent_deliveries(db.session, [endpoint.id], per_endpoint=20)[endpoint.id]
    return jsonify({**webhook_json(endpoint), "deliveries": [delivery_json(d, a) for d, a in recent]})


@bp.patch("/webhooks/<int:endpoint_id>")
@requires(Role.ADMIN)
@transactional
def update_webhook(endpoint_id: int):
    endpoint = service.update(db.session, actor=current_actor(), endpoint_id=endpoint_id,
                              data=json_body("WebhookUpdate"), allow_private=_allow_private())
    return jsonify(webhook_json(endpoint))


@bp.post("/webhooks/<int:endpoint_id>/rotate-secret")
@requires(Role.ADMIN)
@transactional
def rotate_webhook_secret(endpoint_id: int):
    fields: dict = {}
    keep = query_int(fields, "keep_previous_hours", KEEP_PREVIOUS)
    if fields:
        raise ValidationError("Please correct the query parameters.", fields)
    endpoint, secret = service.rotate_secret(db.session, actor=current_actor(), endpoint_id=endpoint_id,
                                             keep_previous_hours=keep)
    response = jsonify({**webhook_json(endpoint), "secret": secret})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/webhooks/<int:endpoint_id>")
@requires(Role.ADMIN)
@transactional
def delete_webhook(endpoint_id: int):
    service.delete(db.session, actor=current_actor(), endpoint_id=endpoint_id)
    return "", 204


@bp.post("/webhooks/<int:endpoint_id>/test")
@requires(Role.ADMIN)
@transactional
def test_webhook(endpoint_id: int):
    return jsonify(delivery_json(service.send_test(db.session, actor=current_actor(), endpoint_id=endpoint_id)))


@bp.post("/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver")
@requires(Role.ADMIN)
@transactional
def redeliver_webhook(endpoint_id: int, delivery_id: int):
    delivery = service.redeliver(db.session, actor=current_actor(), endpoint_id=endpoint_id, delivery_id=delivery_id)
    return jsonify(delivery_json(delivery))


def openapi_piece() -> dict:
    """The webhooks' paths and schemas (registered by notifications.wiring); event names from the registry."""
    names = events.names()
    event_list = {"type": "array", "items": {"type": "string", "enum": names}, "minItems": 1, "uniqueItems": True,
                  "description": "Event types to receive: " + ", ".join(names) + "."}
    url = text(2000, blank=False, one_line=True,
               description="https only, to a public address (WEBHOOKS_ALLOW_PRIVATE_TARGETS=true also allows "
                           "plain http and private, loopback and link-local addresses).")
    description = text(service.DESCRIPTION_MAX)
    when = nullable(DATE_TIME_OUT)
    webhook = {"id": {"type": "integer"}, "url": {"type": "string"}, "events": {"type": "array",
                                                                               "items": {"type": "string"}},
               "description": {"type": "string"}, "enabled": {"type": "boolean"}, "failing_since": when,
               "disabled_at": when, "disabled_reason": {"type": ["string", "null"]},
               "created_by": {"type": "string"}, "created_at": DATE_TIME_OUT, "updated_at": DATE_TIME_OUT,
               "secret_rotated_at": when,
               "previous_secret_until": {**when, "description": "Until then requests are also signed with the "
                                                               "secret before the last rotation."}}
    secret = {"type": "string", "pattern": "^whsec_[A-Za-z0-9+/]+={0,2}$",
              "description": "The signing secret (Standard Webhooks format), shown only in this answer."}
    attempt = obj({"attempt": {"type": "integer"}, "at": DATE_TIME_OUT, "status_code": {"type": ["integer", "null"]},
                   "latency_ms": {"type": "integer"}, "outcome": enum(["delivered", "retry", "failed"]),
                   "error": {"type": ["string", "null"]}, "response_excerpt": {"type": "string"}})
    delivery = obj({"id": {"type": "integer"}, "message_id": {"type": "string"}, "event_type": {"type": "string"},
                    "status": enum(DeliveryStatus), "attempts": {"type": "integer"}, "next_attempt_at": DATE_TIME_OUT,
                    "last_status_code": {"type": ["integer", "null"]}, "last_error": {"type": ["string", "null"]},
                    "created_at": DATE_TIME_OUT, "finished_at": when,
                    "log": {"type": "array", "items": ref("WebhookAttempt")}})
    endpoint_id = path_id("endpoint_id", "webhook")
    tag = "webhooks"
    return {
        "tags": [{"name": tag, "description": "Outbound webhooks, signed per Standard Webhooks (admin only)."}],
        "schemas": {
            "WebhookCreate": obj({"url": url, "events": event_list, "description": description}, ["url", "events"]),
            "WebhookUpdate": obj({"url": url, "events": event_list, "description": description,
                                  "enabled": {"type": "boolean"}}),
            "Webhook": obj(webhook, list(webhook)),
            "WebhookWithSecret": obj({**webhook, "secret": secret}, [*webhook, "secret"]),
            "WebhookDetail": obj({**webhook, "deliveries": {"type": "array", "items": ref("WebhookDelivery")}},
                                 [*webhook, "deliveries"]),
            "WebhookList": obj({"webhooks": {"type": "array", "items": ref("Webhook")}}, ["webhooks"]),
            "WebhookDelivery": delivery,
            "WebhookAttempt": attempt,
        },
        "paths": {
            "/webhooks": {
                "get": operation("Webhook endpoints", tag, "listWebhooks", ok=(200, ref("WebhookList"))),
                "post": operation("Register an endpoint; the answer holds its secret, shown once", tag,
                                  "createWebhook", ok=(201, ref("WebhookWithSecret")), body="WebhookCreate"),
            },
            "/webhooks/{endpoint_id}": {
                "get": operation("An endpoint with its recent deliveries and their attempts", tag, "getWebhook",
                                 ok=(200, ref("WebhookDetail")), params=[endpoint_id]),
                "patch": operation("Change an endpoint's url, events, description or enabled", tag,
                                   "updateWebhook", ok=(200, ref("Webhook")), body="WebhookUpdate",
                                   params=[endpoint_id]),
                "delete": operation("Delete an endpoint and its delivery log", tag, "deleteWebhook",
                                    ok=(204, None), params=[endpoint_id]),
            },
            "/webhooks/{endpoint_id}/rotate-secret": {"post": operation(
                "Replace the signing secret; the answer holds the new one, shown once", tag, "rotateWebhookSecret",
                ok=(200, ref("WebhookWithSecret")), idempotent=True, params=[endpoint_id, query(
                    "keep_previous_hours", KEEP_PREVIOUS,
                    "Also sign with the old secret for this many hours (0 to 72; default 0: the old one stops at "
                    "once), so the receiver can switch without refusing requests: webhook-signature then holds "
                    "two signatures.")])},
            "/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver": {"post": operation(
                "Send a finished delivery again (same webhook-id and body, a fresh retry schedule)", tag,
                "redeliverWebhook", ok=(200, ref("WebhookDelivery")),
                params=[endpoint_id, path_id("delivery_id", "delivery")], conflict=True, idempotent=True)},
            "/webhooks/{endpoint_id}/test": {"post": operation(
                "Queue a test event (type webhook.test) to this endpoint", tag, "testWebhook",
                ok=(200, ref("WebhookDelivery")), params=[endpoint_id], conflict=True, idempotent=True)},
        },
    }
