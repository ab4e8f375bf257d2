"""The event types webhooks can subscribe to, and `emit`, which queues an event for every endpoint that wants it.

The notifier knows no incident or offer: each domain registers the event types it emits from its own
`init_app` (`register`), and calls `emit(session, type, data)` where the change happens, in the change's own
transaction. `emit` adds one delivery row per enabled, subscribed endpoint to the caller's session, so a
rollback emits nothing and a commit emits exactly what was committed."""
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from core.db import utcnow
from notifications.outbound.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

TEST_EVENT = "webhook.test"  # sent by POST /webhooks/{id}/test to that endpoint only; nobody subscribes to it


@dataclass(frozen=True)
class EventType:
    """An event endpoints can subscribe to; the description is shown on the console and in the API document."""

    name: str  # "incident.created"
    description: str


# The registry: filled by each domain's init_app (incidents, accounts, offers, the notifier itself).
_types: dict[str, EventType] = {}


def register(event: EventType) -> None:
    """Add an event type (registering the same name again, as each app built in a process does, replaces it)."""
    _types[event.name] = event


def types() -> list[EventType]:
    """The registered event types, by name."""
    return sorted(_types.values(), key=lambda e: e.name)


def names() -> list[str]:
    """The registered event type names, sorted."""
    return [e.name for e in types()]


def timestamp(at: datetime) -> str:
    """UTC ISO 8601 with milliseconds and a Z, as the /api/v2 shapes write times."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def body(event_type: str, data: dict, at: datetime) -> str:
    """The JSON sent: {"type", "timestamp", "data"} (compact, so the signed bytes are the bytes sent)."""
    return json.dumps({"type": event_type, "timestamp": timestamp(at), "data": data},
                      ensure_ascii=False, separators=(",", ":"))


def new_message_id() -> str:
    """A webhook-id: unique per event and endpoint, the same on each retry."""
    return "msg_" + secrets.token_urlsafe(18)


def subscribers(session, event_type: str) -> list[int]:
    """Ids of the enabled endpoints subscribed to `event_type` (a few rows; filtered here so the JSON column
    needs no dialect-specific query)."""
    rows = session.execute(sa.select(WebhookEndpoint.id, WebhookEndpoint.events)
                           .where(WebhookEndpoint.enabled.is_(True))).all()
    return [row.id for row in rows if event_type in (row.events or ())]


def emit(session, event_type: str, data: dict | Callable[[], dict], *, at: datetime | None = None) -> int:
    """Queue `event_type` for every endpoint subscribed to it, in the caller's transaction; returns how many.

    `data` may be a function: it is called only when some endpoint listens (a summary costs a query)."""
    if event_type not in _types:
        raise KeyError(f"unknown webhook event type {event_type!r}: register it first")
    endpoint_ids = subscribers(session, event_type)
    if not endpoint_ids:
        return 0
    return _queue(session, endpoint_ids, event_type, data() if callable(data) else data, at or utcnow())


def emit_test(session, endpoint: WebhookEndpoint, *, actor_label: str) -> WebhookDelivery:
    """Queue a test event for one endpoint (whatever it subscribed to)."""
    now = utcnow()
    delivery = WebhookDelivery(endpoint_id=endpoint.id, message_id=new_message_id(), event_type=TEST_EVENT,
                               body=body(TEST_EVENT, {"webhook_id": endpoint.id, "requested_by": actor_label,
                                                      "message": "A test event from Lifeboat."}, now),
                               status=DeliveryStatus.PENDING, next_attempt_at=now, created_at=now)
    session.add(delivery)
    session.flush()
    return delivery


def _queue(session, endpoint_ids: list[int], event_type: str, data: dict, at: datetime) -> int:
    text = body(event_type, data, at)
    session.execute(sa.insert(WebhookDelivery), [
        {"endpoint_id": endpoint_id, "message_id": new_message_id(), "event_type": event_type, "body": text,
         "status": DeliveryStatus.PENDING, "attempts": 0, "next_attempt_at": at, "created_at": at}
        for endpoint_id in endpoint_ids])
    return len(endpoint_ids)
