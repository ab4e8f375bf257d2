"""Benchmark: SIGKILL the real notifier process five times while it sends N SMS (default 10,000).

The notifier (`flask notifier run --concurrency 8`, unpaced, NOTIFIER_LEASE_SECONDS=3) sends to the Twilio
stand-in with 10 ms latency so kills land mid-flight; it is SIGKILLed at 15/30/45/60/75% of the messages
received by the stand-in and restarted each time, then left to finish. Reported: messages lost (rows not
sent at the end, and rows the stand-in never got; goal 0), duplicates at the stand-in (the same message
number received twice), beside the baseline they are judged against: the rows in flight (status sending,
read right after each kill; goal: duplicates <= their total).
Usage: .venv/bin/python bench/worker_crash.py [N] [--postgres]"""
import collections
import re
import signal
import sys
import tempfile
import time

import sqlalchemy as sa

from common import drop_database, fresh_database, tmpdir
from worker_throughput import CONCURRENCY, queue_sms, standin_class, start_notifier, status_counts, stop, wait_for

KILLS = (0.15, 0.30, 0.45, 0.60, 0.75)
LEASE_SECONDS = 3
NUMBER = re.compile(r"message #(\d+):")


def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), 10_000))
    kind = "postgres" if "--postgres" in sys.argv else "sqlite"
    url = fresh_database(kind, tmpdir())
    standin = standin_class()().start()
    try:
        run(url, standin, n, kind)
    finally:
        standin.stop()
        drop_database(url)


def stranded(engine) -> set[tuple]:
    """(id, lease) of each row left in status sending: one claim whose outcome was never recorded. A row
    still sending from an earlier kill keeps its old lease, so it is not counted again."""
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT id, lease_until FROM notifications WHERE status = 'sending'")))


def run(url: str, standin, n: int, kind: str) -> None:
    queue_sms(url, n, prefix="crash")
    standin.latency = 0.01
    settings = dict(SMS_RATE_PER_SECOND=0, NOTIFIER_LEASE_SECONDS=LEASE_SECONDS)
    engine = sa.create_engine(url)
    log = tempfile.TemporaryFile("w+")
    kills = []  # (messages at the stand-in when killed, claims newly stranded, rows in status sending)
    seen = set()
    t = time.perf_counter()
    process = start_notifier(url, standin, log, **settings)
    try:
        for share in KILLS:
            wait_for(lambda: len(standin.messages) >= share * n, 300, process, log)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            received = len(standin.messages)
            claims = stranded(engine)
            kills.append((received, len(claims - seen), len(claims)))
            seen |= claims
            process = start_notifier(url, standin, log, **settings)
        wait_for(lambda: not {"queued", "sending"} & set(status_counts(engine)), 600, process, log)
        wall = time.perf_counter() - t
    finally:
        stop(process)
    counts = status_counts(engine)
    engine.dispose()
    numbers = collections.Counter(int(NUMBER.search(m["body"]).group(1)) for m in standin.messages)
    not_sent = n - counts.get("sent", 0) - counts.get("delivered", 0)
    never_received = n - len(numbers)
    duplicates = sum(c - 1 for c in numbers.values())
    twice = sum(1 for c in numbers.values() if c > 1)
    total_in_flight = sum(f for _, f, _ in kills)

    print(f"notifier crash run, {n:,} SMS, --concurrency {CONCURRENCY}, lease {LEASE_SECONDS} s, "
          f"stand-in latency 10 ms, on {kind}")
    for i, (received, in_flight, sending) in enumerate(kills, 1):
        print(f"  kill {i}: SIGKILL after {received:,} messages at the stand-in; right after: {sending} rows in "
              f"status sending, {in_flight} of them leased by the killed process (in flight)")
    print(f"  finished in {wall:.1f} s after {len(kills)} kills and restarts; final statuses: "
          f"{dict(sorted(counts.items()))}; invalid requests at the stand-in: {len(standin.invalid_requests)}")
    print(f"  lost: {not_sent} rows not sent at the end, {never_received} messages the stand-in never got "
          f"(goal 0)")
    print(f"  baseline: {total_in_flight} rows in flight at the kills (the most that may go twice)")
    print(f"  duplicates at the stand-in: {duplicates} extra sends of {twice} messages "
          f"(goal <= {total_in_flight}); {len(standin.messages):,} requests accepted for {n:,} messages")


if __name__ == "__main__":
    main()
