"""Pacing: never hand a provider more than its rate (SMS segments or emails per second).

A classic token bucket lets a full bucket's burst plus a second's refill through in one second, i.e. up to
twice the rate in some 1-second window. Carriers count per second, so this limiter spaces units evenly
and also keeps a log of recent sends as a hard cap: in ANY window of `1 + margin` seconds at most `rate`
units are let go, and a steady stream still reaches `rate / (1 + margin)`.

Why the margin: the limiter counts the moments sends *start*; the provider counts arrivals, which lag by
a network and processing time that varies by a few milliseconds from one request to the next. Arrivals
inside any 1-second window at the provider started inside a window of 1 second plus that variation, so
capping starts over `1 + margin` seconds keeps the provider's count at or under the rate as long as the
variation stays under the margin (PACING_MARGIN_MS, default 15 ms: 98.5% of the rate). A margin of 0
caps send starts only. The limit is per worker process: with several workers, divide the provider's limit
between them."""
import collections
import threading
import time

GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
           "¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXT = set("^{}\\[~]|€\f")


def sms_segments(text: str) -> int:
    """SMS parts for `text`: notifications.templates.sms_segments when present, else the GSM-7 / UCS-2 rules."""
    try:
        from notifications.templates import sms_segments as from_templates
    except ImportError:
        from_templates = None
    if from_templates is not None:
        return max(1, int(from_templates(text)[0]))
    if all(c in GSM7 or c in GSM7_EXT for c in text):
        units, single, part = sum(2 if c in GSM7_EXT else 1 for c in text), 160, 153
    else:
        units, single, part = sum(2 if ord(c) > 0xFFFF else 1 for c in text), 70, 67  # UTF-16 code units
    return 1 if units <= single else -(-units // part)


class RateLimiter:
    """At most `rate` units in any window of `1 + margin` seconds; `acquire(n)` blocks until `n` units may go.

    `clock` and `sleep` are injectable so tests can run it on a fake clock."""

    def __init__(self, rate: float, *, margin: float = 0.0, clock=time.monotonic, sleep=time.sleep):
        if rate <= 0:
            raise ValueError("rate must be positive")
        if not 0 <= margin < 1:
            raise ValueError("margin must be at least 0 and under 1 second")
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.window = 1.0 + margin
        self._log: collections.deque = collections.deque()  # (time, units) of what left in the last window
        self._used = 0
        # Even spacing too (GCRA): without it the first second of a backlog leaves as one burst, and a burst
        # is what carriers throttle. `_due` is when the next unit is due on a perfect schedule; a send may run
        # one unit early, so a late wake-up does not lose its slot (the hard cap still holds).
        self._spacing = self.window / rate
        self._due = float("-inf")
        self._early = self._spacing
        self._lock = threading.Lock()

    def _take(self, units: int) -> tuple[float, float]:
        """Take `units` now and return (0, now), or return (how long to wait before trying again, now)."""
        with self._lock:
            now = self.clock()
            while self._log and self._log[0][0] <= now - self.window:
                self._used -= self._log.popleft()[1]
            if now < self._due - self._early:
                return self._due - self._early - now, now
            # A message longer than the whole rate (7 segments at 5/s) goes alone, or it would never go.
            if self._used + units <= self.rate or not self._log:
                self._log.append((now, units))
                self._used += units
                self._due = max(self._due, now) + units * self._spacing
                return 0.0, now
            # Wait until enough of the oldest entries leave the window.
            need, freed = self._used + units - self.rate, 0
            for at, n in self._log:
                freed += n
                if freed >= need:
                    return max(at + self.window - now, 1e-4), now
            return self.window, now

    def acquire(self, units: int = 1) -> float:
        """Block until `units` may be sent without exceeding the rate in any window; returns the clock time
        they were counted at."""
        units = max(1, int(units))
        while True:
            wait, now = self._take(units)
            if wait <= 0:
                return now
            self.sleep(wait)
