"""Automated messages: incident updates with notify, the resolution notice, and coalesced recovery messages."""
from datetime import timedelta

import sqlalchemy as sa

from accounts import service as accounts
from core.db import db
from incidents import service as incidents
from notifications import templates
from notifications.models import Broadcast, Channel, Notification, NotificationStatus
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


def test_a_recovery_import_changing_three_categories_gives_one_message_per_channel(app):
    incident = make_incident()
    attach(incident.id, "A1", "A2")
    job = run_import(incident.id, RECOVERY_HEADER + "A1,contacts,recovered,,,\nA1,calendar,recovered,,,\n"
                     "A1,photos,recovered,,,\n", kind="recovery")
    assert job.status.value == "done", job.errors
    queued = rows(template="recovery")
    assert sorted(r.channel.value for r in queued) == ["email", "sms"]
    assert all(r.dedupe_key.startswith(("r", )) and r.status == NotificationStatus.QUEUED for r in queued)
    assert all(r.next_attempt_at >= r.created_at + timedelta(seconds=100) for r in queued)  # room to coalesce
    email = templates.render(next(r for r in queued if r.channel == Channel.EMAIL))
    assert "Good news" in email.subject and "We recovered your photos." in email.body


def test_a_quick_second_change_coalesces_and_a_later_one_gets_a_new_message(app):
    incident = make_incident()
    attach(incident.id, "A1")
    item = {"category": "photos", "state": "recovering"}
    accounts.update_recovery(db.session, actor=ACTOR, incident_id=incident.id, account_number="A1", items=[item])
    db.session.commit()
    accounts.update_recovery(db.session, actor=ACTOR, incident_id=incident.id, account_number="A1",
                             items=[{**item, "state": "recovered"}])
    db.session.commit()
    assert len(rows(template="recovery")) == 2  # still queued: the second edit is in the same message
    db.session.execute(sa.update(Notification).values(status=NotificationStatus.SENT))
    db.session.commit()
    accounts.update_recovery(db.session, actor=ACTOR, incident_id=incident.id, account_number="A1",
                             items=[{**item, "state": "lost"}])
    db.session.commit()
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
