"""Benchmark: import N status-page subscribers (default 200,000; half email, half SMS) from a CSV, beside a bare
floor, and import the same file again (all already subscribed).

- Bare floor (the ratio that counts): what anybody could do without us. The CSV rows as they are, read with the
  csv module and written with one plain sqlite3 executemany (SQLite) or COPY ... FROM STDIN (FORMAT csv)
  (PostgreSQL) into a bare table with one unique index on (channel, address); in a fresh database, timed from
  opening the file to the commit.
- Ours: accounts.subscriptions.import_rows as `flask subscriptions import` runs it (parse and check every row,
  opt-outs, existing subscriptions, the stage tables, one welcome message queued per new subscriber, the
  audit), timed the same way, in its own process for its peak RSS.
Usage: .venv/bin/python bench/import_subscribers.py [N] [--postgres]"""
import sys

from common import ROOT, drop_database, fresh_database, run_child, tmpdir
from import_accounts import bare_database, seconds

OURS = """
import sys, time; sys.path.insert(0, %r)
from app import create_app
from core.db import db
from accounts import subscriptions
from ops.audit import Actor
app = create_app(); app.app_context().push()
for run in ("FIRST", "AGAIN"):
    t = time.perf_counter()
    with open(%r, 'rb') as f:
        r = subscriptions.import_rows(db.session, f, actor=Actor.cli('bench'), consent='Opted in on the bench form')
    db.session.commit()
    print('%%s=%%.3f %%d %%d' %% (run, time.perf_counter() - t, r.added, r.unchanged))
"""

BARE = """
import csv, os, time
url = os.environ['DATABASE_URL']
csv_path = %r
t = time.perf_counter()
if url.startswith('sqlite'):
    import sqlite3
    db = sqlite3.connect(url.split('sqlite:///', 1)[1])
    db.execute('CREATE TABLE subscriber (id INTEGER PRIMARY KEY, address TEXT NOT NULL, channel TEXT NOT NULL, '
               'components TEXT, language TEXT, UNIQUE (channel, address))')
    with open(csv_path, newline='', encoding='utf-8') as f:
        rows = csv.reader(f); next(rows)
        db.executemany('INSERT INTO subscriber (address, channel, components, language) VALUES (?,?,?,?)', rows)
    db.commit()
else:
    import psycopg
    with psycopg.connect(url.replace('postgresql+psycopg://', 'postgresql://')) as db:
        db.execute('CREATE TABLE subscriber (id BIGSERIAL PRIMARY KEY, address TEXT NOT NULL, channel TEXT NOT NULL, '
                   'components TEXT, language TEXT, UNIQUE (channel, address))')
        with db.cursor() as cur, open(csv_path, 'rb') as f:
            with cur.copy('COPY subscriber (address, channel, components, language) FROM STDIN '
                          'WITH (FORMAT csv, HEADER true)') as cp:
                while chunk := f.read(1 << 20):
                    cp.write(chunk)
print('SECONDS=%%.3f' %% (time.perf_counter() - t))
"""


def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), 200_000))
    kind = "postgres" if "--postgres" in sys.argv else "sqlite"
    work = tmpdir()
    csv_path = work / "subscribers.csv"
    with open(csv_path, "w", encoding="utf-8") as f:
        f.write("address,channel,components,language\n")
        for i in range(n):
            f.write(f"+1206{3000000 + i:07d},sms,,en\n" if i % 2 else f"sub{i}@example.net,email,,es\n")
    (work / "bare").mkdir()
    url = bare_database(kind, work / "bare")
    try:
        _wall, bare_peak, out = run_child(BARE % str(csv_path), {"DATABASE_URL": url})
    finally:
        drop_database(url)
    bare = seconds(out)
    (work / "ours").mkdir()
    url = fresh_database(kind, work / "ours")
    try:
        _wall, peak, out = run_child(OURS % (str(ROOT), str(csv_path)), {"DATABASE_URL": url})
    finally:
        drop_database(url)
    first, added, _ = out.split("FIRST=")[1].split()[:3]
    again, _, unchanged = out.split("AGAIN=")[1].split()[:3]
    assert int(added) == n and int(unchanged) == n, out
    first, again = float(first), float(again)
    print(f"subscriber import, {n:,} rows (half email, half SMS) on {kind}")
    print(f"  bare floor (csv + one executemany / COPY into a table with a unique (channel, address)): {bare:.2f} s, "
          f"peak RSS {bare_peak:.0f} MiB")
    print(f"  lifeboat import (check, opt-outs, stage, insert, {n:,} welcome messages, audit): {first:.2f} s, "
          f"peak RSS {peak:.0f} MiB; ratio {first / bare:.2f}x")
    print(f"  the same file again (all already subscribed, nothing sent): {again:.2f} s; ratio {again / bare:.2f}x")


if __name__ == "__main__":
    main()
