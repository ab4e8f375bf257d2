"""Benchmark: a recovery update of N rows (default 1,000,000 rows), beside two floors.

- Bare floor (the ratio that counts): what anybody could do without us. A bare schema (account with a unique
  account number, affected, category, status with one unique (affected, category) index, event), accounts
  and categories loaded before the clock starts; timed: the CSV rows as they are, read with the csv module,
  one executemany (SQLite) or COPY (FORMAT csv) (PostgreSQL) into a staging table, then one INSERT ... SELECT
  joining it into the status table and one into the event table, and the commit.
- Full-schema floor (second line): the same, already resolved rows written raw into our own
  recovery_statuses and recovery_events, with every index.
Both our run and the full-schema floor start from the same state (accounts attached, categories set).
Usage: .venv/bin/python bench/import_recovery.py [N] [--postgres]"""
import shutil
import sys

from common import ROOT, children_peak, drop_database, fresh_database, run_child, tmpdir, write_accounts_csv

CATEGORIES = ("contacts", "calendar", "photos", "notes")
STATES = ("recovered", "recovering", "lost", "partially_recovered", "at_risk")

PREPARE = """
import sys; sys.path.insert(0, %r)
from app import create_app
from core.db import db
from incidents import service
from accounts import service as accounts
from accounts.imports.account_import import AccountImport
from accounts.imports.service import create_job, run_job
from ops.audit import Actor
app = create_app(); app.app_context().push()
incident = service.create_incident(db.session, actor=Actor.cli('bench'), data={'name': 'Bench', 'impact': 'critical', 'message': 'bench'})
db.session.flush()
accounts.set_categories(db.session, actor=Actor.cli('bench'), incident_id=incident.id, keys=%r)
job = create_job(db.session, spec=AccountImport(), incident_id=incident.id, actor=Actor.cli('bench'), filename='f', skip_invalid=False)
db.session.commit()
with open(%r, 'rb') as f:
    job = run_job(spec=AccountImport(), job_id=job.id, stream=f, actor=Actor.cli('bench'))
assert job.status.value == 'done', job.message
"""

OURS = """
import sys, time; sys.path.insert(0, %r)
from app import create_app
from core.db import db
from accounts.imports.recovery_import import RecoveryImport
from accounts.imports.service import create_job, run_job
from ops.audit import Actor
app = create_app(); app.app_context().push()
t = time.perf_counter()
job = create_job(db.session, spec=RecoveryImport(), incident_id=1, actor=Actor.cli('bench'), filename='r', skip_invalid=False)
db.session.commit()
with open(%r, 'rb') as f:
    job = run_job(spec=RecoveryImport(), job_id=job.id, stream=f, actor=Actor.cli('bench'))
assert job.status.value == 'done', (job.message, job.errors and job.errors[:3])
print('SECONDS=%%.3f' %% (time.perf_counter() - t))
print('CREATED=%%d' %% job.rows_created)
"""

FLOOR = """
import csv, sys, time, datetime; sys.path.insert(0, %r)
from app import create_app
from core.db import db
app = create_app(); app.app_context().push()
with db.engine.connect() as conn:
    aa = dict(conn.exec_driver_sql('SELECT a.account_number, x.id FROM affected_accounts x JOIN accounts a ON a.id = x.account_id').all())
    cats = dict(conn.exec_driver_sql('SELECT key, id FROM recovery_categories').all())
now = datetime.datetime.utcnow()
with open(%r, encoding='utf-8') as f:
    r = csv.reader(f); next(r)
    rows = [(aa[n], cats[c], s, int(t) if t else None, int(rc) if rc else None, note) for n, c, s, t, rc, note in r]
t = time.perf_counter()
with db.engine.begin() as conn:
    cur = conn.connection.dbapi_connection.cursor()
    if conn.dialect.name == 'postgresql':
        with cur.copy('COPY recovery_statuses (affected_account_id, category_id, state, items_total, items_recovered, note, updated_by, updated_at) FROM STDIN') as cp:
            for row in rows: cp.write_row(row + ('bench', now))
        with cur.copy('COPY recovery_events (affected_account_id, category_id, new_state, items_total, items_recovered, note, actor, at) FROM STDIN') as cp:
            for row in rows: cp.write_row(row + ('bench', now))
    else:
        cur.executemany('INSERT INTO recovery_statuses (affected_account_id, category_id, state, items_total, items_recovered, note, updated_by, updated_at) VALUES (?,?,?,?,?,?,?,?)', [row + ('bench', now) for row in rows])
        cur.executemany('INSERT INTO recovery_events (affected_account_id, category_id, new_state, items_total, items_recovered, note, actor, at) VALUES (?,?,?,?,?,?,?,?)', [row + ('bench', now) for row in rows])
print('SECONDS=%%.3f' %% (time.perf_counter() - t))
"""


