"""Benchmark: /metrics and the /ops queue panel on an outbox of N rows (default 1,000,000), beside a floor.

Two shapes of outbox, each in a fresh database:
  backlog  every row queued (an offer announcement to N subscribers: mostly the offer class, some updates and
           codes, 5% held for later), 70% SMS, 30% email: the worst case, every row is counted;
  history  N - 10,000 rows already sent over the last day (about 700 a minute) and 10,000 queued: the usual
           case, where the sent rows must cost nothing.
The floor is the bare count a queue gauge cannot do without: SELECT count(*) of the queued rows. Each figure
is the median of 7 runs after one warm-up; on SQLite before and after ANALYZE (nothing runs it in production),
on PostgreSQL before and after VACUUM (index-only scans need the visibility map, which autovacuum sets some
time after a bulk insert).
Usage: .venv/bin/python bench/metrics_queries.py [N] [--postgres] [--shape backlog|history]"""
import statistics
import sys
import time

import sqlalchemy as sa

from common import drop_database, fresh_database, tmpdir

TOKEN = "bench-metrics-token-0123456789"


def fill(conn, n: int, shape: str) -> None:
    """N outbox rows in one INSERT ... SELECT."""
    pg = conn.dialect.name == "postgresql"
    series = ("SELECT generate_series(1, :n) AS i" if pg else
              "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) SELECT i FROM s")
    if pg:
        at = "(now() at time zone 'utc') + make_interval(secs => {})"
    else:
        at = "strftime('%Y-%m-%d %H:%M:%S', 'now', ({}) || ' seconds') || '.000000'"
    queued = "TRUE" if shape == "backlog" else "i <= 10000"
    status = f"CASE WHEN {queued} THEN 'queued' WHEN i % 5 = 0 THEN 'delivered' ELSE 'sent' END"
    next_at = at.format(f"CASE WHEN {queued} AND i % 20 = 0 THEN 3600 ELSE -(i % 3600) END")
    sent_at = f"CASE WHEN {queued} THEN NULL ELSE {at.format('-(i % 86400)')} END"
    conn.execute(sa.text(f"""
        INSERT INTO notifications (dedupe_key, channel, recipient, template, language, subject, segments, urgent,
                                   priority, fair_key, status, attempts, next_attempt_at, created_at, updated_at,
                                   sent_at)
        SELECT 'bench:' || i, CASE WHEN i % 10 < 7 THEN 'sms' ELSE 'email' END, 'r' || i, 'offer', 'en', '', 1,
               FALSE, CASE WHEN i % 100 < 90 THEN 5 WHEN i % 100 < 98 THEN 3 ELSE 1 END, i, {status}, 0,
               {next_at}, {at.format('-86400')}, {at.format('-86400')}, {sent_at}
        FROM ({series}) g"""), {"n": n})
    # A few workers' rows, as a running deployment has.
    for w in range(4):
        counters = ('{"sends|sms|sent|": 250000, "sends|sms|failed|30003": 120, "sends|email|sent|": 90000, '
                    '"latency|sms|0.25": 250120, "latency_sum|sms": 40000.5, "latency_count|sms": 250120}')
        conn.execute(sa.text("INSERT INTO notifier_workers (id, host, pid, started_at, seen_at, stopped_at, counters) "
                             f"VALUES (:id, 'bench', :pid, {at.format('-3600')}, {at.format('0')}, NULL, :c)"),
                     {"id": f"w{w}", "pid": 1000 + w, "c": counters})


def median_ms(fn, runs: int = 7) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), 1_000_000))
    kind = "postgres" if "--postgres" in sys.argv else "sqlite"
    shapes = [sys.argv[sys.argv.index("--shape") + 1]] if "--shape" in sys.argv else ["backlog", "history"]
    for shape in shapes:
        url = fresh_database(kind, tmpdir())
        try:
            run(url, n, kind, shape)
        finally:
            drop_database(url)


def run(url: str, n: int, kind: str, shape: str) -> None:
    from app import create_app
    from core.db import db, utcnow
    from notifications import monitoring

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "METRICS_TOKEN": TOKEN})
    with app.app_context():
        t = time.perf_counter()
        with db.engine.begin() as conn:
            fill(conn, n, shape)
        print(f"[{kind}, {shape}] {n:,} outbox rows loaded in {time.perf_counter() - t:.1f} s")
        client = app.test_client()

        def scrape():
            response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert response.status_code == 200, response.status_code
            return response

        def panel():
            monitoring.panel(db.session)
            db.session.rollback()

        def floor():
            with db.engine.connect() as conn:
                conn.execute(sa.text("SELECT count(*) FROM notifications WHERE status = 'queued'")).scalar()

        def measure(label: str) -> None:
            m, p, f = median_ms(scrape), median_ms(panel), median_ms(floor)
            print(f"[{kind}, {shape}, {label}] /metrics {m:.1f} ms, /ops panel figures {p:.1f} ms; "
                  f"floor (bare count of queued rows) {f:.1f} ms; /metrics = {m / f:.2f}x floor")

        if kind == "sqlite":
            measure("no ANALYZE, as in production")
        with db.engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
        if kind == "postgres":
            measure("after ANALYZE, before VACUUM")
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE notifications"))
        measure("after VACUUM" if kind == "postgres" else "after ANALYZE")
        body = scrape().get_data(as_text=True)
        queued = sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                     if line.startswith("lifeboat_notifier_queue_messages{"))
        print(f"[{kind}, {shape}] /metrics counts {queued:,.0f} rows in the queue")
        explain(db, kind, monitoring, utcnow())


def explain(db, kind: str, monitoring, now) -> None:
    """The plans of the queue and rate statements, compiled as the product runs them."""
    statements = {"queue": None, "sent in the last minute": None}
    captured = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if "FROM notifications" in statement:
            captured.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", keep)
    try:
        monitoring.queue(db.session, now=now)
        monitoring.sent_since(db.session, since=now - monitoring.RATE_WINDOW)
        db.session.rollback()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", keep)
    for name, (statement, parameters) in zip(statements, captured):
        prefix = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " if kind == "postgres" else "EXPLAIN QUERY PLAN "
        with db.engine.connect() as conn:
            rows = conn.exec_driver_sql(prefix + statement, parameters).all()
        plan = [r[-1] if kind == "sqlite" else r[0] for r in rows]
        print(f"  plan of the {name} statement:\n    " + "\n    ".join(plan))


if __name__ == "__main__":
    main()
