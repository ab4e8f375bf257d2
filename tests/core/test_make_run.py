"""`make run` really starts: migrates, seeds the demo once, prints the sign-in each time, serves on PORT
beside the notifier worker, and Ctrl-C stops every process it started."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_of(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def everything_ended(group: int, within: float = 15) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)  # signal 0 only asks whether any process of the group is alive
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def make_run(tmp_path: Path, port: int) -> str:
    """Start `make run`, wait until it serves, check two pages, stop it like Ctrl-C; return its output."""
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
           "DEMO_CREDENTIALS_FILE": str(tmp_path / "demo-credentials.txt"), "WEB_WORKERS": "1"}
    env.pop("PUBLIC_BASE_URL", None)
    log = (tmp_path / "make-run.log").open("w+")
    # Its own process group, so the stop below reaches make, the script and the server, like Ctrl-C does.
    proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # the first run may install requirements
        while status_of(f"{base}/ops/sign-in") != 200:
            assert proc.poll() is None, (tmp_path / "make-run.log").read_text()
            assert time.monotonic() < deadline, "make run did not start serving"
            time.sleep(0.3)
        assert status_of(f"{base}/") == 200
        # Links in messages, feeds and /api/v2 lead back to the port it serves on (PUBLIC_BASE_URL unset).
        with urllib.request.urlopen(f"{base}/api/v2/summary.json", timeout=10) as answer:
            assert json.load(answer)["page"]["url"] == base
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            alive = subprocess.run(["ps", "-o", "pid,stat,etime,args", "-g", str(proc.pid)], capture_output=True,
                                   text=True).stdout
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"make run did not stop within 30 s of Ctrl-C; still running:\n{alive}\n"
                        f"its output:\n{(tmp_path / 'make-run.log').read_text()[-4000:]}")
    assert status_of(f"{base}/") is None, "the server is still running after Ctrl-C"
    assert everything_ended(proc.pid), "a process of `make run` outlived Ctrl-C"
    log.seek(0)
    return log.read()


def test_make_run_seeds_once_and_prints_the_demo_sign_in_every_time(tmp_path):
    port = free_port()
    first = make_run(tmp_path, port)
    assert "Seeded the demo" in first
    assert "started web" in first and "started notifier" in first
    assert f"http://127.0.0.1:{port}" in first
    sign_in = next(line for line in first.splitlines() if "password" in line and "demo@lifeboat.example" in line)

    second = make_run(tmp_path, port)
    assert "Seeded the demo" not in second
    assert sign_in in second
