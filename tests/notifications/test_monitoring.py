"""The queue in view: /metrics and the /ops home panel after the real worker sent, failed, retried and
suppressed messages at the Twilio stand-in; sums right with several workers, kept when old workers' rows are
folded away."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from core.db import db, utcnow
from notifications import service, telemetry, worker
from notifications.models import Channel, Notification, NotificationStatus, NotifierWorker
from tests.conftest import make_operator, sign_in

TOKEN = "scraper-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).with_name("flask"))


@pytest.fixture
def scrape(app, client):
    """GET /metrics with METRICS_TOKEN; returns {(name, sorted labels): value} of every sample."""
    app.config["METRICS_TOKEN"] = TOKEN

    def get() -> dict:
        db.session.rollback()  # a fresh snapshot of what the workers wrote
        response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200, response.get_data(as_text=True)
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(response.get_data(as_text=True))
                for s in family.samples}
    return get


def sample(samples: dict, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def depth(samples, channel, cls, state) -> float:
    return sample(samples, "lifeboat_notifier_queue_messages", channel=channel, **{"class": cls}, state=state)


def sends(samples, channel, outcome, code="") -> float:
    return samples.get(("lifeboat_notifier_sends_total",
                        tuple(sorted({"channel": channel, "outcome": outcome, "error_code": code}.items()))), 0)


def queue(key, channel=Channel.SMS, recipient=None, **kw) -> Notification:
    recipient = recipient or ("+12065550100" if channel == Channel.SMS else f"{key}@example.com")
    n = service.enqueue(db.session, dedupe_key=key, channel=channel, recipient=recipient, body=f"Hello {key}", **kw)
    db.session.commit()
    return n


# ---- after the real worker ------------------------------------------------------------------------

def test_metrics_count_every_outcome_with_its_error_code_and_the_provider_latency(app, twilio_standin, scrape):
    app.config.update(twilio_standin.env(), TWILIO_TIMEOUT_SECONDS=0.3)
    twilio_standin.latency = 0.03
    for i in range(8):  # one sender, so the stand-in's scripted answers meet the messages in this order
        queue(f"sms{i}", recipient=f"+1206555{i:04d}")
    queue("mail0", Channel.EMAIL), queue("mail1", Channel.EMAIL)  # the log provider (no SMTP settings)
    twilio_standin.fail_next(2, code=21211)  # sms0, sms1: invalid number, failed for good
    twilio_standin.throttle(1)  # sms2: 429, retried later
    twilio_standin.hang_after_receive(2.0)  # sms3: accepted, no answer in time: ambiguous, not resent
    twilio_standin.fail_for("+12065550007", code=21610)  # sms7: the person replied STOP at Twilio

    attempted = worker.run_once(concurrency=1, sms_rate=1000, email_rate=1000)

    assert attempted == 10
    m = scrape()
    assert sends(m, "sms", "sent") == 3  # sms4, sms5, sms6
    assert sends(m, "sms", "failed", "21211") == 2
    assert sends(m, "sms", "retry", "20429") == 1
    assert sends(m, "sms", "ambiguous", "ambiguous") == 1
    assert sends(m, "sms", "suppressed", "21610") == 1
    assert sends(m, "email", "sent") == 2
    assert sum(v for (name, _), v in m.items() if name == "lifeboat_notifier_sends_total") == 10
    # Every request that reached the stand-in was timed, from when it left to its answer (or the time-out).
    hist = "lifeboat_notifier_provider_latency_seconds"
    assert sample(m, hist + "_count", channel="sms") == 8
    assert sample(m, hist + "_bucket", channel="sms", le="+Inf") == 8
    assert sample(m, hist + "_bucket", channel="sms", le="0.025") == 0  # the stand-in waits 30 ms per answer
    assert sample(m, hist + "_bucket", channel="sms", le="0.25") == 7  # all but the one that timed out (0.3 s)
    assert 7 * 0.03 + 0.3 <= sample(m, hist + "_sum", channel="sms") < 5
    assert sample(m, hist + "_count", channel="email") == 2
    # The throttled one waits for its retry: held, not due; nothing else is queued.
    assert depth(m, "sms", "update", "held") == 1
    assert sum(v for (name, _), v in m.items() if name == "lifeboat_notifier_queue_messages") == 1
    assert sample(m, "lifeboat_notifier_workers_alive") == 0  # a --once run is not a running worker


def test_rows_set_aside_at_claim_time_are_counted_suppressed_or_held(app, scrape):
    """A claim suppresses rows to opted-out addresses and puts SMS back until quiet hours end; neither
    reaches the provider, and both are counted, so /metrics adds up to what the workers took."""
    from accounts.models import Account
    from notifications import quiet_hours
    from notifications.models import OptOut

    db.session.add(OptOut(channel=Channel.SMS, address="+12065550100", source="sms:STOP"))
    night = Account(account_number="Q-1", phone="+12065550101", time_zone="UTC")
    db.session.add(night)
    db.session.commit()
    queue("stopped", recipient="+12065550100")
    queue("night", recipient="+12065550101", account_id=night.id)
    queue("mail", Channel.EMAIL)
    now = utcnow()  # quiet from an hour ago to an hour from now, in the account's zone (UTC)
    around_now = quiet_hours.parse(f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=1):%H:%M}")
    w = worker.build(app, providers={}, quiet=around_now, sms_rate=0, email_rate=0)
    for channel in ("sms", "email"):
        w.claim_rows(10, channel)
    w.telemetry.flush()
    m = scrape()
    assert sends(m, "sms", "suppressed", "opt_out") == 1
    assert sends(m, "sms", "held") == 1
    assert sends(m, "email", "held") == 0 and sends(m, "email", "suppressed", "opt_out") == 0


def test_queue_depth_is_counted_by_channel_class_and_state_with_the_oldest_due_age(app, scrape):
    now = utcnow()
    for i in range(3):
        queue(f"code{i}", recipient=f"+1206555{i:04d}", template="verification_code")
    queue("urgent", recipient="+12065551000", urgent=True)
    old = queue("update-old", recipient="+12065551001")
    old.next_attempt_at = now - timedelta(minutes=5)  # due for five minutes already
    later = queue("update-later", recipient="+12065551002")
    later.next_attempt_at = now + timedelta(hours=2)  # quiet hours: held
    for i in range(4):
        queue(f"offer{i}", Channel.EMAIL, template="offer")
    queue("recovery", Channel.EMAIL, template="recovery")
    sending = queue("in-flight", Channel.EMAIL, template="recovery")
    sending.status, sending.lease_until = NotificationStatus.SENDING, now + timedelta(seconds=60)
    queue("sent-already", Channel.EMAIL).status = NotificationStatus.SENT  # no longer in the queue
    db.session.commit()

    m = scrape()
    expected = {("sms", "code", "due"): 3, ("sms", "urgent", "due"): 1, ("sms", "update", "due"): 1,
                ("sms", "update", "held"): 1, ("email", "offer", "due"): 4, ("email", "recovery", "due"): 1,
                ("email", "recovery", "sending"): 1}
    for channel in ("sms", "email"):
        for cls in ("code", "urgent", "update", "recovery", "offer"):
            for state in ("due", "held", "sending"):
                assert depth(m, channel, cls, state) == expected.get((channel, cls, state), 0), (channel, cls, state)
    oldest = "lifeboat_notifier_oldest_due_seconds"
    assert 300 <= sample(m, oldest, channel="sms", **{"class": "update"}) < 400
    assert 0 <= sample(m, oldest, channel="sms", **{"class": "code"}) < 60
    assert sample(m, oldest, channel="sms", **{"class": "offer"}) == 0  # none queued


def test_a_result_written_after_another_worker_took_the_lease_counts_as_lost(app, scrape):
    n = queue("taken-over")
    w = worker.build(app, sms_rate=1000, email_rate=1000)
    [claimed], lease, _ = w.claim_rows(1, "sms")
    db.session.execute(sa.update(Notification).where(Notification.id == n.id)  # another worker's lease now
                       .values(lease_until=lease + timedelta(seconds=30)))
    db.session.commit()

    assert w.send_one(claimed, lease) == "lost"
    w.telemetry.close()
    m = scrape()
    assert sends(m, "sms", "lost") == 1
    assert sends(m, "sms", "sent") == 1  # it did go: counted as sent, and as lost besides (it may go again)


@pytest.mark.parametrize("status, code, expected", [
    ("sent", None, ("sent", "")), ("failed", "21211", ("failed", "21211")),
    ("failed", "ambiguous", ("ambiguous", "ambiguous")), ("suppressed", "opt_out", ("suppressed", "opt_out")),
    ("queued", "20429", ("retry", "20429")), ("queued", None, ("requeued", "")),
])
def test_each_recorded_result_has_one_outcome(status, code, expected):
    assert telemetry.outcome_of(status, code) == expected


# ---- several workers ------------------------------------------------------------------------------

def running(app, n: int) -> list:
    """n real workers (log providers) running their loop in threads, reporting every 0.1 s."""
    app.config["NOTIFIER_TELEMETRY_SECONDS"] = 0.1
    workers = [worker.build(app, sms_rate=1000, email_rate=1000, concurrency=2, poll_interval=0.05,
                            periodic_interval=0) for _ in range(n)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for t in threads:
        t.start()
    return workers, threads


def stop(workers, threads):
    for w in workers:
        w.request_stop()
    for t in threads:
        t.join(30)
        assert not t.is_alive()


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_metrics_add_up_what_several_running_workers_sent(app, scrape):
    for i in range(40):
        queue(f"s{i}", recipient=f"+1206555{i:04d}")
    for i in range(20):
        queue(f"e{i}", Channel.EMAIL)
    workers, threads = running(app, 3)
    try:
        wait_for(lambda: sample(scrape(), "lifeboat_notifier_workers_alive") == 3)
        wait_for(lambda: sends(scrape(), "sms", "sent") + sends(scrape(), "email", "sent") == 60)
    finally:
        stop(workers, threads)

    m = scrape()
    assert sends(m, "sms", "sent") == 40 and sends(m, "email", "sent") == 20
    assert sample(m, "lifeboat_notifier_provider_latency_seconds_count", channel="sms") == 40
    assert sample(m, "lifeboat_notifier_workers_alive") == 0  # all three stopped cleanly
    rows = db.session.scalars(sa.select(NotifierWorker)).all()
    assert len(rows) == 3 and all(r.stopped_at is not None for r in rows)
    per_worker = [sum(v for k, v in r.counters.items() if k.startswith("sends|")) for r in rows]
    assert sum(per_worker) == 60  # each row holds its own worker's sends, never another's


def start_notifier(database_url: str) -> subprocess.Popen:
    """The real `flask notifier run` process (log providers), reporting every 0.2 s."""
    env = {**os.environ, "DATABASE_URL": database_url, "QUIET_HOURS": "", "SMS_RATE_PER_SECOND": "1000",
           "EMAIL_RATE_PER_SECOND": "1000", "NOTIFIER_POLL_SECONDS": "0.1", "NOTIFIER_PERIODIC_SECONDS": "0",
           "NOTIFIER_TELEMETRY_SECONDS": "0.2"}
    for name in ("TWILIO_ACCOUNT_SID", "SMTP_HOST", "METRICS_TOKEN"):
        env.pop(name, None)
    return subprocess.Popen([FLASK, "--app", "app", "notifier", "run"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_two_worker_processes_add_up_and_one_killed_drops_out_of_the_alive_count(app, database_url, scrape):
    app.config["NOTIFIER_ALIVE_SECONDS"] = 1.5
    for i in range(40):
        queue(f"s{i}", recipient=f"+1206555{i:04d}")
    for i in range(20):
        queue(f"e{i}", Channel.EMAIL)
    processes = [start_notifier(database_url) for _ in range(2)]
    try:
        wait_for(lambda: sample(scrape(), "lifeboat_notifier_workers_alive") == 2, timeout=60)
        wait_for(lambda: sends(scrape(), "sms", "sent") + sends(scrape(), "email", "sent") == 60)
        processes[0].send_signal(signal.SIGKILL)  # no last flush: its row stays as last written
        processes[0].wait(10)
        wait_for(lambda: sample(scrape(), "lifeboat_notifier_workers_alive") == 1, timeout=10)
        processes[1].send_signal(signal.SIGTERM)
        assert processes[1].wait(20) == 0
    finally:
        for p in processes:
            p.kill()
            p.wait()
    m = scrape()
    assert sample(m, "lifeboat_notifier_workers_alive") == 0
    assert sends(m, "sms", "sent") == 40 and sends(m, "email", "sent") == 20
    rows = db.session.scalars(sa.select(NotifierWorker)).all()
    assert sorted(r.pid for r in rows) == sorted(p.pid for p in processes)
    assert [r.stopped_at is None for r in sorted(rows, key=lambda r: r.pid != processes[0].pid)] == [True, False]


def test_folding_gone_workers_keeps_every_sum_and_a_returning_worker_counts_nothing_twice(app, scrape):
    msg = Notification(channel=Channel.SMS)
    gone, back, live = (telemetry.Telemetry(db.engine) for _ in range(3))
    for t, n in ((gone, 5), (back, 7), (live, 11)):
        for _ in range(n):
            t.finished(msg, {"status": NotificationStatus.SENT})
        t.observe("sms", 0.2)
        assert t.flush()
    hour_ago = utcnow() - telemetry.RETIRE_AFTER - timedelta(minutes=1)
    db.session.execute(sa.update(NotifierWorker).where(NotifierWorker.id.in_([gone.id, back.id]))
                       .values(seen_at=hour_ago))
    db.session.commit()
    before = scrape()

    assert telemetry.fold_stale(db.session, utcnow()) == "folded 2 worker(s)"
    db.session.commit()

    after = scrape()
    assert sends(after, "sms", "sent") == sends(before, "sms", "sent") == 23
    assert sample(after, "lifeboat_notifier_provider_latency_seconds_count", channel="sms") == 3
    assert set(db.session.scalars(sa.select(NotifierWorker.id))) == {NotifierWorker.RETIRED, live.id}
    # `back` was only cut off from the database for a while: it carries on from its own totals.
    for _ in range(2):
        back.finished(msg, {"status": NotificationStatus.SENT})
    assert back.flush()
    assert sends(scrape(), "sms", "sent") == 25
    assert telemetry.fold_stale(db.session, utcnow()) == "no workers to fold"


# ---- the console's home panel ----------------------------------------------------------------------

def text(html: str) -> str:
    """The page's text, tags removed and white space collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def cells(html: str, table_id: str) -> dict[str, list[str]]:
    """{row header: [cell texts]} of the table with this id."""
    from html.parser import HTMLParser

    class Table(HTMLParser):
        def __init__(self):
            super().__init__()
            self.inside, self.rows, self.row, self.cell = False, {}, None, None

        def handle_starttag(self, tag, attrs):
            if tag == "table" and dict(attrs).get("id") == table_id:
                self.inside = True
            elif self.inside and tag == "tr":
                self.row = []
            elif self.inside and tag in ("th", "td") and self.row is not None:
                self.cell = ""

        def handle_endtag(self, tag):
            if tag == "table":
                self.inside = False
            elif self.inside and tag in ("th", "td") and self.cell is not None:
                self.row.append(" ".join(self.cell.split()))
                self.cell = None
            elif self.inside and tag == "tr" and self.row:
                self.rows[self.row[0]] = self.row[1:]
                self.row = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parser = Table()
    parser.feed(html)
    return parser.rows


