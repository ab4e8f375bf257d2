"""The notifier's datasets for ops.exports: messages, their status history, opt-outs, inbound SMS and outbound
webhooks (endpoints without their secrets, deliveries, attempts). Texts
are as stored (personal links and codes masked, notifications.masking); a code still waiting to go out is
masked on the way out."""
import sqlalchemy as sa

from notifications import masking
from notifications.models import InboundMessage, Notification, NotificationEvent, OptOut
from notifications.outbound.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from ops import exports

_MESSAGE = exports.columns_except(Notification, "lease_until", "fair_key")


def _masked(row: dict) -> dict:
    for part in ("subject", "body", "html_body"):
        row[part] = masking.mask(row[part], template=row.get("template") or "")
    return row


def register() -> None:
    exports.register(exports.Dataset(
        "messages", "Every message: channel, recipient, account, broadcast, template, texts (masked), status, "
        "attempts, provider id, error, dates.", lambda: sa.select(*_MESSAGE), transform=_masked))
    exports.register(exports.Dataset(
        "message_events", "Each message's status history: every attempt's outcome and delivery receipt, with "
        "the provider's answer.", lambda: sa.select(*NotificationEvent.__table__.columns)))
    exports.register(exports.Dataset(
        "opt_outs", "Addresses that must not be messaged, per channel, with their source (an erased "
        "subscriber's is a keyed hash).", lambda: sa.select(*OptOut.__table__.columns)))
    exports.register(exports.Dataset(
        "inbound_sms", "SMS subscribers sent, with the keyword found and our reply (links masked).",
        lambda: sa.select(*InboundMessage.__table__.columns)))
    exports.register(exports.Dataset(
        "webhook_endpoints", "Outbound webhook endpoints: URL, events, state, dates (never their secrets).",
        lambda: sa.select(*exports.columns_except(WebhookEndpoint, "secret", "previous_secret")), personal=False))
    exports.register(exports.Dataset(
        "webhook_deliveries", "Every webhook event sent or to send: endpoint, event, the signed body, status.",
        lambda: sa.select(*exports.columns_except(WebhookDelivery, "lease_until")),
        personal=False))
    exports.register(exports.Dataset(
        "webhook_attempts", "Each delivery attempt: time, HTTP status, latency, error, the answer's first KiB.",
        lambda: sa.select(*WebhookAttempt.__table__.columns), personal=False))
