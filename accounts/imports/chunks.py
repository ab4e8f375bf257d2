"""Reading a large CSV import on every core: the file is cut into chunks at line ends, worker processes read
and check the chunks' rows (the spec's row_rules, from accounts.imports.rows), and the job loads their clean
rows in file order (accounts.imports.service.run_job).

The outcome is exactly the sequential reading's: the same clean rows, the same errors on the same lines.
* Cuts. A cut is made at a '\\n' after an even number of '"' since the start of the file: a record ends
  there whenever every quote in the file opens or closes a quoted field. A quote inside an unquoted field
  (`5" disk`), which the csv module keeps as a character, breaks that rule; so every chunk but the last is
  read with a sentinel line after it, and the chunk ended at a record end exactly when the sentinel comes
  back as a row of its own. When one does not, `Resequence` is raised and the job reads the whole file
  again, the sequential way.
* Lines. A chunk is read as the header line followed by the chunk, with its line numbers shifted by the
  line ends before it, counted as the csv module counts them (csvio.line_ends). Cuts are only ever made
  after a '\\n', so no '\\r\\n' is cut in two.
* Errors. A chunk's malformed lines and rule errors come back with the row's values, in line order; a line
  that is not UTF-8 fails the chunk with the same CSVFormatError, on the same line, as the sequential read.

Workers are fresh interpreters (`python -c` importing this module and the rules: 0.1 s) fed pickled tasks on
their stdin: forking a web process that runs threads is unsafe, and multiprocessing's "spawn" runs the main
script again in every worker, which a script without a main guard does not survive. Measured by
bench/import_accounts.py and bench/import_recovery.py."""
import io
import logging
import marshal
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator

from accounts.imports.csvio import CSVRows, RowError, line_ends

log = logging.getLogger(__name__)
SENTINEL = "lifeboat:end-of-chunk"
MAX_GROWTH = 4  # a chunk whose end needs more than 4x its size (and 64 KiB) to reach a cut: read sequentially
MIN_LIMIT = 1 << 16


class Resequence(Exception):
    """Read the file sequentially instead: a chunk did not end at a record end (a quote the cut could not
    see), or a worker could not start or stopped."""


@dataclass
class Chunk:
    start: int  # byte offset in the file
    length: int
    line_offset: int  # added to the line numbers of "header + chunk"
    last: bool


@dataclass
class Checked:
    """What a worker found in a chunk."""
    clean: list[tuple] = field(default_factory=list)
    rejected: list[tuple[RowError, list[str]]] = field(default_factory=list)  # (error, the row's values)
    rows: int = 0
    end: int = 0  # byte offset just after the chunk, for progress
    whole: bool = True  # False: the chunk did not end at a record end
    packed: bytes | None = None  # `clean` on its way from a worker, in marshal's format (see serve)


def checked(rows: CSVRows | Iterator, rules: Callable, extra: dict
            ) -> Iterator[tuple[list[RowError], list, tuple | None]]:
    """(errors, values, clean) for each record: the one place that runs the rules on a file's rows, for the
    sequential read and the workers alike."""
    for line, values, row, problem in rows:
        if problem:
            yield [RowError(line, "", problem)], values, None
        else:
            errors, clean = rules(extra, line, row)
            yield errors, values, clean


def plan(path: str, chunk_bytes: int) -> tuple[bytes, list[Chunk]] | None:
    """(header bytes, chunks) for the file at `path`, or None when it cannot be cut (a record longer than
    MAX_GROWTH chunks and MIN_LIMIT)."""
    chunks: list[Chunk] = []
    size = os.path.getsize(path)
    limit = max(chunk_bytes * MAX_GROWTH, MIN_LIMIT)
    with open(path, "rb") as f:
        header = _record(f, b"", limit)
        if header is None:
            return None
        pos, lines = len(header), line_ends(header)
        while pos < size:
            piece = _record(f, f.read(chunk_bytes), limit)
            if piece is None:
                return None
            chunks.append(Chunk(start=pos, length=len(piece), line_offset=lines - line_ends(header),
                                last=pos + len(piece) >= size))
            pos, lines = pos + len(piece), lines + line_ends(piece)
    return header, chunks


def _record(f: BinaryIO, piece: bytes, limit: int) -> bytes | None:
    """`piece` read on to the next '\n' after an even number of quotes, or to the end of the file; None when
    that takes more than `limit` bytes."""
    quotes = piece.count(b'"')
    while not (piece[-1:] == b"\n" and quotes % 2 == 0):
        if len(piece) > limit:
            return None
        more = f.readline(limit)
        if not more:
            break  # the end of the file
        piece += more
        quotes += more.count(b'"')
    return piece


