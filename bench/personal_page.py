"""Benchmark: personal-page lookup p95 with N affected accounts loaded (default 1,000,000; 6 categories,
recovery rows for every account), beside the framework floor measured in the same run.

Each sample is what a subscriber's SMS link does: GET /m/<token> (token check, session) then GET /my/account
(the page). The floor is GET of a static file through the same app and client.
Usage: .venv/bin/python bench/personal_page.py [N] [--postgres] [--samples 500]"""
import random
import statistics
import sys
import time

from common import CATEGORIES, drop_database, fresh_database, load_affected_accounts as load, tmpdir

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
