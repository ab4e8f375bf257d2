"""Rate limits kept in the database, so they hold across web processes and machines: sliding-window counters.

Each bucket keeps one counter per fixed window (say, per hour). A check reads this window's counter and the
previous one, and counts the previous one in proportion to how much of it the sliding window still covers
(the approximation Cloudflare and nginx use). A check is two statements whatever the limit, so a limit of
100,000 an hour costs what a limit of 3 does; the old log of one row per hit made each check count them all.
Two requests racing at the very limit may both pass: a limit here is a brake, not an exact ledger.
"""
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db, utcnow


class RateLimitCounter(db.Model):
    __tablename__ = "rate_limit_counters"

    bucket: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


def _window(now: datetime, window_seconds: int) -> tuple[datetime, float]:
    """The start of the fixed window holding `now`, and how far into it `now` is (0..1)."""
    epoch = now.timestamp()
    start = epoch - epoch % window_seconds
    return datetime.fromtimestamp(start, timezone.utc), (epoch - start) / window_seconds


_counters = RateLimitCounter.__table__
_USED = (sa.select(_counters.c.window_start, _counters.c.count)
         .where(_counters.c.bucket == sa.bindparam("b"),
                _counters.c.window_start.in_([sa.bindparam("now", type_=UTCDateTime),
                                              sa.bindparam("before", type_=UTCDateTime)])))


def used(session, bucket: str, *, window_seconds: int, now: datetime | None = None) -> float:
    """Hits in the sliding window that ends now (this window's, plus the previous one's still covered)."""
    start, into = _window(now or utcnow(), window_seconds)
    previous = start - timedelta(seconds=window_seconds)
    counts = dict(session.connection().execute(_USED, {"b": bucket, "now": start, "before": previous}).all())
    return counts.get(start, 0) + counts.get(previous, 0) * (1 - into)


def exceeded(session, bucket: str, *, limit: int, window_seconds: int) -> bool:
    """True when `bucket` already had `limit` hits in the sliding window."""
    return used(session, bucket, window_seconds=window_seconds) >= limit


# The same SQL on SQLite and PostgreSQL; as text its compiled form is cached (the dialects' on_conflict
# constructs were compiled anew on every call, which cost more than running them).
_UPSERT = sa.text(
    "INSERT INTO rate_limit_counters (bucket, window_start, count) VALUES (:b, :w, 1) "
    "ON CONFLICT (bucket, window_start) DO UPDATE SET count = rate_limit_counters.count + 1"
).bindparams(sa.bindparam("w", type_=UTCDateTime))


def record(session, bucket: str, *, window_seconds: int) -> None:
    """Count one hit in `bucket`'s current window (an upsert: one statement)."""
    start, _ = _window(utcnow(), window_seconds)
    session.connection().execute(_UPSERT, {"b": bucket, "w": start})


def hit(session, bucket: str, *, limit: int, window_seconds: int) -> bool:
    """Count one hit in `bucket`; False (and nothing counted) when it already had `limit` in the window."""
    if exceeded(session, bucket, limit=limit, window_seconds=window_seconds):
        return False
    record(session, bucket, window_seconds=window_seconds)
    return True


def cooldown(session, bucket: str, *, seconds: int) -> bool:
    """At most one hit per `seconds` in `bucket`, exactly (the sliding window's approximation is too loose for
    a limit of one): False when the last hit was less than `seconds` ago, else counts this one."""
    now = utcnow()
    last = session.scalar(sa.select(sa.func.max(RateLimitCounter.window_start))
                          .where(RateLimitCounter.bucket == bucket))
    if last is not None and last > now - timedelta(seconds=seconds):
        return False
    session.add(RateLimitCounter(bucket=bucket, window_start=now, count=1))
    return True


def prune(session, older_than_seconds: int = 86400) -> int:
    """Forget windows that ended long ago (run by the scheduler); keep it above the longest window."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    return session.execute(sa.delete(RateLimitCounter).where(RateLimitCounter.window_start < cutoff)).rowcount
