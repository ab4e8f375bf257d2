"""Issue 11, item 4: every operator write works while the notifier drains a backlog.

The real `flask notifier run` process drains 10,000 queued messages (log providers, a limit far above what it
reaches, its scheduled tasks every second) while an operator, through the console and the ops API, performs each
write action 5 times: an accounts import from the console and one from the API, a recovery import from the
console, an offer program issued and announced, a broadcast, and an incident update with notify. Every answer
must be the expected one and every change must be there afterwards; the worker must send every due message once
and only once and log no error. Runs on SQLite (where writes used to fail with "database is locked": see
core/db.py) and on PostgreSQL.

The backlog's messages are rendered already (as one-time codes and replies are) so that the worker drains them at
its fastest; the messages the actions queue are rendered at send time, as usual."""
import collections
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from accounts.imports import jobs
from accounts.models import (Account, AffectedAccount, ImportJob, ImportStatus, RecoveryCategory, RecoveryEvent,
                             RecoveryStatus)
from core.db import db, utcnow
from incidents.models import IncidentUpdate
from notifications.models import Broadcast, Notification, NotificationStatus
from offers.models import OfferGrant, OfferProgram
from tests.accounts.factories import HEADER, RECOVERY_HEADER, attach, make_incident, run_import
from tests.conftest import csrf_from, make_operator, post_form, sign_in
from tests.ops.api_client import ApiClient

pytestmark = pytest.mark.slow  # starts real processes

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).with_name("flask"))
BACKLOG = 10_000
ROUNDS = 5
STEP = 1_500  # backlog messages sent between two rounds of operator actions
FIRST = 10  # accounts of the incident the operator works on, before the imports add 4 + 4 per round
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} notifier ", re.M)


def queue_backlog(n: int) -> None:
    """n rendered messages, half SMS and half email, each with its own text (one INSERT, executemany)."""
    now = utcnow()
    rows = [{"dedupe_key": f"backlog:{i}", "channel": "sms" if i % 2 else "email",
             "recipient": f"+1206555{i // 2 % 10000:04d}" if i % 2 else f"b{i}@example.com",
             "subject": "Outage", "body": f"Backlog message {i}", "template": "broadcast", "status": "queued",
             "attempts": 0, "next_attempt_at": now, "created_at": now, "updated_at": now, "priority": 3,
             "fair_key": i} for i in range(n)]
    db.session.execute(sa.insert(Notification), rows)
    db.session.commit()


