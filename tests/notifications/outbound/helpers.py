"""Helpers for the outbound webhook tests: an admin's API client, the real receiver, delivering what is due."""
from datetime import timedelta

import sqlalchemy as sa

from core.db import db, utcnow
from notifications.outbound import delivery
from notifications.outbound.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from ops import service as ops_service
from ops.audit import Actor
from tests.conftest import make_operator
from tests.ops.api_client import ApiClient


def api_as(client, role: str) -> ApiClient:
    """An API client whose token belongs to an operator with `role` (answers checked against the document)."""
    operator = make_operator(role, email=f"{role}-api@example.com")
    _token, secret = ops_service.create_token(db.session, actor=Actor.cli("test"), operator_id=operator.id)
    db.session.commit()
    return ApiClient(client, secret)


def register(api, url: str, events=("incident.created",), **extra) -> dict:
    response = api.post("/webhooks", json={"url": url, "events": list(events), **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def deliver(**kwargs) -> int:
    """Attempt what is due now (or at `now`), as the worker does each tick."""
    db.session.commit()
    n = delivery.deliver_due(**kwargs)
    db.session.expire_all()
    return n


def make_due(endpoint_id: int | None = None) -> None:
    """Move every waiting retry's time to now, as if its backoff had passed."""
    q = sa.update(WebhookDelivery).where(WebhookDelivery.status == DeliveryStatus.PENDING)
    if endpoint_id is not None:
        q = q.where(WebhookDelivery.endpoint_id == endpoint_id)
    db.session.execute(q.values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def deliveries(endpoint_id: int | None = None) -> list[WebhookDelivery]:
    q = sa.select(WebhookDelivery).order_by(WebhookDelivery.id)
    if endpoint_id is not None:
        q = q.where(WebhookDelivery.endpoint_id == endpoint_id)
    return db.session.scalars(q).all()


def attempts(delivery_id: int) -> list[WebhookAttempt]:
    return db.session.scalars(sa.select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
                              .order_by(WebhookAttempt.id)).all()
