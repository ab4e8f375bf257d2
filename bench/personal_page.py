"""Benchmark: personal-page lookup p95 with N affected accounts loaded (default 1,000,000; 6 categories,
recovery rows for every account), beside the framework floor measured in the same run.

Each sample is what a subscriber's SMS link does: GET /m/<token> (token check, session) then GET /my/account
(the page). The floor is GET of a static file through the same app and client.
Usage: .venv/bin/python bench/personal_page.py [N] [--postgres] [--samples 500]"""
import random
import statistics
import sys
import time

from common import drop_database, fresh_database, tmpdir

CATEGORIES = ("contacts", "calendar", "photos", "notes", "tasks", "ringtones")
STATES = ("recovered", "recovering", "lost", "partially_recovered", "at_risk", "unknown")


def load(conn, n: int) -> None:
    """Generate N accounts, attach them, and give each account a status in every category (set-based SQL)."""
    pg = conn.dialect.name == "postgresql"
    series = ("SELECT generate_series(1, :n) AS i" if pg else
              "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) SELECT i FROM s")
    now = "now()" if pg else "CURRENT_TIMESTAMP"
    lpad = "lpad(i::text, 8, '0')" if pg else "printf('%08d', i)"
    phone = "'+1206' || lpad((2000000 + i)::text, 7, '0')" if pg else "'+1206' || printf('%07d', 2000000 + i)"
    conn.exec_driver_sql("SELECT 1")
    import sqlalchemy as sa
    conn.execute(sa.text(f"""
        INSERT INTO accounts (account_number, name, phone, email, language, time_zone, sms_opt_out, email_opt_out,
                              created_at, updated_at)
        SELECT 'SK' || {lpad}, 'Subscriber ' || i, {phone}, 'user' || i || '@example.com',
               CASE WHEN i % 5 = 0 THEN 'es' ELSE 'en' END, 'America/Los_Angeles', FALSE, FALSE, {now}, {now}
        FROM ({series}) g"""), {"n": n})
    conn.execute(sa.text(f"""
        INSERT INTO affected_accounts (incident_id, account_id, state, added_at, updated_at)
        SELECT 1, id, 'partially_recovered', {now}, {now} FROM accounts"""))
    for pos, key in enumerate(CATEGORIES):
        conn.execute(sa.text("INSERT INTO recovery_categories (incident_id, key, label, position) "
                             "VALUES (1, :k, :l, :p)"), {"k": key, "l": key.capitalize(), "p": pos})
        state = STATES[pos]
        conn.execute(sa.text(f"""
            INSERT INTO recovery_statuses (affected_account_id, category_id, state, items_total, items_recovered,
                                           note, updated_by, updated_at)
            SELECT aa.id, c.id, :state, 100, 50, '', 'bench', {now}
            FROM affected_accounts aa, recovery_categories c WHERE c.key = :k"""), {"state": state, "k": key})


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[94] * 1000


def main() -> None:
    args = sys.argv[1:]
    n = int(next((a for a in args if a.isdigit()), 1_000_000))
    kind = "postgres" if "--postgres" in args else "sqlite"
    count = int(args[args.index("--samples") + 1]) if "--samples" in args else 500
    work = tmpdir()
    url = fresh_database(kind, work)
    try:
        run(url, n, count, kind)
    finally:
        drop_database(url)


def run(url: str, n: int, count: int, kind: str) -> None:
    from app import create_app
    from accounts.links import issue_link
    from core.db import db
    from incidents import service
    from ops.audit import Actor

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        service.create_incident(db.session, actor=Actor.cli("bench"), data={
            "name": "Sidekick data loss", "impact": "critical", "message": "We are restoring your data."})
        db.session.commit()
        t = time.perf_counter()
        with db.engine.begin() as conn:
            load(conn, n)
        print(f"loaded {n:,} accounts x {len(CATEGORIES)} categories in {time.perf_counter() - t:.0f} s")
        picks = random.Random(7).sample(range(1, n + 1), count)
        tokens = [issue_link(db.session, aa_id, 30) for aa_id in picks]
        db.session.commit()
    client = app.test_client()
    for token in tokens[:20]:  # warm up caches and the connection pool
        client.get(f"/m/{token}")
        client.get("/my/account")
    link, page, both, floor = [], [], [], []
    for token in tokens:
        t0 = time.perf_counter()
        r1 = client.get(f"/m/{token}")
        t1 = time.perf_counter()
        r2 = client.get("/my/account")
        t2 = time.perf_counter()
        assert r1.status_code in (302, 303) and r2.status_code == 200, (r1.status_code, r2.status_code)
        link.append(t1 - t0)
        page.append(t2 - t1)
        both.append(t2 - t0)
        t3 = time.perf_counter()
        client.get("/static/style.css").close()
        floor.append(time.perf_counter() - t3)
    print(f"personal page with {n:,} affected accounts on {kind}, {count} random subscribers")
    print(f"  floor (GET a static file, same app and client): p95 {p95(floor):.2f} ms")
    print(f"  GET /m/<token> (link check + session):          p95 {p95(link):.2f} ms")
    print(f"  GET /my/account (the personal page):            p95 {p95(page):.2f} ms, median {statistics.median(page) * 1000:.2f} ms")
    print(f"  link + page together:                           p95 {p95(both):.2f} ms (goal < 20 ms for the page)")


if __name__ == "__main__":
    main()
