"""Broadcast and message routes of the ops JSON API: read progress, retry failures (sending to an incident's
audience is accounts.broadcast_api: the notifier does not know incidents), and every message with its status
history (notifications.record).

Writes call the same functions as the console (notifications.broadcasts)."""
from urllib.parse import urlencode

from flask import jsonify, request

from core import paging
from core.db import db
from core.errors import NotFound, ValidationError
from notifications import broadcasts, record
from notifications.models import BroadcastKind, Channel, Notification, NotificationStatus
from ops.api import bp, iso, list_args, query_datetime, query_id, transactional
from ops.auth import current_actor
from ops.openapi import (CURSOR, DATE_TIME_IN, DATE_TIME_OUT, ID, PAGE_LIMIT, enum, nullable, obj, operation,
                         path_id, query, ref)


def broadcast_json(p: dict) -> dict:
    b = p["broadcast"]
    return {
        "id": b.id, "cause": b.cause, "kind": b.kind, "message": b.message, "subject": b.subject,
        "channels": list(b.channels), "audience": b.audience, "urgent": b.urgent, "recipients": b.recipients,
        "created_by": b.created_by, "created_at": iso(b.created_at), "counts": p["counts"],
        "failures": p["failures"], "sent_last_minute": p["sent_last_minute"], "eta_seconds": p["eta_seconds"],
        "staged": p["staged"],
    }


@bp.get("/broadcasts/<int:broadcast_id>")
def get_broadcast(broadcast_id: int):
    return jsonify(broadcast_json(broadcasts.progress(db.session, broadcast_id)))


@bp.post("/broadcasts/<int:broadcast_id>/retry")
@transactional
def retry_broadcast(broadcast_id: int):
    n = broadcasts.retry_failed(db.session, actor=current_actor(), broadcast_id=broadcast_id)
    db.session.flush()
    return jsonify({"requeued": n, **broadcast_json(broadcasts.progress(db.session, broadcast_id))})


# ---- messages -----------------------------------------------------------------------------------

def message_json(m: Notification, account_number: str | None) -> dict:
    return {
        "id": m.id, "channel": m.channel.value, "recipient": m.recipient, "account_number": account_number,
        "broadcast_id": m.broadcast_id, "template": m.template, "language": m.language,
        "subject": record.shown(m, "subject"), "body": record.shown(m, "body"), "status": m.status.value,
        "attempts": m.attempts, "priority": m.priority, "urgent": m.urgent, "segments": m.segments,
        "provider": m.provider, "provider_id": m.provider_id, "error_code": m.error_code,
        "error_message": m.error_message, "created_at": iso(m.created_at), "updated_at": iso(m.updated_at),
        "next_attempt_at": iso(m.next_attempt_at), "sent_at": iso(m.sent_at), "delivered_at": iso(m.delivered_at),
    }


def _message_filters() -> record.Filters:
    fields: dict = {}
    args = request.args
    incident_id, broadcast_id = query_id(fields, "incident"), query_id(fields, "broadcast")
    channel, status = args.get("channel"), args.get("status")
    if channel is not None and channel not in Channel._value2member_map_:
        fields["channel"] = "Choose one of: sms, email."
    if status is not None and status not in NotificationStatus._value2member_map_:
        fields["status"] = f"Choose one of: {', '.join(s.value for s in NotificationStatus)}."
    since, until = query_datetime(fields, "since"), query_datetime(fields, "until")
    account = args.get("account")
    if account is not None and not 1 <= len(account) <= 64:
        fields["account"] = "An account number: 1 to 64 characters."
    if fields:
        raise ValidationError("Some query parameters are not valid.", fields)
    return record.Filters(
        incident_id=incident_id, broadcast_id=broadcast_id, account_number=account,
        channel=Channel(channel) if channel else None, status=NotificationStatus(status) if status else None,
        since=since, until=until)


@bp.get("/messages")
def list_messages():
    """Every message, newest first, filtered; cursor-paginated (next_cursor, and a Link header)."""
    filters = _message_filters()
    limit, cursor = list_args()
    try:
        page = record.search(db.session, filters, limit=limit, cursor=cursor)
    except paging.BadCursor as e:
        raise ValidationError(str(e), {"cursor": str(e)}) from None
    numbers = record.account_numbers(db.session, page.rows)
    response = jsonify({"messages": [message_json(m, numbers.get(m.account_id)) for m in page.rows],
                        "next_cursor": page.next_cursor, "limit": limit})
    if page.next_cursor:
        response.headers["Link"] = f'<{_next_url(page.next_cursor)}>; rel="next"'
    return response


def _next_url(cursor: str) -> str:
    return f"{request.path}?{urlencode({**request.args.to_dict(), 'cursor': cursor})}"


@bp.get("/messages/<int:message_id>")
def get_message(message_id: int):
    m = db.session.get(Notification, message_id)
    if m is None:
        raise NotFound(f"No message with id {message_id}.")
    body = message_json(m, record.account_numbers(db.session, [m]).get(m.account_id))
    body["html_body"] = record.shown(m, "html_body")
    body["history"] = [{**step, "at": iso(step["at"])} for step in record.history(db.session, m)]
    return jsonify(body)


