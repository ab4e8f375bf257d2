"""Benchmark: does "Check my account" (POST /my, then a wrong code at /my/verify) answer a known account as fast
as an unknown one? Prints the median of each, interleaved, and their difference beside the spread of the
same measurement between two halves of the unknown samples (the noise floor of this run).

Usage: .venv/bin/python bench/my_timing.py [SAMPLES] [--postgres]"""
import statistics
import sys
import time

from common import drop_database, fresh_database, tmpdir


def main() -> None:
    args = sys.argv[1:]
    samples = int(next((a for a in args if a.isdigit()), 2000))
    kind = "postgres" if "--postgres" in args else "sqlite"
    url = fresh_database(kind, tmpdir())
    try:
        run(url, samples, kind)
    finally:
        drop_database(url)


def run(url: str, samples: int, kind: str) -> None:
    from app import create_app
    from core.db import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "WTF_CSRF_ENABLED": False,
                      "MY_CODE_REQUESTS_PER_IP": (10**9, 3600), "MY_CODE_REQUESTS_PER_ACCOUNT": (10**9, 900),
                      "MY_VERIFY_PER_IP": (10**9, 900)})
    with app.app_context():
        sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
        from tests.accounts.factories import attach, make_incident
        incident = make_incident()
        attach(incident.id, *(f"K{i}" for i in range(100)))
    client = app.test_client()

    def once(identifier: str) -> tuple[float, float]:
        t0 = time.perf_counter()
        assert client.post("/my", data={"identifier": identifier}).status_code == 303
        t1 = time.perf_counter()
        assert client.post("/my/verify", data={"code": "000000"}).status_code == 422
        return t1 - t0, time.perf_counter() - t1

    for i in range(100):  # warm up
        once(f"K{i % 100}")
        once(f"U{i}")
    known, unknown = [], []
    for i in range(samples):
        known.append(once(f"K{i % 100}"))
        unknown.append(once(f"U-{i}"))
    for step, name in ((0, "POST /my"), (1, "wrong code")):
        k = statistics.median(s[step] for s in known) * 1000
        u = statistics.median(s[step] for s in unknown) * 1000
        halves = abs(statistics.median(s[step] for s in unknown[::2]) - statistics.median(s[step] for s in unknown[1::2]))
        print(f"{kind} {name:10}  known {k:.3f} ms  unknown {u:.3f} ms  difference {k - u:+.3f} ms  "
              f"(noise: unknown vs unknown {halves * 1000:.3f} ms)  n={samples}")


if __name__ == "__main__":
    main()