BARE = """
import csv, os, sys, time
url = os.environ['DATABASE_URL']
accounts_csv, recovery_csv, categories = %r, %r, %r
SCHEMA = ['CREATE TABLE account (id INTEGER PRIMARY KEY, account_number TEXT NOT NULL UNIQUE)',
          'CREATE TABLE affected (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL)',
          'CREATE TABLE category (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE)',
          'CREATE TABLE status (affected_id INTEGER NOT NULL, category_id INTEGER NOT NULL, state TEXT, '
          'items_total INTEGER, items_recovered INTEGER, note TEXT, UNIQUE (affected_id, category_id))',
          'CREATE TABLE event (affected_id INTEGER, category_id INTEGER, state TEXT, items_total INTEGER, '
          'items_recovered INTEGER, note TEXT)',
          'CREATE TABLE stage (account_number TEXT, category TEXT, state TEXT, items_total INTEGER, '
          'items_recovered INTEGER, note TEXT)']
JOIN = ('SELECT x.id, c.id, s.state, s.items_total, s.items_recovered, s.note FROM stage s '
        'JOIN account a ON a.account_number = s.account_number JOIN affected x ON x.account_id = a.id '
        'JOIN category c ON c.key = s.category')
with open(accounts_csv, newline='', encoding='utf-8') as f:
    r = csv.reader(f); next(r)
    numbers = [(row[0],) for row in r]
if url.startswith('sqlite'):
    import sqlite3
    db = sqlite3.connect(url.split('sqlite:///', 1)[1])
    for sql in SCHEMA:
        db.execute(sql)
    db.executemany('INSERT INTO account (account_number) VALUES (?)', numbers)
    db.execute('INSERT INTO affected (account_id) SELECT id FROM account')
    db.executemany('INSERT INTO category (key) VALUES (?)', [(c,) for c in categories])
    db.commit()
    t = time.perf_counter()
    with open(recovery_csv, newline='', encoding='utf-8') as f:
        rows = csv.reader(f); next(rows)
        db.executemany('INSERT INTO stage VALUES (?,?,?,?,?,?)', rows)
    db.execute('INSERT INTO status ' + JOIN)
    db.execute('INSERT INTO event ' + JOIN)
    db.commit()
else:
    import psycopg
    with psycopg.connect(url.replace('postgresql+psycopg://', 'postgresql://')) as db:
        for sql in SCHEMA:
            db.execute(sql.replace('INTEGER PRIMARY KEY', 'SERIAL PRIMARY KEY'))
        with db.cursor() as cur:
            with cur.copy('COPY account (account_number) FROM STDIN') as cp:
                for row in numbers:
                    cp.write_row(row)
        db.execute('INSERT INTO affected (account_id) SELECT id FROM account')
        db.cursor().executemany('INSERT INTO category (key) VALUES (%%s)', [(c,) for c in categories])
        db.commit()
        t = time.perf_counter()
        with db.cursor() as cur, open(recovery_csv, 'rb') as f:
            with cur.copy('COPY stage FROM STDIN WITH (FORMAT csv, HEADER true)') as cp:
                while chunk := f.read(1 << 20):
                    cp.write(chunk)
        db.execute('INSERT INTO status ' + JOIN)
        db.execute('INSERT INTO event ' + JOIN)
        db.commit()
print('SECONDS=%%.3f' %% (time.perf_counter() - t))
"""


def seconds(out: str) -> float:
    return float(out.split("SECONDS=")[1].split()[0])


def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), 1_000_000))
    kind = "postgres" if "--postgres" in sys.argv else "sqlite"
    n_accounts = max(n // len(CATEGORIES), 1)
    work = tmpdir()
    write_accounts_csv(work / "accounts.csv", n_accounts)
    with open(work / "recovery.csv", "w", encoding="utf-8") as f:
        f.write("account_number,category,state,items_total,items_recovered,note\n")
        for i in range(n_accounts):
            for j, cat in enumerate(CATEGORIES):
                state = STATES[(i + j) % len(STATES)]
                total = 100 + (i % 900)
                rec = total if state == "recovered" else (0 if state == "lost" else total // 2)
                f.write(f"SK{i:08d},{cat},{state},{total},{rec},\n")
    results = {}
    from import_accounts import bare_database

    (work / "bare").mkdir()
    url = bare_database(kind, work / "bare")
    try:
        wall, peak, out = run_child(BARE % (str(work / "accounts.csv"), str(work / "recovery.csv"), list(CATEGORIES)),
                                    {"DATABASE_URL": url})
    finally:
        drop_database(url)
    results["bare"] = (seconds(out), peak)
    for label, code in (("floor", FLOOR), ("lifeboat", OURS)):
        (work / label).mkdir()
        url = fresh_database(kind, work / label)
        try:
            run_child(PREPARE % (str(ROOT), list(CATEGORIES), str(work / "accounts.csv")), {"DATABASE_URL": url})
            wall, peak, out = run_child(code % (str(ROOT), str(work / "recovery.csv")), {"DATABASE_URL": url})
        finally:
            drop_database(url)
        results[label] = (seconds(out), peak, children_peak(out))
    ours, floor, bare = results["lifeboat"], results["floor"], results["bare"]
    rows = n_accounts * len(CATEGORIES)
    print(f"recovery update, {rows:,} rows ({n_accounts:,} accounts x {len(CATEGORIES)} categories) on {kind}")
    print(f"  bare floor (csv {'COPY' if kind == 'postgres' else 'executemany'} into a stage, INSERT ... SELECT joins "
          f"into status + event): {bare[0]:.2f} s, {rows / bare[0]:,.0f} rows/s, peak RSS {bare[1]:.0f} MiB")
    print(f"  full-schema floor (raw {'COPY' if kind == 'postgres' else 'executemany'} into recovery_statuses + "
          f"recovery_events): {floor[0]:.2f} s, {rows / floor[0]:,.0f} rows/s, peak RSS {floor[1]:.0f} MiB")
    print(f"  lifeboat import (parse, validate, stage, resolve, diff, upsert, history, overall state): "
          f"{ours[0]:.2f} s, {rows / ours[0]:,.0f} rows/s, peak RSS {ours[1]:.0f} MiB, and each of its "
          f"worker processes (IMPORT_WORKERS) at most {ours[2]:.0f} MiB")
    print(f"  ratio lifeboat/bare floor: {ours[0] / bare[0]:.2f}x (goal <= 3x); lifeboat/full-schema floor: "
          f"{ours[0] / floor[0]:.2f}x; peak RSS goal < 300 MiB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
