"""Large broadcasts are staged in the request and moved into the outbox by the workers (notifications.staging):
the messages are the ones a broadcast written straight into the outbox gets, they count as queued until moved,
the urgent ones move first, stages of a class take turns, erasure and unsubscribing reach them, and a running
worker moves them beside its sends."""
import threading
import time
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from accounts import audiences, erasure, subscriptions
from accounts.models import AffectedAccount, Subscription
from core.db import db, utcnow
from incidents import service as incidents
from notifications import broadcasts, monitoring, staging, worker
from notifications.models import Broadcast, MessageStage, Notification, NotificationStatus, StagedMessage
from notifications.priorities import Priority
from ops.audit import Actor
from tests.conftest import make_operator, sign_in
from tests.notifications.fakes import Clock, Recording, make_worker
from tests.notifications.helpers import add_accounts, make_incident

ACTOR = Actor.cli("test")
SAME = ("channel", "recipient", "account_id", "template", "language", "data", "subject", "segments", "urgent",
        "status", "attempts", "priority", "fair_key")


def _broadcast(incident, *, urgent=False, message="Update", channels=("email",)):
    clean = {"message": message, "subject": "", "channels": list(channels), "urgent": urgent}
    b = broadcasts.create(db.session, actor=ACTOR, cause=f"incident:{incident.id}", kind="broadcast", clean=clean,
                          audience="all", recipients=audiences.recipients(incident.id, "all"))
    db.session.commit()
    return b


def _expander(batch: int) -> staging.Expander:
    return staging.Expander(sessionmaker(bind=db.engine, expire_on_commit=False), batch=batch)


def _in_outbox(broadcast_id: int) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Notification)
                             .where(Notification.broadcast_id == broadcast_id)) or 0


def _staged() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(StagedMessage)) or 0


def _messages(broadcast_id: int) -> list[tuple]:
    """The broadcast's outbox rows without what differs between two broadcasts (ids, times), keys relative."""
    out = []
    for n in db.session.scalars(sa.select(Notification).where(Notification.broadcast_id == broadcast_id)
                                .order_by(Notification.account_id, Notification.channel)):
        assert n.next_attempt_at == n.created_at  # due when the broadcast was posted
        out.append((n.dedupe_key.split(":", 1)[1], *(getattr(n, c) for c in SAME)))
    return out


def test_a_staged_broadcast_writes_the_messages_one_written_in_the_request_does(app):
    incident = make_incident()
    add_accounts(incident, 12)
    add_accounts(incident, 3, start=50, language="es", phone=False)
    db.session.commit()
    inline = _broadcast(incident, channels=("sms", "email"))
    assert _staged() == 0 and _in_outbox(inline.id) == 27  # 20,000 and fewer: in the outbox at once
    expected = _messages(inline.id)
    db.session.execute(sa.delete(Notification))  # so the second is numbered from the same head
    db.session.commit()

    app.config["BROADCAST_INLINE_MAX"] = 5
    staged = _broadcast(incident, channels=("sms", "email"))
    assert staged.recipients == 27 and _in_outbox(staged.id) == 0 and _staged() == 27
    assert _expander(batch=4).drain() == 27
    db.session.expire_all()
    assert _messages(staged.id) == expected
    assert _staged() == 0 and db.session.scalar(sa.select(sa.func.count()).select_from(MessageStage)) == 0


