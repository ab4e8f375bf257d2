"""Helpers shared by the benchmarks: data generation, fresh databases, peak memory of a child process."""
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AREA_CODES = ["206", "212", "305", "312", "415", "503", "617", "702", "713", "801", "404", "602", "720", "919"]


def phone(i: int) -> str:
    r = random.Random(i)
    return f"+1{r.choice(AREA_CODES)}{r.randint(200, 999)}{i % 10000:04d}"


def write_accounts_csv(path: Path, n: int, *, offset: int = 0) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("account_number,name,phone,email,locale\n")
        for i in range(offset, offset + n):
            f.write(f"SK{i:08d},Subscriber {i},{phone(i)},user{i}@example.com,{'es' if i % 5 == 0 else 'en'}\n")


def fresh_database(kind: str, workdir: Path) -> str:
    """A new, migrated database: a SQLite file in workdir, or a new PostgreSQL database."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
    else:
        name = f"lb_bench_{os.getpid()}_{int(time.time())}"
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c", f"CREATE DATABASE {name}"], check=True)
        url = f"postgresql+psycopg://postgres@127.0.0.1/{name}"
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    return url


def run_in_fresh_database(run, default_n: int = 1_000_000) -> None:
    """The usual main: N from the command line (default `default_n`), SQLite or --postgres, `run(url, n, kind)`
    in a fresh migrated database that is dropped afterwards."""
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), default_n))
    kind = "postgres" if "--postgres" in sys.argv else "sqlite"
    url = fresh_database(kind, tmpdir())
    try:
        run(url, n, kind)
    finally:
        drop_database(url)


def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c",
                        f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)


PEAK = "\nimport resource; print('PEAK_MB=%.1f' % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))"
# The peak RSS of the import workers the child starts, from /proc/<pid>/status VmHWM sampled every 20 ms while
# they run: rusage's figure for children would count the parent's memory at the fork before exec.
CHILDREN = """
import os as _os, threading as _threading, time as _time
_children_peak = [0]
def _sample_children():
    me = _os.getpid()
    mine = open('/proc/self/cmdline', 'rb').read()
    while True:
        try:
            kids = open(f'/proc/{me}/task/{me}/children').read().split()
        except OSError:
            kids = []
        for kid in kids:
            try:
                cmdline = open(f'/proc/{kid}/cmdline', 'rb').read()
                if cmdline == mine or b'accounts.imports.chunks' not in cmdline:
                    continue  # not (yet) a worker: between fork and exec a child shows its parent's memory
                    # and command line (which holds this very code, the module's name included)
                with open(f'/proc/{kid}/status') as status:
                    for line in status:
                        if line.startswith('VmHWM:'):
                            _children_peak[0] = max(_children_peak[0], int(line.split()[1]))
            except OSError:
                pass
        _time.sleep(0.02)
_threading.Thread(target=_sample_children, daemon=True).start()
"""
CHILDREN_PEAK = "\nprint('CHILDREN_PEAK_MB=%.1f' % (_children_peak[0] / 1024))"


def children_peak(out: str) -> float:
    """The largest peak RSS (MiB) of the import workers a run_child child started; 0: none."""
    return float(re.findall(r"(?m)^CHILDREN_PEAK_MB=(\S+)", out)[-1])


def run_child(code: str, env: dict) -> tuple[float, float, str]:
    """Run python code in its own process; returns (wall seconds, that process's peak RSS in MiB, stdout)."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILDREN + code + PEAK + CHILDREN_PEAK], cwd=ROOT,
                         env={**os.environ, **env}, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode:
        raise SystemExit(f"benchmark child failed:\n{out.stderr[-3000:]}")
    peak = float(re.findall(r"(?m)^PEAK_MB=(\S+)", out.stdout)[-1])
    return wall, peak, out.stdout


# The bare floor of the enqueue benchmarks: an outbox with one unique key and nothing of ours.
BARE_OUTBOX = """
    CREATE TABLE bare_outbox (id {pk}, dedupe_key TEXT NOT NULL UNIQUE, channel TEXT NOT NULL,
                              recipient TEXT NOT NULL, data TEXT, created_at TIMESTAMP NOT NULL)
"""


def time_bare_outbox(engine, insert_sql: str) -> tuple[float, int]:
    """(seconds, rows) of one INSERT ... SELECT into a fresh bare_outbox (made and dropped outside the timing)."""
    pk = "INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY" if engine.dialect.name == "postgresql" \
        else "INTEGER PRIMARY KEY"
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS bare_outbox")
        conn.exec_driver_sql(BARE_OUTBOX.format(pk=pk))
    t = time.perf_counter()
    with engine.begin() as conn:
        rows = conn.execute(sa.text(insert_sql)).rowcount
    took = time.perf_counter() - t
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE bare_outbox")
    return took, rows


def tmpdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="lifeboat-bench-"))


CATEGORIES = ("contacts", "calendar", "photos", "notes", "tasks", "ringtones")
STATES = ("recovered", "recovering", "lost", "partially_recovered", "at_risk", "unknown")


def load_affected_accounts(conn, n: int, *, phones: bool = True, statuses: bool = True) -> None:
    """Generate N accounts, attach them, and give each account a status in every category (set-based SQL).
    phones=False: accounts with an email only (phone NULL); statuses=False: no categories or statuses."""
    pg = conn.dialect.name == "postgresql"
    series = ("SELECT generate_series(1, :n) AS i" if pg else
              "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) SELECT i FROM s")
    now = "now()" if pg else "CURRENT_TIMESTAMP"
    lpad = "lpad(i::text, 8, '0')" if pg else "printf('%08d', i)"
    phone = "'+1206' || lpad((2000000 + i)::text, 7, '0')" if pg else "'+1206' || printf('%07d', 2000000 + i)"
    if not phones:
        phone = "NULL"
    conn.exec_driver_sql("SELECT 1")
    conn.execute(sa.text(f"""
        INSERT INTO accounts (account_number, name, phone, email, language, time_zone, sms_opt_out, email_opt_out,
                              created_at, updated_at)
        SELECT 'SK' || {lpad}, 'Subscriber ' || i, {phone}, 'user' || i || '@example.com',
               CASE WHEN i % 5 = 0 THEN 'es' ELSE 'en' END, 'America/Los_Angeles', FALSE, FALSE, {now}, {now}
        FROM ({series}) g"""), {"n": n})
    conn.execute(sa.text(f"""
        INSERT INTO affected_accounts (incident_id, account_id, state, added_at, updated_at)
        SELECT 1, id, 'partially_recovered', {now}, {now} FROM accounts"""))
    if not statuses:
        return
    for pos, key in enumerate(CATEGORIES):
        conn.execute(sa.text("INSERT INTO recovery_categories (incident_id, key, label, position) "
                             "VALUES (1, :k, :l, :p)"), {"k": key, "l": key.capitalize(), "p": pos})
        state = STATES[pos]
        conn.execute(sa.text(f"""
            INSERT INTO recovery_statuses (affected_account_id, category_id, state, items_total, items_recovered,
                                           note, updated_by, updated_at)
            SELECT aa.id, c.id, :state, 100, 50, '', 'bench', {now}
            FROM affected_accounts aa, recovery_categories c WHERE c.key = :k"""), {"state": state, "k": key})
