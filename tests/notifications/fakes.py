"""Fakes for the worker tests: a clock the test moves by hand, a provider that records what it was given, and a
worker built on them."""
import threading
import time
from datetime import datetime, timedelta, timezone

from notifications import worker
from notifications.providers import Sent


class Clock:
    """A frozen "now" (by default just after the rows were queued) that the test moves by hand."""

    def __init__(self, now=None):
        self.now = now or datetime.now(timezone.utc) + timedelta(seconds=1)

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


class Recording:
    """A provider that records the ids it was given; `errors` are raised, in order, before it succeeds."""

    name = "rec"

    def __init__(self, *errors, latency=0.0):
        self.errors, self.latency = list(errors), latency
        self.sent, self.bodies, self.calls = [], [], 0
        self.lock = threading.Lock()

    def send(self, message):
        time.sleep(self.latency)
        with self.lock:
            self.calls += 1
            if self.errors:
                raise self.errors.pop(0)
            self.sent.append(message.id)
            self.bodies.append(message.body)
        return Sent(provider_id=f"rec-{message.id}")


def make_worker(app, provider, clock=None, **settings):
    settings = {"sms_rate": 1000, "email_rate": 1000, "concurrency": 2, "lease_seconds": 60, **settings}
    return worker.build(app, providers={"sms": provider, "email": provider}, clock=clock or Clock(), **settings)
