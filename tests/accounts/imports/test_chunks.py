"""Reading an import in chunks on worker processes gives exactly the sequential reading: the same clean rows,
the same errors on the same lines, the same failure for a file that is not UTF-8 (accounts.imports.chunks)."""
import random

import pytest
import sqlalchemy as sa

from accounts.imports import chunks
from accounts.imports.csvio import CSVFormatError, CSVRows
from accounts.imports.rows import ACCOUNT_COLUMNS, validate_account
from accounts.models import Account, AffectedAccount, ImportStatus
from core.db import db
from tests.accounts.factories import HEADER, count_rows, make_incident, run_import

EXTRA = {"region": "US", "languages": ("en", "es")}

# Lines that are hard for a cut: quoted commas and line ends, CRLF and lone CR, blank lines, rows of the wrong
# width, bad phones and emails, characters that cannot be stored, non-ASCII text.
PIECES = [
    'A{i},Ann Lee,(206) 555-{p:04d},ann{i}@example.com,en\n',
    'A{i},"Lee, Ann",+1 212 555 {p:04d},,es\n',
    'A{i},"two\nlines ""quoted""",,a{i}@example.com,\n',
    'A{i},"three\r\nline\nname",+44 20 7946 {p:04d},,en\r\n',
    'A{i},Crlf Row,,,es\r\n',
    'A{i},Lone CR,,,en\r',
    '\n',
    'A{i},too,few\n',
    'A{i},Bad Phone,12,,en\n',
    'A{i},Bad Email,,not-an-email,en\n',
    'A{i},Bad Locale,,,xx\n',
    'A{i},Ctrl\x0bName\x01,,,en\n',
    'A{i},Zoë Ñandú 李,+34 612 345 {q:03d},zoe{i}@exämple.com,es-mx\n',
    ',No Number,,,en\n',
    '"A{i}",",",,,\n',
]
STRAY = 'A{i},5" disk,,,en\n'  # a quote inside an unquoted field: kept by the csv module, invisible to a cut


def make_csv(seed: int, n: int, *, stray: bool = False) -> bytes:
    rng = random.Random(seed)
    pieces = PIECES + ([STRAY] * 2 if stray else [])
    body = "".join(rng.choice(pieces).format(i=i, p=rng.randint(0, 9999), q=rng.randint(0, 999)) for i in range(n))
    return (("\ufeff" if seed % 2 else "") + HEADER + body).encode()


def sequential(path):
    with open(path, "rb") as f:
        items = list(chunks.checked(CSVRows(f, ACCOUNT_COLUMNS), validate_account, EXTRA))
    return ([clean for _e, _v, clean in items if clean is not None],
            [(e, values) for errors, values, _c in items for e in errors], len(items))


def in_chunks(path, chunk_bytes, workers=2):
    header, parts = chunks.plan(str(path), chunk_bytes)
    clean, rejected, rows = [], [], 0
    for part in chunks.read(rules=validate_account, extra=EXTRA, columns=ACCOUNT_COLUMNS, optional=(),
                            path=str(path), header=header, chunks=parts, workers=workers):
        clean += part.clean
        rejected += part.rejected
        rows += part.rows
    return (clean, rejected, rows), len(parts)


@pytest.mark.parametrize("seed", range(6))
def test_chunks_read_exactly_what_the_sequential_reading_reads(tmp_path, seed):
    path = tmp_path / "accounts.csv"
    path.write_bytes(make_csv(seed, 400))
    expected = sequential(path)
    assert expected[1] and expected[0]  # the file has good rows and bad ones
    for chunk_bytes in (1, 97, 1000):
        got, parts = in_chunks(path, chunk_bytes)
        assert parts > 3
        assert got == expected, chunk_bytes


