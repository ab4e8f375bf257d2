"""Benchmark: the real notifier process (`flask notifier run --concurrency 8`) against the Twilio stand-in,
which runs in a process of its own and stamps each request's arrival (the rate meter).

(a) no latency, unpaced: messages/s beside the provider's own speed, i.e. the same number of raw `twilio`
    client creates against the same stand-in from 8 threads in this process (the baseline, same run).
(b) 50 ms latency, SMS_RATE_PER_SECOND=100: achieved rate over the steady part (after the first second),
    % of the limit (goal >= 98%), and the most messages the stand-in accepted in any 1-second window
    (goal <= 100).
Usage: .venv/bin/python bench/worker_throughput.py [N] [--postgres] [--part a|b] [--margin-ms M]
(N SMS per part, default 5,000; M is PACING_MARGIN_MS for part b, default the product's default)"""
import bisect
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from common import ROOT, drop_database, fresh_database, tmpdir

FLASK = str(Path(sys.executable).with_name("flask"))
CONCURRENCY = 8


# -- helpers shared with bench/worker_crash.py ---------------------------------------------------------------
def standin_class():
    """TwilioStandin from the test peers (the bench runs from the repo root, so `tests` is importable)."""
    sys.path.insert(0, str(ROOT))
    from tests.peers.twilio_standin import TwilioStandin
    return TwilioStandin


# The stand-in in a process of its own, as Twilio is: in the benchmark's process its arrival stamps would wait
# for the interpreter behind the benchmark's own polling, and the rate meter would be the noisiest part.
STANDIN = """
import gc, json, sys, time
gc.disable()  # the meter must not pause to collect garbage: it stamps arrivals 10 ms apart
from tests.peers.twilio_standin import TwilioStandin
standin = TwilioStandin().start()
print(json.dumps(standin.env()), flush=True)
for line in sys.stdin:
    command, _, arg = line.strip().partition(" ")
    if command == "latency":
        standin.latency = float(arg)
    elif command == "clear":
        standin.messages.clear()
        standin.accepted_at.clear()
    answer = {"messages": len(standin.messages), "invalid": standin.invalid_requests[:3]}
    if command == "times":
        answer["times"] = sorted(standin.accepted_at)
    elif command == "bodies":
        answer["text"] = " | ".join(str(m.get("body", "")) for m in standin.messages)
    print(json.dumps(answer), flush=True)
standin.stop()
"""


class RemoteStandin:
    """tests/peers/twilio_standin.TwilioStandin in a child process, driven over its stdin/stdout."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-c", STANDIN], cwd=ROOT, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._env = json.loads(self.process.stdout.readline())

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def env(self) -> dict[str, str]:
        return self._env

    def client(self, timeout: float | None = None):
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        client = Client(self._env["TWILIO_ACCOUNT_SID"], self._env["TWILIO_AUTH_TOKEN"],
                        http_client=TwilioHttpClient(timeout=timeout))
        client.api.base_url = self._env["TWILIO_API_BASE_URL"]
        return client

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(10)


def queue_sms(url: str, n: int, *, prefix: str = "bench") -> None:
    """Queue N SMS in one set-based insert; message i goes to a recipient and body unique to i."""
    from core.db import utcnow
    from notifications.models import Channel, Notification, NotificationStatus

    now = utcnow()
    engine = sa.create_engine(url)
    rows = [{"dedupe_key": f"{prefix}:sms:{i}", "channel": Channel.SMS, "recipient": f"+1206{2000000 + i:07d}",
             "body": f"Lifeboat bench {prefix} message #{i}: your data is being restored.", "subject": "",
             "template": "", "language": "en", "segments": 1, "urgent": False,
             "status": NotificationStatus.QUEUED, "attempts": 0, "next_attempt_at": now, "created_at": now,
             "updated_at": now} for i in range(n)]
    with engine.begin() as conn:
        for start in range(0, n, 5000):
            conn.execute(sa.insert(Notification.__table__), rows[start:start + 5000])
    engine.dispose()


def status_counts(engine) -> dict[str, int]:
    """Rows per status, read in a fresh transaction."""
    with engine.connect() as conn:
        return {str(s): c for s, c in conn.execute(sa.text(
            "SELECT status, count(*) FROM notifications GROUP BY status"))}


def start_notifier(url: str, standin, log, **settings) -> subprocess.Popen:
    """The real notifier command, output to `log` (a full pipe would block it)."""
    env = {**os.environ, **standin.env(), "DATABASE_URL": url, "QUIET_HOURS": "",
           "PUBLIC_BASE_URL": "http://status.example.com", **{k: str(v) for k, v in settings.items()}}
    return subprocess.Popen([FLASK, "--app", "app", "notifier", "run", "--concurrency", str(CONCURRENCY),
                             "--interval", "0.2"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for(predicate, timeout: float, process=None, log=None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process is not None and process.poll() is not None:
            log.seek(0)
            raise SystemExit(f"notifier exited with {process.returncode}:\n{log.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit("benchmark timed out waiting for the notifier")
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def busiest_second(times: list[float]) -> int:
    """The most timestamps in any 1-second window [t, t + 1)."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


