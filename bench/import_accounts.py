"""Benchmark: import N generated accounts (default 1,000,000) into an incident, beside two floors.

- Bare floor (the ratio that counts): what anybody could do without us. The CSV rows as they are, read with
  the csv module and written with one plain sqlite3 executemany (SQLite) or COPY ... FROM STDIN (FORMAT csv)
  (PostgreSQL) into a bare two-table schema, `account` with one unique index on the account number and
  `affected` filled by one INSERT ... SELECT; in a fresh database, timed from opening the file to the commit.
- Full-schema floor (second line): the same, already clean rows written raw into our own tables with every
  index, through the app's connection: it already carries most of our schema's costs.
Usage: .venv/bin/python bench/import_accounts.py [N] [--postgres]"""
import shutil
import sys

from common import ROOT, children_peak, drop_database, fresh_database, run_child, tmpdir, write_accounts_csv

SETUP = """
import sys; sys.path.insert(0, %r)
from app import create_app
from core.db import db
from incidents import service
from ops.audit import Actor
app = create_app()
ctx = app.app_context(); ctx.push()
incident = service.create_incident(db.session, actor=Actor.cli('bench'), data={'name': 'Bench', 'impact': 'critical', 'message': 'bench'})
db.session.commit()
""" % str(ROOT)

OURS = SETUP + """
import time
from accounts.imports.account_import import AccountImport
from accounts.imports.service import create_job, run_job
t = time.perf_counter()
job = create_job(db.session, spec=AccountImport(), incident_id=incident.id, actor=Actor.cli('bench'), filename='f', skip_invalid=False)
db.session.commit()
with open(%r, 'rb') as f:
    job = run_job(spec=AccountImport(), job_id=job.id, stream=f, actor=Actor.cli('bench'))
assert job.status.value == 'done', (job.status, job.message, job.errors[:3] if job.errors else None)
print('SECONDS=%%.3f' %% (time.perf_counter() - t))
print('CREATED=%%d' %% job.rows_created)
"""

FLOOR = SETUP + """
import csv, time, datetime
from accounts.contact import time_zone_for
rows = []
with open(%r, encoding='utf-8') as f:
    r = csv.reader(f); next(r)
    # Clean rows prepared outside the timer: the floor is only the database's own work.
    rows = [(n, name, phone, email, loc, time_zone_for(phone)) for n, name, phone, email, loc in r]
now = datetime.datetime.utcnow()
t = time.perf_counter()
with db.engine.begin() as conn:
    raw = conn.connection.dbapi_connection
    cur = raw.cursor()
    if conn.dialect.name == 'postgresql':
        with cur.copy('COPY accounts (account_number, name, phone, email, language, time_zone, sms_opt_out, email_opt_out, created_at, updated_at) FROM STDIN') as cp:
            for row in rows: cp.write_row(row + (False, False, now, now))
        ids = [r[0] for r in conn.exec_driver_sql('SELECT id FROM accounts ORDER BY id')]
        with cur.copy('COPY affected_accounts (incident_id, account_id, state, added_at, updated_at) FROM STDIN') as cp:
            for i in ids: cp.write_row((incident.id, i, 'unknown', now, now))
    else:
        cur.executemany('INSERT INTO accounts (account_number, name, phone, email, language, time_zone, sms_opt_out, email_opt_out, created_at, updated_at) VALUES (?,?,?,?,?,?,0,0,?,?)', [row + (now, now) for row in rows])
        ids = [r[0] for r in conn.exec_driver_sql('SELECT id FROM accounts ORDER BY id')]
        cur.executemany('INSERT INTO affected_accounts (incident_id, account_id, state, added_at, updated_at) VALUES (?,?,?,?,?)', [(incident.id, i, 'unknown', now, now) for i in ids])
print('SECONDS=%%.3f' %% (time.perf_counter() - t))
"""


