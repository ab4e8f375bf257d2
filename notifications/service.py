"""Queue messages in the outbox (in the caller's transaction) and read them back."""
import sqlalchemy as sa

from core.db import utcnow
from notifications import priorities
from notifications.models import Channel, Notification, NotificationStatus
from notifications.outbound import events as webhook_events

MESSAGE_FAILED = "message.failed"  # the outbound webhook event (registered by notifications.outbound.wiring)


def enqueue(session, *, dedupe_key: str, channel: Channel, recipient: str, body: str, subject: str = "",
            html_body: str | None = None, template: str = "", language: str = "en", account_id: int | None = None,
            urgent: bool = False, suppressed: str | None = None) -> Notification | None:
    """Add one message to the outbox unless its dedupe_key is already there; returns the new row or None.

    The row commits with the caller's change, so the message exists exactly when the change does.
    `suppressed` (an error code) records a message that must not go out, e.g. a code for an unknown input.
    Its priority class comes from its template (notifications.priorities); it takes the head of its class,
    so it goes next."""
    exists = session.scalar(sa.select(Notification.id).where(Notification.dedupe_key == dedupe_key))
    if exists is not None:
        return None
    now = utcnow()
    channel = Channel(channel)
    priority = priorities.of(template, urgent=urgent)
    notification = Notification(priority=int(priority),
                                fair_key=priorities.head(session, channel=channel.value, priority=priority),dedupe_key=dedupe_key, channel=channel, recipient=recipient, body=body,
                                subject=subject, html_body=html_body, template=template, language=language,
                                account_id=account_id, urgent=urgent, created_at=now, updated_at=now,
                                status=NotificationStatus.SUPPRESSED if suppressed else NotificationStatus.QUEUED,
                                error_code=suppressed, next_attempt_at=now)
    session.add(notification)
    session.flush()
    return notification


def message_json(message: Notification, *, status: NotificationStatus, error_code: str | None,
                 error_message: str | None) -> dict:
    """A message as outbound webhooks show it: what and to whom by id (never the address or the text)."""
    return {"id": message.id, "channel": Channel(message.channel).value, "template": message.template,
            "status": NotificationStatus(status).value, "attempts": message.attempts, "urgent": message.urgent,
            "priority": message.priority, "account_id": message.account_id, "broadcast_id": message.broadcast_id,
            "error_code": error_code, "error_message": error_message,
            "created_at": webhook_events.timestamp(message.created_at)}


def tell_failed(session, message: Notification, *, status: NotificationStatus = NotificationStatus.FAILED,
                error_code: str | None, error_message: str | None) -> int:
    """Emit message.failed for a message that failed for good (the worker gave up, or the provider reported it
    failed or undelivered), in the transaction that records it."""
    return webhook_events.emit(session, MESSAGE_FAILED, {"message": message_json(
        message, status=status, error_code=error_code, error_message=error_message)})
