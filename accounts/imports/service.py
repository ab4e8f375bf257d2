"""CSV imports (accounts, recovery states) as jobs: stream, validate, stage, then apply set-based.

Phase 1 reads the file row by row, validates each row in Python and loads the good ones into a temp
staging table (memory stays flat); a large file on disk is read and validated by worker processes, chunk by
chunk, with the same outcome (accounts.imports.chunks). Phase 2, one transaction, runs the checks that need the database
(repeated keys, unknown accounts), then either applies everything with a few INSERT ... SELECT /
UPDATE ... FROM statements or, when rows are invalid and skip_invalid is off, applies nothing."""
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session
from flask import current_app

from accounts.imports import chunks
from accounts.imports.csvio import CSVFormatError, CSVRows, ErrorReport, RowError, write_error_csv
from accounts.models import ImportJob, ImportKind, ImportStatus
from core.bulk import create_stage, drop_stage, load
from core.db import begin_deferred, begin_immediate, db, utcnow
from ops.audit import Actor, record

PROGRESS_EVERY = 10_000
Progress = Callable[[ImportJob], None]


@dataclass
class Context:
    """What an import spec needs while it runs."""

    conn: sa.engine.Connection
    job: ImportJob
    incident_id: int
    actor: Actor
    stage: str
    now: object = field(default_factory=utcnow)
    extra: dict = field(default_factory=dict)


class ImportSpec:
    """One kind of import: its columns, row validation, database checks and set-based apply."""

    kind: ImportKind
    columns: tuple[str, ...]
    stage_columns: str  # SQL column definitions of the staging table; first column is `line`
    stage_names: tuple[str, ...]

    def prepare(self, ctx: Context) -> None:
        """Load what row validation needs (e.g. the incident's categories)."""

    # (extra, line, row) -> (errors, clean tuple or None): a plain module-level function of
    # accounts.imports.rows, so worker processes can run it (accounts.imports.chunks).
    row_rules: Callable[[dict, int, dict], tuple[list[RowError], tuple | None]]

    def checks(self, ctx: Context) -> list[RowError]:
        """Errors only the database can find; the rows stay in the stage (they are deleted if skipped)."""
        return []

    def apply(self, ctx: Context) -> dict:
        """Apply the stage; returns counts for the job (rows_created, rows_updated, rows_unchanged...)."""
        raise NotImplementedError


def errors_dir() -> Path:
    path = Path(current_app.instance_path) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def create_job(session, *, spec: ImportSpec, incident_id: int, actor: Actor, filename: str,
               skip_invalid: bool, size_bytes: int = 0, source_path: str | None = None) -> ImportJob:
    """Add a pending import job (the caller commits, so progress is visible to others)."""
    job = ImportJob(incident_id=incident_id, kind=spec.kind, filename=filename[:300], skip_invalid=skip_invalid,
                    size_bytes=size_bytes, source_path=source_path, actor=actor.label,
                    operator_id=actor.operator_id, status=ImportStatus.PENDING)
    session.add(job)
    session.flush()
    return job


def _save_progress(job: ImportJob, on_progress: Progress | None) -> None:
    job.updated_at = utcnow()
    db.session.commit()
    if on_progress:
        on_progress(job)


