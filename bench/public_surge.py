"""Benchmark: the public pages under a surge, served as `make run` serves them (gunicorn, 2 workers x 4 threads),
beside a static file from the same server in the same run.

Data: 20 components in 4 groups, two years of incidents (about 3 a week, each with 3 updates and component
changes), the open outage with 1,000,000 affected accounts x 6 categories (use a smaller N to try it quickly).
Load: wrk (Debian's package), 2 threads, 32 connections, each path in turn. Reports req/s, p50 and p99 latency,
errors, and each path's share of the static file's req/s. Goals (issue 10): every public path >= 75% of the
static file, p99 < 50 ms, 0 errors.

Usage: .venv/bin/python bench/public_surge.py [ACCOUNTS] [--postgres] [--seconds 10] [--connections 32]"""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta

from common import ROOT, drop_database, fresh_database, load_affected_accounts, tmpdir

PORT = 5097
PATHS = ["/static/style.css", "/", "/incidents/{open}", "/incidents/{old}", "/history", "/history?page=3",
         "/history.atom", "/api/v2/summary.json", "/api/v2/status.json", "/api/v2/components.json",
         "/api/v2/incidents.json", "/api/v2/incidents/unresolved.json", "/api/v2/scheduled-maintenances.json",
         "/api/v2/scheduled-maintenances/upcoming.json", "/api/v2/scheduled-maintenances/active.json", "/my"]


def main() -> None:
    args = sys.argv[1:]
    n = int(next((a for a in args if a.isdigit()), 1_000_000))
    kind = "postgres" if "--postgres" in args else "sqlite"
    seconds = int(args[args.index("--seconds") + 1]) if "--seconds" in args else 10
    connections = int(args[args.index("--connections") + 1]) if "--connections" in args else 32
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    work = tmpdir()
    url = fresh_database(kind, work)
    try:
        ids = seed(url, n)
        run(url, work, ids, seconds, connections, kind, n)
    finally:
        drop_database(url)


def seed(url: str, n: int) -> dict:
    from app import create_app
    from demo import seed as demo
    from core.db import db, utcnow
    from incidents import service
    from ops.audit import Actor

    actor = Actor.cli("bench")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    t = time.perf_counter()
    with app.app_context():
        now = utcnow()
        components = []
        for g in range(4):
            group = service.create_group(db.session, actor=actor, data={"name": f"Group {g + 1}"})
            for c in range(5):
                components.append(service.create_component(db.session, actor=actor, data={
                    "name": f"Service {g + 1}.{c + 1}", "group_id": group.id}))
        for c in components:
            c.created_at = c.updated_at = now - timedelta(days=800)
        seeded = demo.Seeded(components={c.name: c for c in components})  # the demo's story player backdates
        rng = random.Random(7)
        old_id = None
        for week in range(104, 0, -1):
            for k in range(3):
                start = now - timedelta(weeks=week, days=k * 2, hours=rng.randint(0, 12))
                hit = rng.sample(components, rng.randint(1, 3))
                story = {"name": f"Incident {week}.{k}", "impact": rng.choice(["minor", "major"]),
                         "components": [c.name for c in hit], "updates": [
                             (timedelta(0), {"status": "investigating", "message": "We are looking into it.",
                                             "components": {c.name: "partial_outage" for c in hit}}),
                             (timedelta(hours=1), {"status": "identified", "message": "We found the cause."}),
                             (timedelta(hours=3), {"status": "resolved", "message": "**Fixed.** All is well.",
                                                   "components": {c.name: "operational" for c in hit}})]}
                incident = demo._play(db.session, seeded, story, start)
                old_id = old_id or incident.id
            db.session.commit()
        outage = service.create_incident(db.session, actor=actor, data={
            "name": "Sidekick data loss", "impact": "critical", "message": "We are restoring your data.",
            "component_ids": [components[0].id], "component_statuses": {str(components[0].id): "major_outage"}})
        db.session.commit()
        open_id = outage.id
        with db.engine.begin() as conn:
            load_accounts_into(conn, n, open_id)
        db.engine.dispose()
    print(f"seeded 20 components, 312 past incidents and {n:,} affected accounts in {time.perf_counter() - t:.0f} s")
    return {"open": open_id, "old": old_id}


def load_accounts_into(conn, n: int, incident_id: int) -> None:
    """bench.common's loader attaches to incident 1: point it at the open outage instead."""
    load_affected_accounts(conn, n)
    if incident_id != 1:
        conn.exec_driver_sql(f"UPDATE affected_accounts SET incident_id = {incident_id}")
        conn.exec_driver_sql(f"UPDATE recovery_categories SET incident_id = {incident_id}")


def run(url: str, work, ids: dict, seconds: int, connections: int, kind: str, n: int) -> None:
    env = {**os.environ, "DATABASE_URL": url, "PUBLIC_BASE_URL": f"http://127.0.0.1:{PORT}"}
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "--bind", f"127.0.0.1:{PORT}", "--workers", "2", "--threads", "4",
         "--preload", "app:create_app()"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_server()
        rows = []
        for template in PATHS[1:]:
            path = template.format(**ids)
            for _ in range(3):  # warm: the first request renders, the rest are served from the stored render
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}").read()
            # The static file is measured right before each path: on a shared machine the load drifts, and a
            # share is only meaningful against a floor taken under the same load.
            static = wrk(PATHS[0], seconds, connections)
            rows.append((path, *wrk(path, seconds, connections), static))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    print(f"\n{kind}, {n:,} accounts, wrk -t2 -c{connections} -d{seconds}s, gunicorn 2 workers x 4 threads\n")
    print("| path | req/s | p50 ms | p99 ms | errors | static file just before: req/s, p99 ms | share of static |")
    print("|---|---|---|---|---|---|---|")
    for path, rps, p50, p99, errors, (srps, _, sp99, serr) in rows:
        print(f"| `{path}` | {rps:,.0f} | {p50:.1f} | {p99:.1f} | {errors + serr} | {srps:,.0f}, {sp99:.1f} | "
              f"{rps / srps:.0%} |")


def wait_for_server() -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/static/style.css").read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def wrk(path: str, seconds: int, connections: int) -> tuple[float, float, float, int]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                          f"http://127.0.0.1:{PORT}{path}"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = sum(int(x) for x in re.findall(r"(?:Non-2xx or 3xx responses|Socket errors:.*?):\s+(\d+)", out))
    errors += sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return rps, p50, p99, errors


if __name__ == "__main__":
    main()