def test_the_ops_home_shows_the_queue_the_send_rate_the_oldest_wait_and_the_workers(app, client):
    now = utcnow()
    for i in range(6):
        queue(f"sent{i}", recipient=f"+1206555{i:04d}")
    queue("mail-sent", Channel.EMAIL)
    worker.run_once(sms_rate=1000, email_rate=1000)
    stale = db.session.scalars(sa.select(Notification).where(Notification.dedupe_key == "sent0")).one()
    stale.sent_at = now - timedelta(minutes=2)  # sent before the last minute: not in the rate
    for i in range(3):
        queue(f"offer{i}", Channel.EMAIL, template="offer")
    for i in range(2):
        queue(f"code{i}", recipient=f"+1206556{i:04d}", template="verification_code")
    waited = queue("urgent", recipient="+12065557000", urgent=True)
    waited.next_attempt_at = now - timedelta(minutes=12, seconds=5)
    queue("held", recipient="+12065557001").next_attempt_at = now + timedelta(hours=1)
    db.session.commit()
    assert sign_in(client, make_operator("viewer")).status_code == 302

    html = client.get("/ops/").get_data(as_text=True)

    by_class = cells(html, "queue-by-class")
    assert by_class["Class"] == ["SMS: due now", "SMS: held for later", "Email: due now", "Email: held for later"]
    assert by_class["Codes and replies"] == ["2", "0", "0", "0"]
    assert by_class["Urgent updates"] == ["1", "0", "0", "0"]
    assert by_class["Updates"] == ["0", "1", "0", "0"]
    assert by_class["Recovery notices"] == ["0", "0", "0", "0"]
    assert by_class["Offers and reminders"] == ["0", "0", "3", "0"]
    assert by_class["All classes"] == ["3", "1", "3", "0"]
    by_channel = cells(html, "queue-by-channel")
    assert by_channel["SMS"][:2] == ["0", "5 (0.1/s)"]  # five of the six were sent within the minute
    assert by_channel["Email"][:2] == ["0", "1 (0.0/s)"]
    assert by_channel["SMS"][2].startswith("12 min")
    assert by_channel["Email"][2].endswith(" s")  # the offers were queued moments ago
    assert "Notifier workers alive: 0" in text(html)
    assert "No notifier worker has reported" in html  # 6 due and nobody sending them

    workers, threads = running(app, 1)
    try:
        wait_for(lambda: db.session.rollback() or db.session.scalar(
            sa.select(sa.func.count()).select_from(NotifierWorker).where(NotifierWorker.stopped_at.is_(None))) == 1)
        html = client.get("/ops/").get_data(as_text=True)
        assert "Notifier workers alive: 1" in text(html)
        table = cells(html, "workers")
        assert table.pop("Host") == ["Process", "Running since", "Last report"]
        [(host, row)] = table.items()
        assert host == workers[0].telemetry.host and row[0] == str(workers[0].telemetry.pid)
    finally:
        stop(workers, threads)


def test_the_ops_home_needs_a_signed_in_operator(client):
    response = client.get("/ops/")
    assert response.status_code == 302 and "/ops/sign-in" in response.headers["Location"]
