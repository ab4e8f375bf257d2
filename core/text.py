"""Text that every store and format can hold: the one place that knows which characters cannot be kept.

XML 1.0 (the Atom feed) cannot carry C0 control characters other than tab, newline and carriage return, nor
U+FFFE/U+FFFF; PostgreSQL cannot store NUL; UTF-8 cannot encode a lone surrogate (U+D800-U+DFFF). Such
characters are invisible junk from a paste or an old export, or an attack, never something a person meant.

The policy, applied at every door text comes in by:
- HTML forms and query strings (core.web's request class) and CSV imports (accounts.imports.csvio): stripped, since
  nobody can see them and refusing a form over an invisible character would lose what was typed;
- JSON bodies (ops.api.json_body): refused with a 422 that names the field, since a script should learn that
  what it sent is not what would be stored;
- output (Atom, CSV, HTML) strips them again, for rows stored before this rule existed.
"""
import itertools
import re
from typing import Any, Iterator, TextIO

# C0 controls except \t \n \r; DEL-range C1 controls are valid XML 1.0 and left alone.
UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def strip_unstorable(text: str) -> str:
    """The text without the characters no store or format here can hold."""
    return UNSTORABLE.sub("", text) if UNSTORABLE.search(text) else text


def storable_lines(text: TextIO, block: int = 1 << 16) -> Iterator[str]:
    """The lines of a text stream, each without the characters no store can hold: strip_unstorable line by
    line, with one search per block of lines (~64 KiB) instead of one per line, and no Python frame per line
    (a csv.reader over it reads 1,000,000 lines about 0.3 s faster). The characters are none of the line
    ends, so removing them never joins or splits a line."""
    search, sub = UNSTORABLE.search, UNSTORABLE.sub

    def clean(lines: list[str]) -> list[str]:
        return lines if search("".join(lines)) is None else [sub("", line) for line in lines]

    return itertools.chain.from_iterable(map(clean, iter(lambda: text.readlines(block), [])))


def first_unstorable(text: str) -> str | None:
    """The first character of `text` that cannot be stored, as "U+000B", or None."""
    match = UNSTORABLE.search(text)
    return None if match is None else f"U+{ord(match.group()):04X}"


def unstorable_fields(data: Any, path: str = "") -> dict[str, str]:
    """{field path: message} for every string in a JSON value (keys included) that holds such a character."""
    found: dict[str, str] = {}
    if isinstance(data, str):
        if (char := first_unstorable(data)) is not None:
            found[path or "body"] = f"Contains a control character ({char}) that cannot be stored. Remove it."
    elif isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if (char := first_unstorable(str(key))) is not None:
                found[(path or "body")] = f"A field name contains a control character ({char})."
                continue
            found.update(unstorable_fields(value, where))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.update(unstorable_fields(value, f"{path}[{i}]"))
    return found
