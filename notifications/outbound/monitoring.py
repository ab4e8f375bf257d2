"""Webhooks on /metrics, for alerting beside the notifier's figures: endpoints by state (enabled, failing,
disabled) and deliveries waiting or in flight. Alert on lifeboat_webhook_endpoints{state="disabled"} > 0, say.
Two small counts: the endpoints are few, and waiting deliveries are read from ix_webhook_deliveries_due."""
import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily

from notifications.outbound.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint


def collect(session):
    """The webhooks' metric families (prometheus_client), read now."""
    endpoints = GaugeMetricFamily(
        "lifeboat_webhook_endpoints", "Webhook endpoints by state (failing: enabled, but no delivery succeeded "
        "since a failure; disabled: by an admin, or by the worker after a day of failures).", labels=["state"])
    e = WebhookEndpoint
    enabled, failing, disabled = session.execute(sa.select(
        sa.func.count(sa.case((sa.and_(e.enabled.is_(True), e.failing_since.is_(None)), 1))),
        sa.func.count(sa.case((sa.and_(e.enabled.is_(True), e.failing_since.is_not(None)), 1))),
        sa.func.count(sa.case((e.enabled.is_(False), 1))))).one()
    for state, n in (("enabled", enabled), ("failing", failing), ("disabled", disabled)):
        endpoints.add_metric([state], n)
    yield endpoints
    waiting = GaugeMetricFamily("lifeboat_webhook_deliveries", "Webhook deliveries not yet finished, by status "
                                "(pending: waiting for an attempt or a retry; sending: claimed by a worker).",
                                labels=["status"])
    counts = dict(session.execute(
        sa.select(WebhookDelivery.status, sa.func.count())
        .where(WebhookDelivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]))
        .group_by(WebhookDelivery.status)).all())
    for status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING):
        waiting.add_metric([status.value], counts.get(status, 0))
    yield waiting