def run_job(*, spec: ImportSpec, job_id: int, stream: BinaryIO, actor: Actor,
            on_progress: Progress | None = None) -> ImportJob:
    """Run an import job to its end (done, rejected or failed), committing its outcome."""
    job = db.session.get(ImportJob, job_id)
    job.status = ImportStatus.VALIDATING
    _save_progress(job, on_progress)
    stage = f"stage_import_{job.id}"
    report = ErrorReport()
    with db.engine.connect() as conn:
        ctx = Context(conn=conn, job=job, incident_id=job.incident_id, actor=actor, stage=stage)
        try:
            spec.prepare(ctx)
            rows = CSVRows(stream, required=spec.columns)  # the header's checks, whichever way the rows are read
            create_stage(conn, stage, spec.stage_columns, key="line")
            reading = _Reading(job, report, on_progress)
            cut = _plan(stream)
            # Phase 1 writes only the temp table: it must not hold SQLite's write lock while it reads the file.
            begin_deferred(conn)
            clean = (reading.in_chunks(spec, ctx.extra, stream.name, *cut) if cut
                     else reading.sequential(spec, ctx, rows))
            try:
                load(conn, stage, spec.stage_names, clean)
            except chunks.Resequence:  # a cut fell inside a record: read again, sequentially
                conn.rollback()
                create_stage(conn, stage, spec.stage_columns, key="line")
                report = ErrorReport()
                reading = _Reading(job, report, on_progress)
                stream.seek(0)
                begin_deferred(conn)
                load(conn, stage, spec.stage_names, reading.sequential(spec, ctx, CSVRows(stream, spec.columns)))
            finally:
                clean.close()  # stops the worker processes now, whatever happened
            rejected_values = reading.rejected_values
            conn.commit()  # ends phase 1; the temp table lives on with this connection
        except CSVFormatError as e:
            conn.rollback()
            return _finish(job, ImportStatus.FAILED, str(e), on_progress)
        except Exception:
            conn.rollback()
            _finish(job, ImportStatus.FAILED, "The import failed unexpectedly; nothing was applied.", on_progress)
            raise

        job.status = ImportStatus.APPLYING
        job.rows_invalid = len(report.rejected_lines)
        _save_progress(job, on_progress)
        try:
            for e in spec.checks(ctx):
                report.add(e)
                if len(rejected_values) < _Reading.MAX_REJECTED:
                    rejected_values.append((e.line, e.column, e.reason, []))
            if report.count and not job.skip_invalid:
                conn.rollback()
                job.rows_invalid = len(report.rejected_lines)
                _keep_errors(job, spec, report, rejected_values)
                return _finish(job, ImportStatus.REJECTED,
                               f"Nothing was applied: {len(report.rejected_lines)} row(s) are invalid. Fix them, "
                               "or import with skip-invalid to apply the valid rows only.", on_progress)
            # The write lock from here to the commit: an apply reads the tables it then writes (which accounts
            # exist), and may drop and build indexes of main tables, which on SQLite must be in the transaction.
            begin_immediate(conn)
            if report.rejected_lines:
                _delete_lines(conn, stage, report.rejected_lines)
            counts = spec.apply(ctx)
            drop_stage(conn, stage)
            _commit_outcome(conn, job, spec, counts, report, rejected_values, actor)
        except Exception:
            conn.rollback()
            _finish(job, ImportStatus.FAILED, "The import failed unexpectedly; nothing was applied.", on_progress)
            raise
    _save_progress(job, on_progress)  # the same values, now through the ORM session's view of the job
    return job


class _Reading:
    """Phase 1's reading of a file, sequential or in chunks: the clean rows in file order, every error into
    the report (and the first MAX_REJECTED rows' values, for the error CSV), progress every PROGRESS_EVERY rows."""

    MAX_REJECTED = 100_000

    def __init__(self, job: ImportJob, report: ErrorReport, on_progress: Progress | None):
        self.job, self.report, self.on_progress = job, report, on_progress
        self.rejected_values: list[tuple] = []  # (line, column, reason, values) for the error CSV
        self.count = 0  # records read

    def _reject(self, errors: list[RowError], values: list) -> None:
        for e in errors:
            self.report.add(e)
            if len(self.rejected_values) < self.MAX_REJECTED:
                self.rejected_values.append((e.line, e.column, e.reason, values))

    def _progress(self, bytes_read: int) -> None:
        job = self.job
        job.rows_read, job.bytes_read, job.rows_invalid = self.count, bytes_read, len(self.report.rejected_lines)
        _save_progress(job, self.on_progress)

    def sequential(self, spec: ImportSpec, ctx: Context, rows: CSVRows) -> Iterator[tuple]:
        for errors, values, clean in chunks.checked(rows, spec.row_rules, ctx.extra):
            self.count += 1
            if errors:
                self._reject(errors, values)
            if clean is not None:
                yield clean
            if self.count % PROGRESS_EVERY == 0:
                self._progress(rows.bytes_read)
        self.job.rows_read, self.job.bytes_read = self.count, rows.bytes_read

    def in_chunks(self, spec: ImportSpec, extra: dict, path: str, header: bytes, parts: list, workers: int
                  ) -> Iterator[tuple]:
        for part in chunks.read(rules=spec.row_rules, extra=extra, columns=spec.columns, optional=(), path=path,
                                header=header, chunks=parts, workers=workers):
            self.count += part.rows
            for e, values in part.rejected:
                self._reject([e], values)
            yield from part.clean
            self._progress(part.end)


