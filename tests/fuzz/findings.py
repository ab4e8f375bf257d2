"""Distinct failures of a fuzz test, collected over all its examples and reported together at its end.

A fuzzer that stopped at its first failure would hide every other defect of the same operation or form
(an undocumented status code would mask a crash found later). So the fuzz tests do not raise per example:
they record each failure under a key saying what went wrong and where (operation, check, status, the
exception and the innermost frame of our code that raised it), keep the smallest input seen for each,
and the test fails at its end with the whole de-duplicated list (see conftest.pytest_runtest_call)."""
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2]) + "/"

_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
# The exception line of a traceback: "psycopg.errors.StringDataRightTruncation: ...", "ValueError: ...".
_EXCEPTION = re.compile(r"^([A-Za-z_]\w*\.)+[A-Za-z_]\w*(: |$)|^[A-Za-z_]\w*(Error|Exception|Exit|Interrupt)\b")


def crash_site(tb: str) -> tuple[str, str]:
    """(exception line, innermost frame of the project's own code) of a formatted traceback."""
    lines = [line for line in tb.strip().splitlines() if line.strip()]
    exception = next((line for line in reversed(lines) if _EXCEPTION.match(line)), lines[-1] if lines else "")
    exception = exception.strip()[:300] or "(no traceback)"
    site = last = ""
    for path, line, func in _FRAME.findall(tb):
        last = f"{path.split('/site-packages/')[-1]}:{line} in {func}"
        if path.startswith(ROOT) and "/site-packages/" not in path and not path.startswith(ROOT + "tests/"):
            site = f"{path[len(ROOT):]}:{line} in {func}"
    return exception, site or f"{last} (no frame of ours)"


def exception_key(tb: str) -> str:
    exception, site = crash_site(tb)
    return f"{exception.split(':', 1)[0]} at {site or '?'}"


@dataclass
class Finding:
    title: str
    reproduce: str  # the smallest input seen (a curl command, or the form data)
    detail: str = ""
    seen: int = 1


class Findings:
    def __init__(self) -> None:
        self.items: dict[tuple, Finding] = {}

    def add(self, key: tuple, title: str, reproduce: str, detail: str = "") -> None:
        found = self.items.get(key)
        if found is None:
            self.items[key] = Finding(title, reproduce, detail)
            return
        found.seen += 1
        if len(reproduce) < len(found.reproduce):
            found.reproduce, found.detail = reproduce, detail

    def __bool__(self) -> bool:
        return bool(self.items)

    def report(self) -> str:
        out = [f"{len(self.items)} distinct failure(s):"]
        for n, f in enumerate(self.items.values(), 1):
            out.append(f"\n[{n}] {f.title}  (seen {f.seen}x)\n    reproduce: {f.reproduce}")
            if f.detail:
                out.append("    " + f.detail.strip().replace("\n", "\n    "))
        return "\n".join(out)