# -- the benchmark -------------------------------------------------------------------------------------------
def baseline(standin, n: int, threads: int = CONCURRENCY) -> float:
    """Raw twilio client creates from `threads` threads (8), one client each: messages/s (the stand-in's own
    speed)."""
    from_number = standin.env()["TWILIO_FROM_NUMBER"]
    counter = iter(range(n))
    lock = threading.Lock()

    def sender():
        client = standin.client(timeout=10)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            client.messages.create(to=f"+1425{3000000 + i:07d}", from_=from_number, body=f"baseline #{i}")

    pool = [threading.Thread(target=sender) for _ in range(threads)]
    t = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return n / (time.perf_counter() - t)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def run_worker(url: str, standin, n: int, **settings) -> tuple[float, list[float], float]:
    """Queue N, run the notifier until all N are sent; returns (wall seconds from process start, accept times,
    the notifier's CPU seconds)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM notifications"))
    queue_sms(url, n)
    standin.ask("clear")
    log = tempfile.TemporaryFile("w+")
    t = time.perf_counter()
    process = start_notifier(url, standin, log, **settings)
    try:
        wait_for(lambda: status_counts(engine).get("sent", 0) >= n, 600, process, log)
        wall = time.perf_counter() - t
        cpu = cpu_seconds(process.pid)
    finally:
        stop(process)
        engine.dispose()
    seen = standin.ask("times")
    assert seen["messages"] == n, (seen["messages"], n)
    assert not seen["invalid"], seen["invalid"]
    return wall, seen["times"], cpu


def _option(name: str, default: str | None) -> str | None:
    args = sys.argv[1:]
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else default


def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit() and a != _option("--margin-ms", None)), 5_000))
    kind = "postgres" if "--postgres" in sys.argv else "sqlite"
    part = _option("--part", "ab")
    margin = _option("--margin-ms", None)
    url = fresh_database(kind, tmpdir())
    standin = RemoteStandin()
    try:
        run(url, standin, n, kind, part=part, margin=margin)
    finally:
        standin.stop()
        drop_database(url)


def run(url: str, standin, n: int, kind: str, *, part: str = "ab", margin: str | None = None) -> None:
    print(f"notifier throughput, {n:,} SMS per part, --concurrency {CONCURRENCY}, on {kind}")
    if "a" in part:
        unpaced(url, standin, n)
    if "b" in part:
        paced(url, standin, n, margin)


def unpaced(url: str, standin, n: int) -> None:
    standin.ask("latency 0")
    base = baseline(standin, n)
    wall, times, cpu = run_worker(url, standin, n, SMS_RATE_PER_SECOND=0)
    at_standin = (len(times) - 1) / (times[-1] - times[0])
    print("(a) no latency, unpaced")
    print(f"  baseline (raw twilio creates, {CONCURRENCY} threads, this process): {base:,.0f} messages/s")
    print(f"  notifier, first to last message at the stand-in: {at_standin:,.0f} messages/s "
          f"({at_standin / base:.0%} of baseline)")
    print(f"  notifier, end to end incl. process start: {wall:.1f} s, {n / wall:,.0f} messages/s; notifier CPU "
          f"{cpu:.1f} s ({cpu / wall:.0%} of one core, {cpu / n * 1000:.1f} ms per message incl. start)")


def paced(url: str, standin, n: int, margin: str | None) -> None:
    limit = 100
    standin.ask("latency 0.05")
    settings = {"SMS_RATE_PER_SECOND": limit} | ({"PACING_MARGIN_MS": margin} if margin is not None else {})
    wall, times, _ = run_worker(url, standin, n, **settings)
    start = times[0] + 1.0  # the steady part: after the first second
    steady = [t for t in times if t >= start]
    rate = (len(steady) - 1) / (steady[-1] - steady[0])
    busiest = busiest_second(times)
    busiest_steady = busiest_second(steady)
    first_second = bisect.bisect_left(times, times[0] + 1.0)
    print(f"(b) 50 ms latency, SMS_RATE_PER_SECOND={limit}, PACING_MARGIN_MS={margin or 'default'}")
    print(f"  baseline: the limit, {limit} messages/s")
    print(f"  notifier, steady part ({len(steady):,} messages after the first second): {rate:.2f} messages/s, "
          f"{rate / limit:.1%} of the limit (goal >= 98%)")
    print(f"  first second: {first_second} messages; end to end incl. process start: {wall:.1f} s")
    print(f"  most accepted in any 1-second window: {busiest} overall, {busiest_steady} in the steady part "
          f"(goal <= {limit})")
    # The limiter caps send STARTS (limiter time, in the worker); the stand-in stamps arrivals, which lag
    # by a varying request time (HTTP, GIL in both processes). How far apart are the tightest limit+1
    # consecutive arrivals (over the limit when under 1000 ms), and how many 1-second windows went over?
    tightest = min(times[i + limit] - times[i] for i in range(len(times) - limit))
    over = sum(1 for i, t in enumerate(times) if bisect.bisect_left(times, t + 1.0) - i > limit)
    gaps = sorted(b - a for a, b in zip(steady, steady[1:]))
    print(f"  over the limit: {over} of {len(times):,} windows (one per message); the tightest {limit + 1} "
          f"consecutive arrivals span {tightest * 1000:.1f} ms; steady inter-arrival gap p1/p50/p99: "
          f"{gaps[len(gaps) // 100] * 1000:.1f}/{gaps[len(gaps) // 2] * 1000:.1f}/"
          f"{gaps[len(gaps) * 99 // 100] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
