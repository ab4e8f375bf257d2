"""A small fixed-window rate limiter kept in the database, so it holds across web processes."""
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db, utcnow


class RateLimitHit(db.Model):
    __tablename__ = "rate_limit_hits"
    __table_args__ = (sa.Index("ix_rate_limit_hits_bucket_at", "bucket", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bucket: Mapped[str] = mapped_column(sa.String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def exceeded(session, bucket: str, *, limit: int, window_seconds: int) -> bool:
    """True when `bucket` already had `limit` hits in the window."""
    since = utcnow() - timedelta(seconds=window_seconds)
    used = session.scalar(sa.select(sa.func.count()).select_from(RateLimitHit)
                          .where(RateLimitHit.bucket == bucket, RateLimitHit.at >= since))
    return used >= limit


def record(session, bucket: str) -> None:
    session.add(RateLimitHit(bucket=bucket, at=utcnow()))


def hit(session, bucket: str, *, limit: int, window_seconds: int) -> bool:
    """Count one hit in `bucket`; False when the bucket already had `limit` hits in the window."""
    if exceeded(session, bucket, limit=limit, window_seconds=window_seconds):
        return False
    record(session, bucket)
    return True


def prune(session, older_than_seconds: int = 86400) -> int:
    """Forget hits older than a day (called now and then)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    return session.execute(sa.delete(RateLimitHit).where(RateLimitHit.at < cutoff)).rowcount
