"""Running at scale: two web processes (gunicorn, as `make run` serves) and two notifier processes on one
database. Updates filed through either web process reach every subscriber exactly once, and the two
workers together keep to the provider's one limit."""
import bisect
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from core.db import db
from tests.notifications.helpers import add_accounts, make_incident
from tests.notifications.processes import output_of, start_notifier, wait_until

pytestmark = pytest.mark.slow  # starts real processes

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
LIMIT = 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_web(database_url: str, port: int):
    env = {**os.environ, "DATABASE_URL": database_url, "PUBLIC_BASE_URL": "http://status.example.com"}
    log = tempfile.TemporaryFile("w+")
    process = subprocess.Popen([GUNICORN, "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2",
                                "app:create_app()"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               text=True)
    process.log = log
    return process


def post(port: int, path: str, secret: str, body: dict) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/ops/v1{path}", data=json.dumps(body).encode(),
                                     method="POST", headers={"Authorization": f"Bearer {secret}",
                                                             "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/status.json", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_two_web_processes_and_two_workers_deliver_exactly_once_within_one_limit(app, database_url, api_token,
                                                                                 twilio_standin):
    first, second = make_incident("Sync outage"), make_incident("Photo loss")
    add_accounts(first, 120, email=False)
    add_accounts(second, 80, start=500, email=False)
    db.session.commit()
    _operator, secret = api_token
    twilio_standin.latency = 0.02
    ports = [free_port(), free_port()]
    processes = [start_web(database_url, port) for port in ports]
    processes += [start_notifier(database_url, twilio_standin, "--concurrency", "4",
                                 SMS_RATE_PER_SECOND=LIMIT, NOTIFIER_PERIODIC_SECONDS=0) for _ in range(2)]
    try:
        assert wait_until(lambda: all(up(port) for port in ports), 60), [output_of(p) for p in processes]
        assert wait_until(lambda: all("Notifier running" in output_of(p) for p in processes[2:]), 30)
        # One update through each web process, at the same moment: 200 SMS in all.
        assert post(ports[0], f"/incidents/{first.id}/updates", secret,
                    {"status": "identified", "message": "We found the cause.", "notify": True}) == 201
        assert post(ports[1], f"/incidents/{second.id}/updates", secret,
                    {"status": "identified", "message": "Photos are being restored.", "notify": True}) == 201
        assert wait_until(lambda: len(twilio_standin.messages) >= 200, 60, processes[2])
        time.sleep(1)  # anything sent twice would arrive now
        for process in processes:
            process.send_signal(signal.SIGTERM)
        assert [p.wait(30) for p in processes[2:]] == [0, 0]
        outputs = [output_of(p) for p in processes[2:]]
    finally:
        for process in processes:
            process.kill()
            process.wait(10)
    recipients = [m["to"] for m in twilio_standin.messages]
    assert len(recipients) == 200 and len(set(recipients)) == 200  # exactly once each
    # Both workers sent part of it ("Notifier stopped after N message(s).").
    counts = [int(o.rsplit("Notifier stopped after ", 1)[1].split()[0]) for o in outputs]
    assert sum(counts) == 200 and all(c > 0 for c in counts), counts
    # Together within the one limit: two workers each pacing to 40/s on their own put 80 into a second. The
    # budget spaces let-goes on the database's clock, but the arrivals here are stamped by a stand-in that
    # runs in this test's own process, beside the suite, and one CI run saw 47. Whether the stamping or the
    # workers caused that is not known yet (issue 11), so this bound only tells one shared limit from
    # per-process limits; the figure at the provider is bench/notifier_scale.py's (stand-in in its own
    # process: 40-42 with 2 and 4 workers).
    times = sorted(twilio_standin.accepted_at)
    busiest = max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
    assert busiest <= LIMIT * 1.25, busiest
    # And the limit was used, not just respected: 200 at 40/s is 5 s; allow a loaded machine three times that.
    assert times[-1] - times[0] < 15, times[-1] - times[0]