def check_chunk(rules: Callable, extra: dict, columns: tuple[str, ...], optional: tuple[str, ...], path: str,
                header: bytes, chunk: Chunk) -> Checked:
    """Read and check one chunk (in a worker process)."""
    with open(path, "rb") as f:
        f.seek(chunk.start)
        data = f.read(chunk.length)
    tail = b"" if chunk.last else SENTINEL.encode() + b"\n"
    rows = CSVRows(io.BytesIO(header + data + tail), required=columns, optional=optional,
                   line_offset=chunk.line_offset)
    items = iter(rows)
    out = Checked(end=chunk.start + chunk.length)
    if not chunk.last:
        items = _before_sentinel(items, out)
    for errors, values, clean in checked(items, rules, extra):
        out.rows += 1
        if clean is not None:
            out.clean.append(clean)
        for e in errors:
            out.rejected.append((e, values))
    return out


def _before_sentinel(items: Iterator, out: Checked) -> Iterator:
    """The records before the sentinel line; out.whole is False unless the last record is the sentinel (the
    chunk's results are then thrown away: see Resequence)."""
    previous = None
    for item in items:
        if previous is not None:
            yield previous
        previous = item
    out.whole = previous is not None and previous[1] == [SENTINEL]


def read(*, rules: Callable, extra: dict, columns: tuple[str, ...], optional: tuple[str, ...], path: str,
         header: bytes, chunks: list[Chunk], workers: int) -> Iterator[Checked]:
    """The chunks' results in file order, from `workers` worker processes (chunk i goes to worker i mod
    workers, at most two chunks each in flight, so memory stays flat). Raises Resequence, or a chunk's
    CSVFormatError, when that chunk is reached."""
    procs: list[subprocess.Popen] = []
    try:
        def send(i: int) -> None:
            task = (rules, extra, columns, optional, path, header, chunks[i])
            pickle.dump(task, procs[i % len(procs)].stdin, protocol=pickle.HIGHEST_PROTOCOL)
            procs[i % len(procs)].stdin.flush()

        try:
            for _ in range(min(workers, len(chunks))):
                procs.append(_start_worker())
            ahead = min(len(chunks), 2 * len(procs))
            for i in range(ahead):
                send(i)
        except OSError:  # no worker could start (or one stopped at once): this process reads the file
            log.warning("Import workers could not start; reading %s in the job's own process.", path, exc_info=True)
            raise Resequence() from None
        for i in range(len(chunks)):
            try:
                ok, result = pickle.load(procs[i % len(procs)].stdout)
            except (EOFError, pickle.UnpicklingError):  # a worker died (killed, out of memory): read it here
                log.warning("An import worker stopped before it finished its chunk; reading %s in the job's own "
                            "process.", path)
                raise Resequence() from None
            if not ok:
                raise result
            result.clean, result.packed = marshal.loads(result.packed), None
            if not result.whole:
                raise Resequence()
            if ahead < len(chunks):
                try:
                    send(ahead)
                except OSError:  # that worker died: its answers are missing, which the next load will find
                    pass
                ahead += 1
            yield result
    finally:
        for proc in procs:
            try:
                proc.stdin.close()
            except OSError:  # a worker that died leaves a broken pipe
                pass
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def _start_worker() -> subprocess.Popen:
    """A worker process: a fresh interpreter (forking a web process that runs threads is unsafe) with this
    process's import path, serving chunks until its stdin closes."""
    code = f"import sys; sys.path[:0] = {sys.path!r}; from accounts.imports.chunks import serve; serve()"
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def serve() -> None:
    """A worker's loop: a pickled task in on stdin, a pickled (ok, Checked or the exception) out on stdout."""
    stdin, stdout = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything else written to stdout (a library's print) goes to stderr, not into the answers
    sys.stdout = sys.stderr
    while True:
        try:
            task = pickle.load(stdin)
        except EOFError:
            return
        try:
            result = check_chunk(*task)
            # The clean rows (tuples of str, int and None) in marshal's format: 12x faster to write and 2x to
            # read than pickle's, on a pipe between two processes of the same interpreter.
            result.clean, result.packed = [], marshal.dumps(result.clean)
            answer = (True, result)
        except Exception as e:  # a CSVFormatError, mostly: raised again in the job's process
            answer = (False, e)
        pickle.dump(answer, stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()