def test_staged_messages_count_as_queued_and_the_urgent_ones_move_first_then_stages_take_turns(app, client):
    app.config["BROADCAST_INLINE_MAX"] = 0
    incident = make_incident()
    add_accounts(incident, 30)
    db.session.commit()
    first = _broadcast(incident, message="Still restoring")
    urgent = _broadcast(incident, urgent=True, message="Do not reset your phone")
    third = _broadcast(incident, message="Photos are back")

    progress = broadcasts.progress(db.session, first.id)
    assert progress["counts"]["queued"] == progress["total"] == progress["pending"] == progress["staged"] == 30
    sign_in(client, make_operator("viewer"))
    page = client.get(f"/ops/broadcasts/{first.id}").get_data(as_text=True)
    assert "30 of the queued messages are still being moved into the outbox" in page
    assert progress["ahead"]["email"] >= 30
    cells = monitoring.queue(db.session, now=utcnow())
    assert cells[("email", int(Priority.UPDATE))].due == 60 and cells[("email", int(Priority.URGENT))].due == 30
    assert cells[("email", int(Priority.UPDATE))].oldest_due is not None

    expander = _expander(batch=10)
    moved = []
    for _ in range(9):
        assert expander.step() == 10
        moved.append(tuple(_in_outbox(b.id) for b in (first, urgent, third)))
    # The urgent update first, whole; then the two of its class, a batch each in turn.
    assert moved[:3] == [(0, 10, 0), (0, 20, 0), (0, 30, 0)]
    assert [m[0] + m[2] for m in moved[3:]] == [10, 20, 30, 40, 50, 60]
    assert {m[0] - m[2] for m in moved[3:]} <= {-10, 0, 10}  # neither ran ahead of the other by more than a batch
    assert expander.step() is None and _staged() == 0
    db.session.expire_all()
    assert "still being moved" not in client.get(f"/ops/broadcasts/{first.id}").get_data(as_text=True)
    cells = monitoring.queue(db.session, now=utcnow())  # the same figures, from the outbox now
    assert cells[("email", int(Priority.UPDATE))].due == 60 and cells[("email", int(Priority.URGENT))].due == 30


def test_a_broadcast_staged_behind_a_backlog_still_takes_turns_with_it(app):
    big, small = make_incident("Big"), make_incident("Small")
    add_accounts(big, 60)
    add_accounts(small, 5, start=100)
    db.session.commit()
    app.config["BROADCAST_INLINE_MAX"] = 10
    a = _broadcast(big, channels=("sms",))
    _expander(batch=20).step()  # the workers have moved a first batch of the big one
    w = make_worker(app, Recording(), Clock())

    def claimed(n):
        ids, _, _ = w.claim(n, "sms")
        by_id = dict(db.session.execute(sa.select(Notification.id, Notification.broadcast_id)
                                        .where(Notification.id.in_(ids))).all())
        return [by_id[i] for i in ids]

    assert claimed(10) == [a.id] * 10
    b = _broadcast(small, channels=("sms",))  # 5: in the outbox at once
    assert _in_outbox(b.id) == 5
    assert claimed(10) == [a.id, b.id] * 5


def test_erasing_an_account_reaches_its_staged_message(app):
    app.config["BROADCAST_INLINE_MAX"] = 0
    incident = make_incident()
    erased, kept = add_accounts(incident, 2)
    db.session.commit()
    number, email = erased.account.account_number, erased.account.email
    b = _broadcast(incident, channels=("sms", "email"))
    assert _staged() == 4

    erasure.erase(db.session, actor=ACTOR, account_number=number)
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StagedMessage).where(sa.or_(
        StagedMessage.recipient == email, StagedMessage.account_id == erased.account_id))) == 0
    gone = db.session.scalars(sa.select(Notification).where(Notification.broadcast_id == b.id)).all()
    assert len(gone) == 2 and {(n.status, n.error_code, n.recipient) for n in gone} == {
        (NotificationStatus.SUPPRESSED, "erased", erasure.ERASED)}
    assert broadcasts.progress(db.session, b.id)["counts"]["queued"] == 2  # the other account's, still staged
    _expander(batch=10).drain()
    db.session.expire_all()
    assert {n.recipient for n in db.session.scalars(sa.select(Notification).where(
        Notification.broadcast_id == b.id, Notification.status == NotificationStatus.QUEUED))} == {
        kept.account.phone, kept.account.email}


def test_unsubscribing_stops_an_update_still_staged(app):
    app.config["BROADCAST_INLINE_MAX"] = 0
    incident = make_incident()
    add_accounts(incident, 1)
    now = utcnow() - timedelta(days=1)
    leaving, staying = (Subscription(channel="email", address=a, language="en", follows_all=True, confirmed_at=now,
                                     created_at=now, updated_at=now) for a in ("leaving@example.org", "stay@example.org"))
    db.session.add_all([leaving, staying])
    db.session.commit()
    incidents.post_update(db.session, actor=ACTOR, incident_id=incident.id,
                          data={"status": "identified", "message": "We found the cause.", "notify": True})
    db.session.commit()
    assert _staged() == 4  # the account's text and email, the two subscribers' emails

    subscriptions.unsubscribe(db.session, leaving)
    db.session.commit()
    _expander(batch=10).drain()
    db.session.expire_all()
    status = dict(db.session.execute(sa.select(Notification.recipient, Notification.status)
                                     .where(Notification.account_id.is_(None))).all())
    assert status == {"leaving@example.org": NotificationStatus.SUPPRESSED,
                      "stay@example.org": NotificationStatus.QUEUED}


