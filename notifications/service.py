"""Queue messages in the outbox (in the caller's transaction) and read them back."""
import sqlalchemy as sa

from core.db import utcnow
from notifications import priorities
from notifications.models import Channel, Notification, NotificationStatus


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