BARE = """
import csv, os, sys, time
url = os.environ['DATABASE_URL']
csv_path = %r
t = time.perf_counter()
if url.startswith('sqlite'):
    import sqlite3
    db = sqlite3.connect(url.split('sqlite:///', 1)[1])
    db.execute('CREATE TABLE account (id INTEGER PRIMARY KEY, account_number TEXT NOT NULL UNIQUE, name TEXT, '
               'phone TEXT, email TEXT, locale TEXT)')
    db.execute('CREATE TABLE affected (incident_id INTEGER NOT NULL, account_id INTEGER NOT NULL)')
    with open(csv_path, newline='', encoding='utf-8') as f:
        rows = csv.reader(f); next(rows)
        db.executemany('INSERT INTO account (account_number, name, phone, email, locale) VALUES (?,?,?,?,?)', rows)
    db.execute('INSERT INTO affected (incident_id, account_id) SELECT 1, id FROM account')
    db.commit()
else:
    import psycopg
    with psycopg.connect(url.replace('postgresql+psycopg://', 'postgresql://')) as db:
        db.execute('CREATE TABLE account (id BIGSERIAL PRIMARY KEY, account_number TEXT NOT NULL UNIQUE, '
                   'name TEXT, phone TEXT, email TEXT, locale TEXT)')
        db.execute('CREATE TABLE affected (incident_id INTEGER NOT NULL, account_id BIGINT NOT NULL)')
        with db.cursor() as cur, open(csv_path, 'rb') as f:
            with cur.copy('COPY account (account_number, name, phone, email, locale) FROM STDIN '
                          'WITH (FORMAT csv, HEADER true)') as cp:
                while chunk := f.read(1 << 20):
                    cp.write(chunk)
        db.execute('INSERT INTO affected (incident_id, account_id) SELECT 1, id FROM account')
print('SECONDS=%%.3f' %% (time.perf_counter() - t))
"""


def bare_database(kind: str, workdir) -> str:
    """An empty database with no schema of ours: a new SQLite file, or a new PostgreSQL database."""
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'bare.db'}"
    import os
    import subprocess
    import time

    name = f"lb_bare_{os.getpid()}_{int(time.time())}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", f"CREATE DATABASE {name}"], check=True)
    return f"postgresql+psycopg://postgres@127.0.0.1/{name}"


def seconds(out: str) -> float:
    return float(out.split("SECONDS=")[1].split()[0])


def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), 1_000_000))
    kind = "postgres" if "--postgres" in sys.argv else "sqlite"
    work = tmpdir()
    csv_path = work / "accounts.csv"
    write_accounts_csv(csv_path, n)
    size_mb = csv_path.stat().st_size / 1e6
    results = {}
    (work / "bare").mkdir()
    url = bare_database(kind, work / "bare")
    try:
        wall, peak, out = run_child(BARE % str(csv_path), {"DATABASE_URL": url})
    finally:
        drop_database(url)
    results["bare"] = (seconds(out), peak)
    for label, code in (("floor", FLOOR), ("lifeboat", OURS)):
        sub = work / label
        sub.mkdir()
        url = fresh_database(kind, sub)
        try:
            wall, peak, out = run_child(code % str(csv_path), {"DATABASE_URL": url})
        finally:
            drop_database(url)
        results[label] = (seconds(out), peak, children_peak(out))
    ours, floor, bare = results["lifeboat"], results["floor"], results["bare"]
    how = "COPY (FORMAT csv)" if kind == "postgres" else "csv + executemany"
    print(f"accounts import, {n:,} rows ({size_mb:.0f} MB CSV) on {kind}")
    print(f"  bare floor ({how} into account + unique index, INSERT ... SELECT affected): "
          f"{bare[0]:.2f} s, {n / bare[0]:,.0f} rows/s, peak RSS {bare[1]:.0f} MiB")
    print(f"  full-schema floor (raw {'COPY' if kind == 'postgres' else 'executemany'} of clean rows into our tables): "
          f"{floor[0]:.2f} s, {n / floor[0]:,.0f} rows/s, peak RSS {floor[1]:.0f} MiB")
    print(f"  lifeboat import (parse, validate, stage, merge):   "
          f"{ours[0]:.2f} s, {n / ours[0]:,.0f} rows/s, peak RSS {ours[1]:.0f} MiB, and each of its "
          f"worker processes (IMPORT_WORKERS) at most {ours[2]:.0f} MiB")
    print(f"  ratio lifeboat/bare floor: {ours[0] / bare[0]:.2f}x (goal <= 3x); lifeboat/full-schema floor: "
          f"{ours[0] / floor[0]:.2f}x; peak RSS goal < 300 MiB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
