"""Delivery receipts that arrive before the worker has recorded the message's sid (notifications.receipts)."""
import threading
import time

import pytest
import sqlalchemy as sa

from core.db import db
from notifications import receipts, service, worker
from notifications.models import Channel, EarlyReceipt, Notification, NotificationStatus, OptOut
from notifications.providers import LogProvider, Sent, from_config
from tests.notifications.twilio_helpers import ANN, callback

SID = "SM" + "e" * 32


class FixedSid:
    """An SMS provider that accepts every message and answers with the sids the test chose, in order."""

    name = "twilio"

    def __init__(self, *sids: str):
        self.sids = list(sids)

    def send(self, message: Notification) -> Sent:
        return Sent(provider_id=self.sids.pop(0), segments=1)


class CallsBackBeforeReturning:
    """Twilio at its fastest: the real provider creates the message at the stand-in, and the signed status
    callback reaches our webhook before send() has returned, i.e. before the worker records the sid."""

    def __init__(self, provider, standin, client, status: str = "delivered", error_code: int | None = None):
        self.provider, self.standin, self.client = provider, standin, client
        self.status, self.error_code = status, error_code
        self.name = provider.name
        self.seen: list[tuple[int, int]] = []  # (callback HTTP status, early receipts kept for the sid)

    def send(self, message: Notification) -> Sent:
        sent = self.provider.send(message)
        self.standin.set_status(sent.provider_id, self.status, self.error_code)
        _, params, headers = self.standin.status_callback(sent.provider_id)
        response = self.client.post("/webhooks/twilio/status", data=params, headers=headers)
        self.seen.append((response.status_code, early_count(sent.provider_id)))
        return sent


def early_count(sid: str | None = None) -> int:
    """Early receipts (for `sid`), read on a connection of its own so no session's cache is involved."""
    query = sa.select(sa.func.count()).select_from(EarlyReceipt)
    if sid is not None:
        query = query.where(EarlyReceipt.provider_id == sid)
    with db.engine.connect() as conn:
        return conn.scalar(query)


def early(sid: str = SID) -> EarlyReceipt | None:
    db.session.expire_all()
    return db.session.scalar(sa.select(EarlyReceipt).where(EarlyReceipt.provider_id == sid))


def queue_sms(key: str = "k1", recipient: str = ANN) -> Notification:
    n = service.enqueue(db.session, dedupe_key=key, channel=Channel.SMS, recipient=recipient, body="Update",
                        urgent=True)
    db.session.commit()
    return n


def send_all(sms_provider) -> None:
    worker.run_once(db.session, providers={"sms": sms_provider, "email": LogProvider()})


def test_a_callback_that_beats_the_worker_is_applied_when_the_worker_records_the_sid(twilio_app, client,
                                                                                      twilio_standin):
    twilio_app.config.update(twilio_standin.env())
    fast = CallsBackBeforeReturning(from_config(twilio_app.config)["sms"], twilio_standin, client)
    n = queue_sms()

    send_all(fast)

    assert fast.seen == [(200, 1)]  # answered, and kept: no notification had the sid yet
    db.session.refresh(n)
    assert n.status == NotificationStatus.DELIVERED and n.provider_id.startswith("SM")
    assert n.delivered_at is not None and n.error_code is None
    assert early_count() == 0


def test_an_early_failure_keeps_its_error_code_and_a_21610_opts_the_number_out(twilio_app, client,
                                                                              twilio_standin):
    twilio_app.config.update(twilio_standin.env())
    fast = CallsBackBeforeReturning(from_config(twilio_app.config)["sms"], twilio_standin, client,
                                    status="failed", error_code=21610)
    n = queue_sms()

    send_all(fast)

    db.session.refresh(n)
    assert (n.status, n.error_code) == (NotificationStatus.FAILED, "21610")
    assert n.error_message == "Twilio reported failed (error 21610)"
    assert db.session.scalar(sa.select(OptOut.source).where(OptOut.address == ANN)) == "twilio:21610"
    assert early_count() == 0


@pytest.mark.parametrize("order, kept, final", [
    (("delivered", "sent"), "delivered", NotificationStatus.DELIVERED),
    (("sent", "delivered"), "delivered", NotificationStatus.DELIVERED),
    (("undelivered", "delivered", "sent"), "undelivered", NotificationStatus.UNDELIVERED),
    (("sent",), "sent", NotificationStatus.SENT),
])
def test_early_receipts_keep_the_most_advanced_status(twilio_app, client, order, kept, final):
    for status in order:
        assert callback(client, SID, status, "30003" if status == "undelivered" else None).status_code == 200
    assert early().status == kept
    n = queue_sms()

    send_all(FixedSid(SID))

    db.session.refresh(n)
    assert n.status == final
    assert (n.delivered_at is not None) is (final == NotificationStatus.DELIVERED)
    assert n.error_code == ("30003" if final == NotificationStatus.UNDELIVERED else None)
    assert early() is None


