"""Benchmark: the rate-limit store under a surge. Checks per second of core.ratelimit.hit (a sliding-window
counter: read two windows, upsert one) on a bucket already holding many hits, one transaction per check as
a request would, beside the bare floor measured in the same run: the same upsert on a minimal counter table
through the raw driver (sqlite3 or psycopg), no app, no ORM.

Usage: .venv/bin/python bench/ratelimit.py [CHECKS] [--postgres]"""
import sys
import time

from common import drop_database, fresh_database, tmpdir

PRIOR_HITS = 100_000  # a NAT address or the global budget deep into a busy hour


def main() -> None:
    args = sys.argv[1:]
    checks = int(next((a for a in args if a.isdigit()), 5000))
    kind = "postgres" if "--postgres" in args else "sqlite"
    url = fresh_database(kind, tmpdir())
    try:
        ours = run_ours(url, checks)
        floor = run_floor(url, checks, kind)
    finally:
        drop_database(url)
    print(f"{kind}: core.ratelimit.hit {ours:,.0f} checks/s on a bucket with {PRIOR_HITS:,} hits; "
          f"bare upsert {floor:,.0f}/s; ratio {ours / floor:.2f}x of the floor")


def run_ours(url: str, checks: int) -> float:
    from app import create_app
    from core import ratelimit
    from core.db import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        for _ in range(PRIOR_HITS // 1000):
            for _ in range(1000):
                ratelimit.record(db.session, "my:code:all", window_seconds=3600)
            db.session.commit()
        t = time.perf_counter()
        for _ in range(checks):
            assert ratelimit.hit(db.session, "my:code:all", limit=10**9, window_seconds=3600)
            db.session.commit()
        elapsed = time.perf_counter() - t
        db.engine.dispose()
    return checks / elapsed


def run_floor(url: str, checks: int, kind: str) -> float:
    create = "CREATE TABLE floor_counter (bucket TEXT, w TIMESTAMP, n INTEGER, PRIMARY KEY (bucket, w))"
    upsert = ("INSERT INTO floor_counter VALUES ({p}, {p}, 1) "
              "ON CONFLICT (bucket, w) DO UPDATE SET n = floor_counter.n + 1")
    if kind == "sqlite":
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        sql, param = upsert.format(p="?"), "?"
    else:
        import psycopg

        conn = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"))
        sql, param = upsert.format(p="%s"), "%s"
    conn.execute(create)
    conn.commit()
    t = time.perf_counter()
    for _ in range(checks):
        conn.execute(sql, ("my:code:all", "2026-11-30 01:00:00"))
        conn.commit()
    elapsed = time.perf_counter() - t
    conn.close()
    return checks / elapsed


if __name__ == "__main__":
    main()
