"""Priority classes and fairness: a higher class always goes first, a small broadcast shares the channel with
a large older one of its class, and a backlog on one channel never holds up the other."""
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from accounts import audiences
from core.db import db
from notifications import broadcasts, priorities, service, worker
from notifications.models import Channel, Notification
from notifications.priorities import Priority
from ops.audit import Actor
from tests.notifications.helpers import add_accounts, make_incident
from tests.notifications.fakes import Clock, Recording, make_worker

TEMPLATES = Path(__file__).resolve().parents[2] / "notifications" / "message_templates"


def test_every_message_template_has_a_class_and_an_unknown_kind_is_refused():
    kinds = {p.name.split(".")[0] for p in TEMPLATES.iterdir() if not p.name.startswith("_")}  # _: included parts
    assert kinds <= set(priorities.KINDS)
    assert priorities.of("verification_code") == Priority.CODE
    assert priorities.of("verification_code", urgent=True) == Priority.CODE  # urgent never lowers a code
    assert priorities.of("broadcast") == Priority.UPDATE
    assert priorities.of("broadcast", urgent=True) == Priority.URGENT
    assert priorities.of("recovery") == Priority.RECOVERY
    assert priorities.of("offer_reminder") == Priority.OFFER
    with pytest.raises(ValueError, match="unknown message kind"):
        priorities.of("newsletter")


def _broadcast(incident, *, urgent=False, message="Update"):
    clean = {"message": message, "subject": "", "channels": ["sms"], "urgent": urgent}
    b = broadcasts.create(db.session, actor=Actor.cli("test"), cause=f"incident:{incident.id}", kind="broadcast",
                          clean=clean, audience="all", recipients=audiences.recipients(incident.id, "all"))
    db.session.commit()
    return b


def _claimed_broadcasts(w, n):
    ids, _, _ = w.claim(n, "sms")
    by_id = dict(db.session.execute(sa.select(Notification.id, Notification.broadcast_id)
                                    .where(Notification.id.in_(ids))).all())
    return [by_id[i] for i in ids]


def test_a_small_broadcast_takes_turns_with_a_large_older_one_of_its_class(app):
    big, small = make_incident("Big"), make_incident("Small")
    add_accounts(big, 60)
    add_accounts(small, 5, start=100)
    db.session.commit()
    a = _broadcast(big)
    w = make_worker(app, Recording(), Clock())
    assert _claimed_broadcasts(w, 10) == [a.id] * 10  # the big one is under way
    b = _broadcast(small)
    # Filed behind 50 queued messages of the same class, the small one goes one for one with them.
    assert _claimed_broadcasts(w, 10) == [a.id, b.id] * 5
    assert _claimed_broadcasts(w, 4) == [a.id] * 4


def test_a_higher_class_goes_before_a_backlog_and_a_code_goes_first(app):
    incident = make_incident()
    add_accounts(incident, 30)
    db.session.commit()
    routine = _broadcast(incident, message="Routine")
    urgent = _broadcast(incident, urgent=True, message="Urgent")
    code = service.enqueue(db.session, dedupe_key="verify:x", channel=Channel.SMS, recipient="+12065550199",
                           body="123456", template="verification_code", urgent=True)
    db.session.commit()
    w = make_worker(app, Recording(), Clock())
    ids, _, _ = w.claim(35, "sms")
    rows = {n.id: n for n in db.session.scalars(sa.select(Notification).where(Notification.id.in_(ids)))}
    assert ids[0] == code.id
    assert [rows[i].broadcast_id for i in ids[1:31]] == [urgent.id] * 30
    assert [rows[i].broadcast_id for i in ids[31:]] == [routine.id] * 4
    assert [rows[i].priority for i in ids] == sorted(rows[i].priority for i in ids)


def test_a_backlog_on_one_channel_does_not_hold_up_the_other(app):
    for i in range(40):
        service.enqueue(db.session, dedupe_key=f"e{i}", channel=Channel.EMAIL, recipient=f"p{i}@example.com",
                        body="Long email backlog", template="offer")
    db.session.commit()
    email, sms = Recording(latency=0.05), Recording()
    w = worker.build(app, providers={"sms": sms, "email": email}, concurrency=2, sms_rate=1000, email_rate=1000,
                     poll_interval=0.05, periodic_interval=0)
    runner = threading.Thread(target=w.run)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not email.sent and time.monotonic() < deadline:
            time.sleep(0.01)
        urgent = service.enqueue(db.session, dedupe_key="s1", channel=Channel.SMS, recipient="+12065550100",
                                 body="Service restored", template="broadcast")
        db.session.commit()
        while urgent.id not in sms.sent and time.monotonic() < deadline:
            time.sleep(0.01)
        # The SMS went out while the email channel was still working through its backlog.
        assert urgent.id in sms.sent and len(email.sent) < 40
    finally:
        w.request_stop()
        runner.join(30)


def test_rows_queued_one_by_one_take_the_head_of_their_class(app):
    incident = make_incident()
    add_accounts(incident, 20)
    db.session.commit()
    _broadcast(incident)
    head = priorities.head(db.session, channel="sms", priority=Priority.UPDATE)
    single = service.enqueue(db.session, dedupe_key="one", channel=Channel.SMS, recipient="+12065550111",
                             body="One", template="broadcast")
    assert (single.priority, single.fair_key) == (Priority.UPDATE, head)
    db.session.commit()
    w = make_worker(app, Recording(), Clock())
    assert single.id in w.claim(2, "sms")[0]
    assert priorities.head(db.session, channel="email", priority=Priority.UPDATE) == 0  # nothing queued there


def test_a_broadcasts_eta_counts_what_goes_before_it_at_the_shared_rate(app):
    app.config.update(SMS_RATE_PER_SECOND=5)
    big, small = make_incident("Big"), make_incident("Small")
    add_accounts(big, 60)
    add_accounts(small, 5, start=100)
    db.session.commit()
    a = _broadcast(big)
    b = _broadcast(small)
    # b takes turns with a: its last message is 10th in line (5 of a's, 5 of its own): 2 s at 5/s.
    p = broadcasts.progress(db.session, b.id)
    assert p["ahead"] == {"sms": 10} and p["eta_seconds"] == 2
    assert broadcasts.progress(db.session, a.id)["ahead"] == {"sms": 65}
    u = _broadcast(small, urgent=True)
    assert broadcasts.progress(db.session, u.id)["ahead"] == {"sms": 5}
    assert broadcasts.progress(db.session, b.id)["ahead"] == {"sms": 15}  # the urgent one goes first