def test_a_running_worker_moves_staged_messages_and_sends_them(app):
    app.config["BROADCAST_INLINE_MAX"] = 0
    incident = make_incident()
    add_accounts(incident, 25)
    db.session.commit()
    b = _broadcast(incident, channels=("sms", "email"))
    assert _staged() == 50
    sms, email = Recording(), Recording()
    w = worker.build(app, providers={"sms": sms, "email": email}, concurrency=2, sms_rate=1000, email_rate=1000,
                     poll_interval=0.05, periodic_interval=0, quiet=None)
    w.expander.batch = 7
    runner = threading.Thread(target=w.run)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while len(sms.sent) + len(email.sent) < 50 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        w.request_stop()
        runner.join(timeout=30)
    assert len(set(sms.sent)) == len(set(email.sent)) == 25 and len(sms.sent) + len(email.sent) == 50
    db.session.expire_all()
    assert _staged() == 0 and broadcasts.progress(db.session, b.id)["counts"]["sent"] == 50


def test_stages_whose_rows_interleave_are_each_moved_whole(app):
    """Two broadcasts staged at the same time (PostgreSQL: concurrent requests) have their rows' ids
    interleaved: each stage's key range holds the other's rows too, and moves only its own."""
    incident = make_incident()
    add_accounts(incident, 12)
    db.session.commit()
    a, b = (Broadcast(cause=f"incident:{incident.id}", kind="broadcast", message=m, channels=["email"], audience="all",
                      created_at=utcnow()) for m in ("A", "B"))
    db.session.add_all([a, b])
    db.session.flush()
    who = audiences.recipients(incident.id, "all")
    for broadcast, part in ((a, 0), (b, 0), (a, 1), (b, 1)):  # A's first half, B's, A's second half, ...
        half = who.where(AffectedAccount.account_id % 2 == part)
        broadcast.recipients += broadcasts.stage_for(db.session, half, channel="email", template="broadcast",
                                                     now=broadcast.created_at, key_prefix=f"b{broadcast.id}:email:",
                                                     broadcast_id=broadcast.id)
    db.session.commit()
    stage_a = db.session.scalar(sa.select(MessageStage).where(MessageStage.broadcast_id == a.id))
    assert (a.recipients, b.recipients, stage_a.remaining) == (12, 12, 12)
    assert stage_a.last_id - stage_a.next_id + 1 == 18  # its range holds 6 of B's rows

    assert _expander(batch=5).drain() == 24
    db.session.expire_all()
    assert _in_outbox(a.id) == _in_outbox(b.id) == 12 and _staged() == 0
    keys = db.session.scalars(sa.select(Notification.dedupe_key).where(Notification.broadcast_id == a.id)).all()
    assert len(set(keys)) == 12 and all(k.startswith(f"b{a.id}:email:") for k in keys)


def test_several_small_broadcasts_in_one_transaction_each_go_in_whole(app):
    """Each is staged and moved at once; SQLite gives a new stage the id of one just dropped, in the same session."""
    incident = make_incident()
    add_accounts(incident, 3)
    db.session.flush()
    sent = []
    for message in ("one", "two", "three"):
        clean = {"message": message, "subject": "", "channels": ["sms", "email"], "urgent": False}
        sent.append(broadcasts.create(db.session, actor=ACTOR, cause=f"incident:{incident.id}", kind="broadcast",
                                      clean=clean, audience="all", recipients=audiences.recipients(incident.id, "all")))
    db.session.commit()
    assert _staged() == 0 and db.session.scalar(sa.select(sa.func.count()).select_from(MessageStage)) == 0
    assert [_in_outbox(b.id) for b in sent] == [6, 6, 6]
