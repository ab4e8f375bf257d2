"""Automated messages: incident updates with notify, the resolution notice, and coalesced recovery messages."""
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from accounts import service as accounts
from core.db import db, utcnow
from incidents import service as incidents
from notifications import monitoring, staging, templates
from notifications.priorities import Priority
from notifications.models import Broadcast, Channel, Notification, NotificationStatus, StagedMessage
from tests.accounts.factories import ACTOR, RECOVERY_HEADER, attach, make_incident, run_import
from tests.notifications.helpers import rows


def _broadcasts():
    return db.session.scalars(sa.select(Broadcast).order_by(Broadcast.id)).all()


def test_an_update_with_notify_queues_an_update_to_every_affected_account(app, api):  # noqa: F811
    incident = make_incident()
    attach(incident.id, "A1", "A2", "A3")
    response = api.post(f"/incidents/{incident.id}/updates",
                        json={"status": "identified", "message": "We found the **cause**.", "notify": True,
                              "urgent": True})
    assert response.status_code == 201
    [b] = _broadcasts()
    assert (b.kind, b.cause, b.recipients, b.urgent) == ("update", f"incident:{incident.id}", 6, True)
    queued = rows(broadcast_id=b.id)
    assert len(queued) == 6 and all(r.urgent and r.body is None for r in queued)
    email = templates.render(next(r for r in queued if r.channel == Channel.EMAIL))
    assert email.subject == incident.name and "We found the cause." in email.body and "/m/" in email.body


def test_an_update_without_notify_sends_nothing(app, api):  # noqa: F811
    incident = make_incident()
    attach(incident.id, "A1")
    assert api.post(f"/incidents/{incident.id}/updates", json={"message": "Still on it."}).status_code == 201
    assert _broadcasts() == [] and rows() == []


def test_the_messages_of_an_update_live_and_die_with_its_transaction(app):
    incident = make_incident()
    attach(incident.id, "A1", "A2")
    incidents.post_update(db.session, actor=ACTOR, incident_id=incident.id,
                          data={"message": "Update", "notify": True})
    db.session.flush()
    assert len(rows()) == 4  # in the same transaction as the update...
    db.session.rollback()
    assert rows() == [] and _broadcasts() == []  # ...so a rolled-back request queues nothing


def test_resolving_with_notify_sends_the_final_notice_and_jinja_in_updates_is_plain_text(app):
    incident = make_incident()
    attach(incident.id, "A1")
    incidents.post_update(db.session, actor=ACTOR, incident_id=incident.id,
                          data={"status": "resolved", "message": "All fixed {{ name }}.", "notify": True})
    db.session.commit()
    [b] = _broadcasts()
    assert b.kind == "resolution" and b.recipients == 2
    sms = templates.render(rows(channel=Channel.SMS)[0])
    assert sms.body.startswith("All fixed {{ name }}.")


def test_a_new_incident_filed_with_notify_has_no_one_to_tell_yet(app):
    incidents.create_incident(db.session, actor=ACTOR, data={"name": "X", "message": "Hi", "notify": True})
    db.session.commit()
    [b] = _broadcasts()
    assert b.kind == "update" and b.recipients == 0


def _moved() -> None:
    """What the workers do first: move staged notices into the outbox (notifications.staging)."""
    staging.Expander(sessionmaker(bind=db.engine, expire_on_commit=False)).drain()
    db.session.expire_all()


# "staged": the notices go the way a large import's go (BROADCAST_INLINE_MAX=0): staged, then moved.
STAGED = pytest.mark.parametrize("inline_max", [20_000, 0], ids=["in-the-transaction", "staged"])


@STAGED
def test_a_recovery_import_changing_three_categories_gives_one_message_per_channel(app, inline_max):
    app.config["BROADCAST_INLINE_MAX"] = inline_max
    incident = make_incident()
    attach(incident.id, "A1", "A2")
    job = run_import(incident.id, RECOVERY_HEADER + "A1,contacts,recovered,,,\nA1,calendar,recovered,,,\n"
                     "A1,photos,recovered,,,\n", kind="recovery")
    assert job.status.value == "done", job.errors
    assert len(rows(template="recovery")) == (2 if inline_max else 0)
    # Queued either way, and held for the two minutes edits have to coalesce (the queue figures' "held").
    cells = monitoring.queue(db.session, now=utcnow())
    assert [(cells[(c, int(Priority.RECOVERY))].held, cells[(c, int(Priority.RECOVERY))].due) for c in ("sms", "email")] \
        == [(1, 0), (1, 0)]
    _moved()
    queued = rows(template="recovery")
    assert sorted(r.channel.value for r in queued) == ["email", "sms"]
    assert all(r.dedupe_key.startswith(("r", )) and r.status == NotificationStatus.QUEUED for r in queued)
    assert all(r.next_attempt_at >= r.created_at + timedelta(seconds=100) for r in queued)  # room to coalesce
    email = templates.render(next(r for r in queued if r.channel == Channel.EMAIL))
    assert "Good news" in email.subject and "We recovered your photos." in email.body


@STAGED
def test_a_quick_second_change_coalesces_and_a_later_one_gets_a_new_message(app, inline_max):
    app.config["BROADCAST_INLINE_MAX"] = inline_max
    incident = make_incident()
    attach(incident.id, "A1")
    item = {"category": "photos", "state": "recovering"}
    accounts.update_recovery(db.session, actor=ACTOR, incident_id=incident.id, account_number="A1", items=[item])
    db.session.commit()
    # (Staged: the second edit moves the first one's notices into the outbox, where it finds them queued.)
    accounts.update_recovery(db.session, actor=ACTOR, incident_id=incident.id, account_number="A1",
                             items=[{**item, "state": "recovered"}])
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StagedMessage)) == 0
    assert len(rows(template="recovery")) == 2  # still queued: the second edit is in the same message
    db.session.execute(sa.update(Notification).values(status=NotificationStatus.SENT))
    db.session.commit()
    accounts.update_recovery(db.session, actor=ACTOR, incident_id=incident.id, account_number="A1",
                             items=[{**item, "state": "lost"}])
    db.session.commit()
    _moved()
    assert len(rows(template="recovery")) == 4


def test_a_note_only_change_sends_nothing(app):
    incident = make_incident()
    attach(incident.id, "A1")
    item = {"category": "photos", "state": "recovering"}
    accounts.update_recovery(db.session, actor=ACTOR, incident_id=incident.id, account_number="A1", items=[item])
    db.session.execute(sa.update(Notification).values(status=NotificationStatus.SENT))
    db.session.commit()
    accounts.update_recovery(db.session, actor=ACTOR, incident_id=incident.id, account_number="A1",
                             items=[{**item, "note": "copying"}])
    db.session.commit()
    assert len(rows(template="recovery")) == 2
