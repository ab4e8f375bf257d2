"""What the notifier keeps about people only for a while: the text of messages that ended long ago is
replaced by a note (the row, its status and every count stay), and old inbound SMS are deleted (the opt-outs
they caused stay)."""
from datetime import timedelta

import sqlalchemy as sa

from core import periodic
from core.db import db, utcnow
from notifications import service
from notifications.models import Channel, InboundMessage, Notification, NotificationStatus, OptOut


def message(key: str, status: NotificationStatus, days_ago: float) -> Notification:
    n = service.enqueue(db.session, dedupe_key=key, channel=Channel.SMS, recipient="+12065550100",
                        body=f"Ann, your photos: {key}", subject="s")
    n.status, n.updated_at = status, utcnow() - timedelta(days=days_ago)
    return n


def test_old_message_texts_are_removed_and_old_inbound_sms_deleted_counts_and_opt_outs_stay(app):
    old_sent = message("old-sent", NotificationStatus.DELIVERED, 91)
    old_queued = message("old-queued", NotificationStatus.QUEUED, 91)  # not final: it still has to go
    recent = message("recent", NotificationStatus.SENT, 10)
    now = utcnow()
    db.session.add_all([
        InboundMessage(provider_id="SM" + "1" * 32, from_number="+12065550100", to_number="+15005550006",
                       body="STOP", keyword="stop", received_at=now - timedelta(days=91)),
        InboundMessage(provider_id="SM" + "2" * 32, from_number="+12065550101", to_number="+15005550006",
                       body="STATUS", keyword="status", received_at=now - timedelta(days=1)),
        OptOut(channel=Channel.SMS, address="+12065550100", source="sms:STOP")])
    db.session.commit()

    outcome = periodic.run_due()["messages.retention"]

    assert outcome == "1 message texts removed, 1 inbound SMS deleted"
    db.session.expire_all()
    pruned = db.session.get(Notification, old_sent.id)
    assert pruned.body == "(text removed after 90 days: retention)" and pruned.subject == "" and pruned.data is None
    assert pruned.status == NotificationStatus.DELIVERED and pruned.recipient == "+12065550100"
    assert db.session.get(Notification, old_queued.id).body == "Ann, your photos: old-queued"
    assert db.session.get(Notification, recent.id).body == "Ann, your photos: recent"
    assert db.session.scalars(sa.select(InboundMessage.body)).all() == ["STATUS"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OptOut)) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 3