def test_a_quote_a_cut_cannot_see_sends_the_file_back_to_the_sequential_reading(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_bytes(make_csv(7, 300, stray=True))
    resequenced = 0
    for chunk_bytes in (1, 50, 200):
        try:
            got, _ = in_chunks(path, chunk_bytes)
        except chunks.Resequence:
            resequenced += 1
            continue
        assert got == sequential(path)  # a cut that happened to fall right is still exact
    assert resequenced  # and one that fell inside a record was caught


def test_a_line_that_is_not_utf8_fails_on_the_same_line_either_way(tmp_path):
    path = tmp_path / "accounts.csv"
    data = make_csv(3, 300)
    cut = data.index(b"\n", len(data) * 2 // 3) + 1
    path.write_bytes(data[:cut] + b"A9,Bad \xff byte,,,en\n" + data[cut:])
    line = data[:cut].count(b"\n") + data[:cut].count(b"\r") - data[:cut].count(b"\r\n") + 1
    with pytest.raises(CSVFormatError) as sequential_error:
        sequential(path)
    with pytest.raises(CSVFormatError) as chunked_error:
        in_chunks(path, 200)
    assert str(sequential_error.value) == str(chunked_error.value) == (
        f"Line {line} is not UTF-8 text. Save the file as CSV UTF-8.")


def test_a_line_longer_than_the_cuts_allow_is_not_cut(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_bytes((HEADER + 'A1,"' + "x\n" * 40_000 + '",,,en\nA2,B,,,en\n').encode())
    assert chunks.plan(str(path), 100) is None  # the job reads it sequentially


def test_an_import_read_in_chunks_applies_what_a_sequential_one_applies(app, tmp_path):
    rows = "".join(f"C{i},Name {i},+1 206 555 {i:04d},c{i}@example.com,{'es' if i % 3 else 'en'}\n"
                   for i in range(2000))
    data = (HEADER + 'Q1,"Quoted, with\nline end",,,en\n' + rows).encode()
    first, second = make_incident(), make_incident()
    app.config.update(IMPORT_WORKERS=1)
    sequential_job = run_import(first.id, data.decode(), skip_invalid=True)
    app.config.update(IMPORT_WORKERS=2, IMPORT_PARALLEL_MIN_BYTES=0, IMPORT_CHUNK_BYTES=4096)
    bad = "C5000,Bad,12,,en\nC5001,x,y\n"
    path = tmp_path / "upload.csv"
    path.write_bytes(data + bad.encode())
    chunked_job = run_import(second.id, path, skip_invalid=True)
    assert chunked_job.status == sequential_job.status == ImportStatus.DONE
    assert (chunked_job.rows_read, chunked_job.rows_invalid, chunked_job.rows_attached) == (2003, 2, 2001)
    assert [(e["line"], e["column"]) for e in chunked_job.errors] == [(2004, "phone"), (2005, "")]
    assert chunked_job.bytes_read == path.stat().st_size

    def listed(incident_id):
        return db.session.execute(
            sa.select(Account.account_number, Account.name, Account.phone, Account.email, Account.language,
                      Account.time_zone).join(AffectedAccount, AffectedAccount.account_id == Account.id)
            .where(AffectedAccount.incident_id == incident_id).order_by(AffectedAccount.id)).all()

    assert listed(second.id) == listed(first.id) and len(listed(first.id)) == 2001


def test_an_import_whose_cut_falls_inside_a_record_is_read_again_sequentially_with_the_same_outcome(
        app, tmp_path, monkeypatch):
    raised = []
    read = chunks.read

    def watched(**kwargs):
        try:
            yield from read(**kwargs)
        except chunks.Resequence:
            raised.append(True)
            raise

    monkeypatch.setattr(chunks, "read", watched)
    data = make_csv(11, 600, stray=True)
    path = tmp_path / "upload.csv"
    path.write_bytes(data)
    first, second = make_incident(), make_incident()
    app.config.update(IMPORT_WORKERS=1)
    sequential_job = run_import(first.id, data, skip_invalid=True)
    app.config.update(IMPORT_WORKERS=2, IMPORT_PARALLEL_MIN_BYTES=0, IMPORT_CHUNK_BYTES=60)
    job = run_import(second.id, path, skip_invalid=True)
    assert raised  # a cut fell inside a record...
    assert job.status == sequential_job.status == ImportStatus.DONE  # ...and the file was read again
    assert (job.rows_read, job.rows_invalid, job.errors) == (
        sequential_job.rows_read, sequential_job.rows_invalid, sequential_job.errors)
    assert job.rows_attached == sequential_job.rows_created == sequential_job.rows_attached
    assert open(job.error_csv_path).read() == open(sequential_job.error_csv_path).read()


def workers_alive() -> list[int]:
    """This process's import workers still running (Linux: /proc)."""
    import os
    from pathlib import Path

    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                if b"accounts.imports.chunks" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(int(pid))
            except OSError:
                pass
    return pids


def test_a_file_that_breaks_off_in_a_later_chunk_fails_the_job_and_stops_the_workers(app, tmp_path):
    data = make_csv(5, 800)
    cut = data.index(b"\n", len(data) * 3 // 4) + 1
    path = tmp_path / "upload.csv"
    path.write_bytes(data[:cut] + b"A9,Bad \xff byte,,,en\n" + data[cut:])
    app.config.update(IMPORT_WORKERS=2, IMPORT_PARALLEL_MIN_BYTES=0, IMPORT_CHUNK_BYTES=500)
    job = run_import(make_incident().id, path)
    line = data[:cut].count(b"\n") + data[:cut].count(b"\r") - data[:cut].count(b"\r\n") + 1
    assert job.status == ImportStatus.FAILED
    assert job.message == f"Line {line} is not UTF-8 text. Save the file as CSV UTF-8."
    assert count_rows(Account) == 0 and workers_alive() == []


@pytest.mark.parametrize("executable", ["/nonexistent/python", "/bin/true"])
def test_workers_that_cannot_start_or_stop_at_once_leave_the_file_to_the_job_s_own_process(
        app, tmp_path, monkeypatch, executable):
    import sys

    path = tmp_path / "upload.csv"
    path.write_bytes(make_csv(2, 500))
    expected_clean, expected_rejected, rows = sequential(path)
    app.config.update(IMPORT_WORKERS=2, IMPORT_PARALLEL_MIN_BYTES=0, IMPORT_CHUNK_BYTES=300)
    monkeypatch.setattr(sys, "executable", executable)  # what the workers are started with
    job = run_import(make_incident().id, path, skip_invalid=True)
    assert job.status == ImportStatus.DONE, job.message
    assert (job.rows_read, job.rows_created) == (rows, len(expected_clean))
    assert job.rows_invalid == len({e.line for e, _values in expected_rejected})