def _plan(stream: BinaryIO) -> tuple[bytes, list, int] | None:
    """(header, chunks, workers) when the file is to be read in worker processes (accounts.imports.chunks):
    a file on disk of at least IMPORT_PARALLEL_MIN_BYTES, with IMPORT_WORKERS > 1. None: read it here."""
    config = current_app.config
    workers = config["IMPORT_WORKERS"]
    path = getattr(stream, "name", None)
    if workers < 2 or not isinstance(path, str) or not os.path.isfile(path):
        return None
    if os.path.getsize(path) < config["IMPORT_PARALLEL_MIN_BYTES"]:
        return None
    cut = chunks.plan(path, config["IMPORT_CHUNK_BYTES"])
    if cut is None or len(cut[1]) < 2:
        return None
    return cut[0], cut[1], workers


OUTCOME = ("status", "message", "finished_at", "updated_at", "rows_read", "bytes_read", "rows_invalid",
           "rows_created", "rows_updated", "rows_unchanged", "rows_attached", "accounts_changed", "errors",
           "error_csv_path")


def _commit_outcome(conn, job: ImportJob, spec: ImportSpec, counts: dict, report: ErrorReport,
                    rejected_values: list, actor: Actor) -> None:
    """Write the job's outcome and its audit entry in the same transaction as the applied rows, so a
    crash can never leave applied rows under a job that says otherwise."""
    for key, value in counts.items():
        setattr(job, key, value)
    job.rows_invalid = len(report.rejected_lines)
    _keep_errors(job, spec, report, rejected_values)
    skipped = f" {job.rows_invalid} invalid row(s) skipped." if job.rows_invalid else ""
    job.status, job.message = ImportStatus.DONE, f"Import finished.{skipped}"
    job.finished_at = job.updated_at = utcnow()
    with Session(bind=conn) as session:
        session.execute(sa.update(ImportJob).where(ImportJob.id == job.id)
                        .values({key: getattr(job, key) for key in OUTCOME}))
        record(session, actor=actor, action=f"{spec.kind.value}.import", entity_type="incident",
               entity_id=job.incident_id, after={"job": job.id, "file": job.filename, **counts,
                                                  "rows_invalid": job.rows_invalid})
        session.flush()
    conn.commit()


def _delete_lines(conn, stage: str, lines: set[int]) -> None:
    ordered = sorted(lines)
    for i in range(0, len(ordered), 500):
        chunk = ordered[i:i + 500]
        conn.execute(sa.text(f"DELETE FROM {stage} WHERE line IN :lines").bindparams(
            sa.bindparam("lines", expanding=True)), {"lines": chunk})


def _keep_errors(job: ImportJob, spec: ImportSpec, report: ErrorReport, rejected: list) -> None:
    if not report.count:
        return
    report.first.sort(key=lambda e: e.line)
    job.errors = [e.as_dict() for e in report.first]
    path = errors_dir() / f"import-{job.id}-errors.csv"
    write_error_csv(str(path), spec.columns, sorted(rejected, key=lambda r: r[0]))
    os.chmod(path, 0o600)
    job.error_csv_path = str(path)


def _finish(job: ImportJob, status: ImportStatus, message: str, on_progress: Progress | None) -> ImportJob:
    job.status, job.message, job.finished_at = status, message, utcnow()
    _save_progress(job, on_progress)
    return job
