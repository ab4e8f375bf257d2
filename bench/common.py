"""Helpers shared by the benchmarks: data generation, fresh databases, peak memory of a child process."""
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c",
                        f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)


PEAK = "\nimport resource; print('PEAK_MB=%.1f' % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))"


def run_child(code: str, env: dict) -> tuple[float, float, str]:
    """Run python code in its own process; returns (wall seconds, that process's peak RSS in MiB, stdout)."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code + PEAK], cwd=ROOT, env={**os.environ, **env},
                         capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode:
        raise SystemExit(f"benchmark child failed:\n{out.stderr[-3000:]}")
    peak = float(out.stdout.rsplit("PEAK_MB=", 1)[1])
    return wall, peak, out.stdout


def tmpdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="lifeboat-bench-"))
