"""Streaming CSV input: header checks, line numbers, progress by bytes, and an error report.

Rows are read one at a time from a binary stream, so memory stays flat whatever the file size."""
import codecs
import csv
import io
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

from core import csvout
from core.text import storable_lines

MAX_ERRORS_KEPT = 1000  # listed in the report; every error still goes to the error CSV
MAX_FIELD = 10_000


class CSVFormatError(Exception):
    """The file as a whole cannot be read: not UTF-8, no header, missing columns."""


@dataclass
class RowError:
    line: int
    column: str
    reason: str

    def as_dict(self) -> dict:
        return {"line": self.line, "column": self.column, "reason": self.reason}


@dataclass
class ErrorReport:
    """Every rejected row: the first MAX_ERRORS_KEPT kept for display, all written to `sink` if given."""

    count: int = 0
    first: list[RowError] = field(default_factory=list)
    rejected_lines: set[int] = field(default_factory=set)

    def add(self, error: RowError) -> None:
        self.count += 1
        self.rejected_lines.add(error.line)
        if len(self.first) < MAX_ERRORS_KEPT:
            self.first.append(error)


class _CountingReader(io.RawIOBase):
    """Wraps a binary stream and counts bytes read, for progress bars."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.bytes_read = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.bytes_read += n
        return n


class CSVRows:
    """Iterate (line_number, dict) over a UTF-8 CSV (BOM allowed) whose header has `required` columns."""

    def __init__(self, stream: BinaryIO, required: tuple[str, ...], optional: tuple[str, ...] = (), *,
                 line_offset: int = 0):
        """line_offset: added to every line number (a chunk of a larger file, accounts.imports.chunks)."""
        self.line_offset = line_offset
        self._stream = stream
        self._counter = _CountingReader(stream)
        text = io.TextIOWrapper(io.BufferedReader(self._counter, 1 << 16), encoding="utf-8-sig", newline="")
        csv.field_size_limit(MAX_FIELD)
        # Characters no store or format can hold (NUL, most C0 controls, lone surrogates) are stripped here,
        # as the lines are read, so a stray one from an old export costs nothing downstream (see core.text).
        self._reader = csv.reader(storable_lines(text))
        try:
            header = next(self._reader)
        except StopIteration:
            raise CSVFormatError("The file is empty: a header row is required "
                                 f"({','.join(required)}).") from None
        except UnicodeDecodeError:
            # Decoding reads ahead: the bad byte may be on a later line, which is then the one to name.
            line = _first_bad_line(stream, line_offset)
            if line is not None and line > 1 + line_offset:
                raise CSVFormatError(f"Line {line} is not UTF-8 text. Save the file as CSV UTF-8.") from None
            raise CSVFormatError("The file is not UTF-8 text. Save it as CSV UTF-8 and try again.") from None
        self.header = [h.strip().lower() for h in header]
        missing = [c for c in required if c not in self.header]
        if missing:
            raise CSVFormatError(
                f"The header row must name the columns {','.join(required)}; missing: {', '.join(missing)}. "
                f"Found: {','.join(self.header) or '(nothing)'}.")
        unknown = [c for c in self.header if c not in required + optional]
        if unknown:
            raise CSVFormatError(f"Unknown column(s) in the header: {', '.join(unknown)}. "
                                 f"Expected: {','.join(required + optional)}.")
        dupes = {c for c in self.header if self.header.count(c) > 1}
        if dupes:
            raise CSVFormatError(f"Column(s) named twice in the header: {', '.join(sorted(dupes))}.")
        self._index = {name: self.header.index(name) for name in required + optional if name in self.header}

    @property
    def bytes_read(self) -> int:
        return self._counter.bytes_read

    def __iter__(self) -> Iterator[tuple[int, list[str], dict | None, str | None]]:
        """Yields (line, values, row, problem); row is None when the line itself is malformed.

        `line` is the file line where the record starts (the header is line 1)."""
        width = len(self.header)
        index = self._index
        reader = self._reader
        offset = self.line_offset
        while True:
            line = reader.line_num + 1 + offset
            try:
                values = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError:
                # Decoding runs ahead of the reader by a buffer: find the line itself when the stream can be
                # read again from its start.
                line = _first_bad_line(self._stream, offset) or line
                raise CSVFormatError(f"Line {line} is not UTF-8 text. Save the file as CSV UTF-8.") from None
            except csv.Error as e:
                yield line, [], None, f"Unreadable CSV: {e}."
                continue
            if not values or (len(values) == 1 and not values[0].strip()):
                continue  # blank line
            if len(values) != width:
                yield line, values, None, f"Expected {width} columns, found {len(values)}."
                continue
            yield line, values, {name: values[i].strip() for name, i in index.items()}, None


def line_ends(data: bytes) -> int:
    """How many lines `data` ends, counted as the csv module reads a file opened with newline='': at each
    '\n', '\r\n' and lone '\r'."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _first_bad_line(stream: BinaryIO, offset: int) -> int | None:
    """The line holding the stream's first byte that is not UTF-8 (reading it again from its start), or None
    when the stream cannot be read again."""
    try:
        stream.seek(0)
    except (AttributeError, OSError, ValueError):
        return None
    decoder, lines, cr = codecs.getincrementaldecoder("utf-8")(), 1, False
    while block := stream.read(1 << 20):
        pending = decoder.getstate()[0]  # the start of a character cut by the previous block: never a line end
        split = cr and block[:1] == b"\n"  # a '\r\n' cut by the previous block ended one line, not two
        try:
            decoder.decode(block)
        except UnicodeDecodeError as e:
            return offset + lines + line_ends((pending + block)[:e.start]) - split
        lines += line_ends(block) - split
        cr = block[-1:] == b"\r"
    return None


def write_error_csv(path: str, header: tuple[str, ...], rows: Iterator[tuple[int, str, str, list[str]]]) -> None:
    """Write rejected rows as CSV: line, column, reason, then the original columns."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csvout.writer(f)
        w.writerow(("line", "column", "reason") + header)
        for line, column, reason, values in rows:
            w.writerow([line, column, reason, *values])
