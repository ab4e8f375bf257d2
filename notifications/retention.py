"""Retention of what the notifier keeps about people beyond what its counts need: the text of old messages
and the inbound SMS log. A scheduled task (daily) applies it:
- a message that reached a final state more than MESSAGE_BODY_RETENTION_DAYS (default 90) ago keeps its
  row (recipient, status, times, provider id: every count and the delivery record stay right), but its
  subject, text, HTML and template fields are replaced by a note saying they were removed;
- inbound SMS older than INBOUND_SMS_RETENTION_DAYS (default 90) are deleted. An opt-out they caused lives on
  in `opt_outs`, which is never pruned.
0 turns either off."""
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from core import bulk
from notifications.models import InboundMessage, Notification, NotificationStatus

MESSAGE_BODY_DAYS, INBOUND_DAYS = 90, 90
FINAL = (NotificationStatus.SENT, NotificationStatus.DELIVERED, NotificationStatus.UNDELIVERED,
         NotificationStatus.FAILED, NotificationStatus.SUPPRESSED)
REMOVED = "(text removed after {days} days: retention)"


def prune(session, *, now: datetime, body_days: int, inbound_days: int) -> str:
    """Apply both retentions (0 days: keep forever); the caller commits. Returns what was done."""
    bodies = 0
    if body_days > 0:
        removed = REMOVED.format(days=body_days)
        bodies = session.execute(
            sa.update(Notification)
            .where(Notification.status.in_(FINAL), Notification.updated_at < now - timedelta(days=body_days),
                   sa.or_(Notification.body != removed, Notification.body.is_(None)))
            .values(subject="", body=removed, html_body=None, data=None)
            .execution_options(synchronize_session=False)).rowcount
    inbound = bulk.delete_older(session, InboundMessage.__table__.c.received_at, now=now, days=inbound_days)
    return f"{bodies} message texts removed, {inbound} inbound SMS deleted"


def prune_due(session, now: datetime) -> str:
    """The periodic task (core.periodic), with the configured retentions."""
    config = current_app.config
    return prune(session, now=now, body_days=int(config.get("MESSAGE_BODY_RETENTION_DAYS", MESSAGE_BODY_DAYS)),
                 inbound_days=int(config.get("INBOUND_SMS_RETENTION_DAYS", INBOUND_DAYS)))