def openapi_piece() -> dict:
    """The broadcasts' and messages' paths and schemas of the ops API document (registered by
    notifications.wiring)."""
    channels = {"type": "array", "items": enum(Channel), "minItems": 1, "uniqueItems": True}
    count = {"type": "integer", "minimum": 0}
    body = {
        "id": {"type": "integer"}, "cause": {"type": "string"},
        "kind": enum(BroadcastKind),
        "message": {"type": "string"}, "subject": {"type": "string"}, "channels": channels,
        "audience": {"type": ["string", "object", "null"]}, "urgent": {"type": "boolean"},
        "recipients": count, "created_by": {"type": "string"}, "created_at": DATE_TIME_OUT,
        "counts": obj({s.value: count for s in NotificationStatus}, [s.value for s in NotificationStatus]),
        "failures": {"type": "array", "items": obj({
            "status": {"type": "string", "enum": ["failed", "undelivered", "suppressed"]},
            "code": {"type": "string"}, "message": {"type": "string"}, "count": count},
            ["status", "code", "message", "count"])},
        "sent_last_minute": count, "eta_seconds": count,
        # Queued messages of a large broadcast not yet moved into the outbox by the workers (counted in queued).
        "staged": count}
    broadcast = obj(body, list(body))
    retried = obj({"requeued": count, **body}, ["requeued", *body])
    broadcast_id = path_id("broadcast_id", "broadcast")
    maybe_text, maybe_time = {"type": ["string", "null"]}, nullable(DATE_TIME_OUT)
    message = {
        "id": {"type": "integer"}, "channel": enum(Channel), "recipient": {"type": "string"},
        "account_number": maybe_text, "broadcast_id": {"type": ["integer", "null"]}, "template": {"type": "string"},
        "language": {"type": "string"}, "subject": maybe_text, "body": maybe_text, "status": enum(NotificationStatus),
        "attempts": count, "priority": {"type": "integer"}, "urgent": {"type": "boolean"}, "segments": count,
        "provider": maybe_text, "provider_id": maybe_text, "error_code": maybe_text, "error_message": maybe_text,
        "created_at": DATE_TIME_OUT, "updated_at": DATE_TIME_OUT, "next_attempt_at": DATE_TIME_OUT,
        "sent_at": maybe_time, "delivered_at": maybe_time}
    step = obj({"at": DATE_TIME_OUT, "status": enum(NotificationStatus), "source": {"type": "string"},
                "error_code": maybe_text, "error_message": maybe_text,
                "payload": {"type": ["object", "null"],
                            "description": "The provider's answer or callback, without the text or addresses."}},
               ["at", "status", "source", "error_code", "error_message", "payload"])
    detail = {**message, "html_body": maybe_text, "history": {"type": "array", "items": step}}
    message_list = obj({"messages": {"type": "array", "items": ref("Message")},
                        "next_cursor": {"type": ["string", "null"]}, "limit": count},
                       ["messages", "next_cursor", "limit"])
    filters = [
        query("incident", ID, "Only messages of broadcasts about this incident (updates, offers, operators')."),
        query("broadcast", ID, "Only this broadcast's messages."),
        query("account", {"type": "string", "minLength": 1, "maxLength": 64}, "Only messages to this account number."),
        query("channel", enum(Channel), "Only this channel."),
        query("status", enum(NotificationStatus), "Only messages in this status."),
        query("since", DATE_TIME_IN, "Queued at or after this time."),
        query("until", DATE_TIME_IN, "Queued before this time."),
        query("limit", PAGE_LIMIT, "How many per page."),
        query("cursor", CURSOR, "next_cursor of the previous page."),
    ]
    return {
        "tags": [{"name": "broadcasts"}, {"name": "messages"}],
        "schemas": {"Broadcast": broadcast, "BroadcastRetried": retried, "Message": obj(message, list(message)),
                    "MessageDetail": obj(detail, list(detail)), "MessageList": message_list},
        "paths": {
            "/broadcasts/{broadcast_id}": {"get": operation(
                "A broadcast with its progress", "broadcasts", "getBroadcast", ok=(200, ref("Broadcast")),
                params=[broadcast_id], not_found=True)},
            "/broadcasts/{broadcast_id}/retry": {"post": operation(
                "Queue the broadcast's failed messages again (not opt-outs)", "broadcasts", "retryBroadcast",
                ok=(200, ref("BroadcastRetried")), params=[broadcast_id], not_found=True, idempotent=True)},
            "/messages": {"get": operation(
                "Every message, newest first, with filters and a cursor (texts never hold a live link or code)",
                "messages", "listMessages", ok=(200, ref("MessageList")), params=filters)},
            "/messages/{message_id}": {"get": operation(
                "A message with its status history and the provider's answers", "messages", "getMessage",
                ok=(200, ref("MessageDetail")), params=[path_id("message_id", "message")], not_found=True)},
        },
    }