def test_delivered_at_is_when_the_receipt_arrived(twilio_app, client):
    callback(client, SID, "delivered")
    received = early().received_at
    n = queue_sms()
    send_all(FixedSid(SID))
    db.session.refresh(n)
    assert n.delivered_at == received


def test_the_second_look_applies_a_receipt_the_worker_missed(twilio_app, client):
    """settle(): the worker committed the sid after looking for receipts, the receipt after that look."""
    callback(client, SID, "delivered")
    n = queue_sms()
    n.status, n.provider, n.provider_id = NotificationStatus.SENT, "twilio", SID  # as the worker records it
    db.session.commit()

    assert receipts.settle(db.session, SID) is True
    db.session.commit()
    assert receipts.settle(db.session, SID) is False  # applied once, then gone
    db.session.refresh(n)
    assert n.status == NotificationStatus.DELIVERED and early() is None
    assert receipts.settle(db.session, "SM" + "0" * 32) is False


def test_a_callback_racing_the_workers_commit_is_never_lost(twilio_app, client):
    """The worker writes the sid and looks for a receipt (none yet); the callback arrives before the worker
    commits. Whichever way the two transactions interleave, the receipt ends up applied."""
    n = queue_sms()
    w = worker.build(twilio_app, providers={"sms": FixedSid(), "email": LogProvider()})
    [claimed], lease, _ = w.claim(10)
    message = db.session.get(Notification, claimed)
    looked, go, answers = threading.Event(), threading.Event(), []

    def look_then_wait(session):  # the worker's own step, then a pause before its commit
        receipts.apply_early_many(session, {SID: message.id})  # what the recorder does per batch
        looked.set()
        go.wait(5)

    def post_callback():
        with twilio_app.test_client() as other:
            answers.append(callback(other, SID, "delivered").status_code)

    recording = threading.Thread(target=lambda: w._finish(message, lease, status=NotificationStatus.SENT,
                                                          provider_id=SID, then=look_then_wait))
    recording.start()
    assert looked.wait(5)
    posting = threading.Thread(target=post_callback)
    posting.start()
    time.sleep(0.5)  # the callback stores its receipt now, or waits for the worker's transaction
    go.set()
    recording.join(10), posting.join(10)

    assert answers == [200]
    db.session.refresh(n)
    assert n.status == NotificationStatus.DELIVERED and n.provider_id == SID
    assert early() is None


def test_a_replayed_callback_changes_nothing(twilio_app, client):
    assert callback(client, SID, "delivered").status_code == 200
    first = early()
    assert callback(client, SID, "delivered").status_code == 200
    assert early_count() == 1 and early().received_at == first.received_at
    n = queue_sms()
    send_all(FixedSid(SID))
    db.session.refresh(n)
    delivered_at = n.delivered_at

    for status in ("delivered", "sent"):  # replays after the sid is known: no new receipt, no regression
        assert callback(client, SID, status).status_code == 200
    db.session.refresh(n)
    assert (n.status, n.delivered_at) == (NotificationStatus.DELIVERED, delivered_at)
    assert early_count() == 0


def test_simultaneous_callbacks_for_one_unknown_sid_all_succeed(twilio_app):
    sids = [f"SM{i:032d}" for i in range(4)]
    answers, start = [], threading.Barrier(8)

    def post(sid, status):
        with twilio_app.test_client() as other:
            start.wait(5)
            answers.append(callback(other, sid, status).status_code)

    threads = [threading.Thread(target=post, args=(sid, status)) for sid in sids for status in ("sent", "delivered")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert answers == [200] * 8
    assert {sid: early(sid).status for sid in sids} == dict.fromkeys(sids, "delivered")


def test_a_receipt_for_a_sid_never_recorded_stays_and_touches_nothing_else(twilio_app, client):
    callback(client, SID, "undelivered", "30003")
    n = queue_sms()
    send_all(FixedSid("SM" + "f" * 32))
    db.session.refresh(n)
    assert n.status == NotificationStatus.SENT and n.error_code is None
    kept = early()
    assert (kept.status, kept.error_code, kept.error_message) == (
        "undelivered", "30003", "Twilio reported undelivered (error 30003)")


def test_statuses_that_change_nothing_are_not_kept(twilio_app, client):
    for status in ("queued", "accepted", "sending", "read"):
        assert callback(client, SID, status).status_code == 200
    assert early_count() == 0
    assert receipts.store_early(db.session, "SM" + "9" * 70, "delivered") is False  # no notification has such an id
