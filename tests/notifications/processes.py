"""The real `flask --app app notifier run` command in a process of its own, for the tests that start it: its
output kept in a temporary file, and a wait that fails with that output if the process died."""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


FLASK = str(Path(sys.executable).with_name("flask"))


def start_notifier(database_url, standin, *extra, **settings):
    """Start the notifier command; its output goes to a temporary file (a full pipe would block it)."""
    env = {**os.environ, **standin.env(), "DATABASE_URL": database_url, "QUIET_HOURS": "",
           "NOTIFIER_POLL_SECONDS": "0.2", "PUBLIC_BASE_URL": "http://status.example.com",
           **{k: str(v) for k, v in settings.items()}}
    log = tempfile.TemporaryFile("w+")
    process = subprocess.Popen([FLASK, "--app", "app", "notifier", "run", *extra], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, text=True)
    process.log = log
    return process


def output_of(process) -> str:
    process.log.seek(0)
    return process.log.read()


def wait_until(predicate, timeout, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        assert process is None or process.poll() is None, output_of(process)
        time.sleep(0.05)
    return False