def start_notifier(database_url: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMTP_"))}  # log providers
    env.update({"DATABASE_URL": database_url, "QUIET_HOURS": "", "SMS_RATE_PER_SECOND": "1000",
                "EMAIL_RATE_PER_SECOND": "1000", "NOTIFIER_POLL_SECONDS": "0.2",
                "PUBLIC_BASE_URL": "http://status.example.com",
                # The scheduled tasks (offer expiry and reminders, prunes) write too: run them all the time.
                "NOTIFIER_PERIODIC_SECONDS": "1", "PERIODIC_OFFERS_EXPIRE_SECONDS": "1",
                "PERIODIC_OFFERS_REMIND_SECONDS": "1", "PERIODIC_RATELIMIT_PRUNE_SECONDS": "1",
                "PERIODIC_RECEIPTS_PRUNE_SECONDS": "1", "PERIODIC_IMPORTS_PRUNE_SECONDS": "1"})
    log = tempfile.TemporaryFile("w+", newline="")  # bodies keep their line ends
    process = subprocess.Popen([FLASK, "--app", "app", "notifier", "run"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, text=True)
    process.log = log
    return process


def output_of(process) -> str:
    process.log.seek(0)
    return process.log.read()


def count(*where) -> int:
    db.session.rollback()  # a fresh snapshot on PostgreSQL
    return db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(*where))


def wait_until(predicate, timeout: float, process) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, output_of(process)[-5000:]
        assert time.monotonic() < deadline, "timed out; the worker said:\n" + output_of(process)[-5000:]
        time.sleep(0.1)


def provider_log(output: str) -> collections.Counter:
    """(channel, recipient, text) of each message the log provider "sent", from the worker's output."""
    sent = collections.Counter()
    starts = [m.start() for m in RECORD.finditer(output)] + [len(output)]
    for start, end in zip(starts, starts[1:]):
        record = output[start:end]
        record = record[:-1] if record.endswith("\n") else record
        message = RECORD.sub("", record, count=1)
        if message.startswith("INFO log provider: "):
            channel, _, rest = message.removeprefix("INFO log provider: ").partition(" to ")
            recipient, _, text = rest.partition(": ")
            sent[(channel, recipient, text)] += 1
    return sent


class Operator:
    """The operator's actions, through the console (signed in) and the ops API (bearer token)."""

    def __init__(self, app, incident_id: int):
        self.app, self.incident_id = app, incident_id
        self.console = app.test_client()
        make_operator("operator", email="op@example.com")
        assert sign_in(self.console, "op@example.com").status_code == 302
        from ops import service as ops_service
        from ops.audit import Actor

        operator = make_operator("operator", email="api@example.com")
        _token, secret = ops_service.create_token(db.session, actor=Actor.cli("test"), operator_id=operator.id)
        db.session.commit()
        self.api = ApiClient(app.test_client(), secret)

    def upload(self, kind: str, text: str) -> ImportJob:
        """An import from the console: the upload starts a background job; wait for it like the job page."""
        page = self.console.get(f"/ops/incidents/{self.incident_id}/import/{kind}")
        assert page.status_code == 200
        response = self.console.post(
            f"/ops/incidents/{self.incident_id}/import/{kind}/upload", content_type="multipart/form-data",
            data={"csrf_token": csrf_from(page.get_data(as_text=True)), "file": (io.BytesIO(text.encode()), "f.csv")})
        assert response.status_code == 303, response.get_data(as_text=True)[:2000]
        job_id = int(response.headers["Location"].rsplit("/", 1)[1])
        deadline = time.monotonic() + 120
        while True:
            db.session.rollback()
            db.session.expire_all()
            job = db.session.get(ImportJob, job_id)
            if job.status in jobs.FINISHED and not jobs.is_running_here(job_id):
                assert self.console.get(f"/ops/imports/{job_id}").status_code == 200
                return job
            assert time.monotonic() < deadline, f"import {job_id} still {job.status}"
            time.sleep(0.05)

    def import_accounts_console(self, rnd: int) -> None:
        job = self.upload("accounts", HEADER + "".join(
            f"C{rnd}x{j},Console {j},+1503555{rnd}{j:03d},c{rnd}x{j}@example.com,en\n" for j in range(4)))
        assert job.status == ImportStatus.DONE, (job.message, job.errors)

    def import_accounts_api(self, rnd: int) -> None:
        response = self.api.post(f"/incidents/{self.incident_id}/affected-accounts", json={"accounts": [
            {"account_number": f"A{rnd}x{j}", "name": f"Api {j}", "phone": f"+1971555{rnd}{j:03d}",
             "email": f"a{rnd}x{j}@example.com", "locale": "en"} for j in range(4)]})
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["status"] == "done"

    def import_recovery(self, rnd: int, state: str) -> None:
        job = self.upload("recovery", RECOVERY_HEADER + "".join(
            f"S{i},photos,{state},10,{10 if state == 'recovered' else 0},round {rnd}\n" for i in range(FIRST)))
        assert job.status == ImportStatus.DONE, (job.message, job.errors)
        assert job.rows_created + job.rows_updated == FIRST

    def offer(self, rnd: int) -> int:
        until = (utcnow() + timedelta(days=30)).isoformat().replace("+00:00", "Z")
        created = self.api.post(f"/incidents/{self.incident_id}/offer-programs", json={
            "name": f"Gift card {rnd}", "kind": "gift_card", "value": 25, "currency": "USD",
            "eligible_states": ["lost", "recovered"], "valid_until": until})
        assert created.status_code == 201, created.get_json()
        program_id = created.get_json()["id"]
        if rnd % 2:  # issue from the console in some rounds, through the API in the others
            issued = self.api.post(f"/offer-programs/{program_id}/issue")
            assert issued.status_code == 200 and issued.get_json() == {"issued": FIRST, "not_issued": 0}
        else:
            page = self.console.get(f"/ops/offers/{program_id}")
            assert page.status_code == 200
            issued = self.console.post(f"/ops/offers/{program_id}/issue",  # the confirm button's POST
                                       data={"csrf_token": csrf_from(page.get_data(as_text=True)), "confirmed": "1"})
            assert issued.status_code == 303
            assert f"Issued {FIRST} grants." in self.console.get(issued.headers["Location"]).get_data(as_text=True)
        announced = self.api.post(f"/offer-programs/{program_id}/announce")
        assert announced.status_code == 200, announced.get_json()
        return program_id

    def broadcast(self, rnd: int) -> None:
        response = self.api.post(f"/incidents/{self.incident_id}/broadcasts",
                                 json={"message": f"Broadcast {rnd}: sync is coming back.", "channels": ["sms", "email"]})
        assert response.status_code == 201, response.get_json()

    def update(self, rnd: int) -> None:
        message = f"Update {rnd}: we are restoring photos."
        if rnd % 2:
            response = self.api.post(f"/incidents/{self.incident_id}/updates",
                                     json={"status": "identified", "message": message, "notify": True})
            assert response.status_code == 201, response.get_json()
        else:
            response = post_form(self.console, f"/ops/incidents/{self.incident_id}",
                                 {"status": "identified", "message": message, "notify": "y"},
                                 action=f"/ops/incidents/{self.incident_id}/updates")
            assert response.status_code in (302, 303), response.get_data(as_text=True)[:2000]


def test_every_operator_write_works_while_the_notifier_drains_10000_messages(app, database_url):
    app.config["IMPORT_MAX_BYTES"] = 1 << 20
    incident = make_incident("Photo sync outage", categories=("contacts", "calendar", "photos"))
    attach(incident.id, *[f"S{i}" for i in range(FIRST)])
    job = run_import(incident.id, RECOVERY_HEADER + "".join(f"S{i},contacts,recovering,,,\n" for i in range(FIRST)),
                     kind="recovery")
    assert job.status == ImportStatus.DONE
    operator = Operator(app, incident.id)
    queue_backlog(BACKLOG)
    backlog = Notification.dedupe_key.like("backlog:%")

    worker = start_notifier(database_url)
    try:
        programs = []
        for rnd in range(ROUNDS):
            # Each round starts further into the drain (200, 1,700, ... 6,200 sent): the actions meet the worker
            # at full speed, and its scheduled tasks, all along.
            wait_until(lambda: count(backlog, Notification.status == NotificationStatus.SENT) >= 200 + rnd * STEP,
                       300, worker)
            operator.import_accounts_console(rnd)
            operator.import_accounts_api(rnd)
            operator.import_recovery(rnd, "lost" if rnd % 2 == 0 else "recovered")
            programs.append(operator.offer(rnd))
            operator.broadcast(rnd)
            operator.update(rnd)
        # All of it happened while the backlog drained, not after it.
        assert count(backlog, Notification.status == NotificationStatus.SENT) < BACKLOG

        # Every change is there.
        db.session.rollback()
        numbers = set(db.session.scalars(sa.select(Account.account_number).join(AffectedAccount)
                                         .where(AffectedAccount.incident_id == incident.id)))
        assert numbers == ({f"S{i}" for i in range(FIRST)} | {f"C{r}x{j}" for r in range(ROUNDS) for j in range(4)}
                           | {f"A{r}x{j}" for r in range(ROUNDS) for j in range(4)})
        photos = db.session.execute(
            sa.select(RecoveryStatus.state, sa.func.count()).join(RecoveryCategory)
            .where(RecoveryCategory.key == "photos").group_by(RecoveryStatus.state)).all()
        assert [(s.value, n) for s, n in photos] == [("lost", FIRST)]  # the last round (4) set "lost"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryEvent)) == FIRST * (ROUNDS + 1)
        for program_id in programs:
            program = db.session.get(OfferProgram, program_id)
            assert program.announced_at is not None
            assert db.session.scalar(sa.select(sa.func.count()).select_from(OfferGrant)
                                     .where(OfferGrant.program_id == program_id)) == FIRST
            assert count(Notification.broadcast_id.in_(sa.select(Broadcast.id).where(
                Broadcast.cause == f"offer:{program_id}"))) == 2 * FIRST
        kinds = collections.Counter(db.session.scalars(sa.select(Broadcast.kind)))
        assert kinds == {"broadcast": ROUNDS, "update": ROUNDS, "offer": ROUNDS}
        assert db.session.scalar(sa.select(sa.func.count()).select_from(IncidentUpdate)
                                 .where(IncidentUpdate.incident_id == incident.id)) == 1 + ROUNDS

        # Every due message goes out; the recovery notices wait their 2 minutes (accounts.audiences).
        due = Notification.next_attempt_at <= sa.bindparam("now", type_=Notification.next_attempt_at.type)

        def drained():
            db.session.rollback()
            return db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
                Notification.status != NotificationStatus.SENT, due), {"now": utcnow()}) == 0
        wait_until(drained, 600, worker)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
    finally:
        worker.kill()
    output = output_of(worker)

    # ... each exactly once: one attempt, one record at the provider, and nothing else went out.
    db.session.rollback()
    sent = db.session.execute(sa.select(Notification.channel, Notification.recipient, Notification.body,
                                        Notification.attempts).where(Notification.status == NotificationStatus.SENT)).all()
    assert count(backlog, Notification.status == NotificationStatus.SENT) == BACKLOG
    assert {attempts for *_, attempts in sent} == {1}
    # The log keeps each text with its personal link masked (notifications.masking): compare up to the link
    # (the log provider prints 200 characters of the real text).
    unlinked = lambda text: text.partition("/m/")[0]
    assert collections.Counter((c, r, unlinked(b)) for (c, r, b), n in provider_log(output).items()
                               for _ in range(n)) == collections.Counter(
        (c.value, r, unlinked((b or "")[:200])) for c, r, b, _ in sent)
    assert not any(re.search(r"/m/[A-Za-z0-9_-]{16}", b or "") for _c, _r, b, _a in sent)
    waiting = db.session.execute(sa.select(Notification.template, Notification.status).where(
        Notification.status != NotificationStatus.SENT)).all()
    assert {(t, s) for t, s in waiting} <= {("recovery", NotificationStatus.QUEUED)}
    assert " ERROR " not in output and "Traceback" not in output and "database is locked" not in output, \
        output[-5000:]
