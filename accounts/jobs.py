"""Console imports as background jobs: the upload is saved under instance/imports/, the job row is
committed, then imports.run_job runs in a thread with its own app context (and so its own session).

The thread gets ids and a file path, never ORM objects from the request. A job whose process died keeps
its last status in the database; `mark_stale` fails jobs that made no progress for STALE_AFTER. Progress
is visible across processes through the upload file's modification time, touched on every progress step
(ImportJob has no "last progress" column)."""
import os
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import BinaryIO

from flask import Flask

from accounts import service
from accounts.account_import import AccountImport
from accounts.imports import ImportSpec, errors_dir, run_job
from accounts.models import ImportJob, ImportKind, ImportStatus
from accounts.recovery_import import RecoveryImport
from core.db import db, utcnow
from ops.audit import Actor

CHUNK = 1 << 20
STALE_AFTER = timedelta(minutes=10)
FINISHED = (ImportStatus.DONE, ImportStatus.REJECTED, ImportStatus.FAILED)
INTERRUPTED = "Interrupted: the import stopped before it finished; nothing was applied. Please run it again."

_running: dict[int, threading.Thread] = {}
_lock = threading.Lock()


def spec_for(kind: ImportKind | str) -> ImportSpec:
    """The import spec of a kind ("accounts" or "recovery")."""
    return AccountImport() if ImportKind(kind) == ImportKind.ACCOUNTS else RecoveryImport()


def new_upload_file() -> BinaryIO:
    """A new private (0600) file under instance/imports/ for an upload; its path is `.name`."""
    path = errors_dir() / f"upload-{uuid.uuid4().hex}.csv"
    return open(path, "x+b", opener=lambda p, flags: os.open(p, flags, 0o600))


def save_upload(stream: BinaryIO, limit: int | None = None) -> tuple[str, int]:
    """Copy a stream to a new private file under instance/imports/ in chunks; returns (path, size)."""
    size = 0
    with new_upload_file() as f:
        path = f.name
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if limit is not None and size > limit:
                break
            f.write(chunk)
    if limit is not None and size > limit:
        os.unlink(path)
        raise ValueError(f"The file is larger than {limit // (1024 * 1024)} MB.")
    return str(path), size


def start(app: Flask, *, job_id: int, actor: Actor) -> threading.Thread:
    """Run a committed job (its file at job.source_path) in a background thread."""
    thread = threading.Thread(target=_run, args=(app, job_id, actor), name=f"import-{job_id}", daemon=True)
    with _lock:
        _running[job_id] = thread
    thread.start()
    return thread


def is_running_here(job_id: int) -> bool:
    """True when this process is running the job right now."""
    with _lock:
        thread = _running.get(job_id)
    return thread is not None and thread.is_alive()


def _run(app: Flask, job_id: int, actor: Actor) -> None:
    with app.app_context():
        try:
            job = db.session.get(ImportJob, job_id)
            path, kind = job.source_path, job.kind
            db.session.rollback()  # hold no snapshot while the import runs

            def heartbeat(_job: ImportJob) -> None:
                _touch(path)

            with open(path, "rb") as f:
                run_job(spec=spec_for(kind), job_id=job_id, stream=f, actor=actor, on_progress=heartbeat)
        except Exception:
            app.logger.exception("Import job %s failed", job_id)
            _fail(job_id, "The import failed unexpectedly; nothing was applied.")
        finally:
            db.session.remove()
            with _lock:
                _running.pop(job_id, None)


def _touch(path: str | None) -> None:
    if path:
        try:
            os.utime(path)
        except OSError:
            pass


def _fail(job_id: int, message: str) -> None:
    """End a job that broke before run_job could record an outcome (run_job records its own failures)."""
    db.session.rollback()
    job = db.session.get(ImportJob, job_id)
    if job is not None and job.status not in FINISHED:
        job.status, job.message, job.finished_at = ImportStatus.FAILED, message, utcnow()
        db.session.commit()


def last_progress(job: ImportJob) -> datetime:
    """When the job last showed a sign of life: creation, or the latest heartbeat on its upload file."""
    latest = job.created_at
    if job.source_path:
        try:
            touched = datetime.fromtimestamp(os.path.getmtime(job.source_path), timezone.utc)
            latest = max(latest, touched)
        except OSError:
            pass
    return latest


def mark_stale(session, jobs: list[ImportJob]) -> int:
    """Fail unfinished jobs without progress for STALE_AFTER (their process died). The caller commits.

    Phase 2 applies in one transaction, so a job that died before finishing applied nothing."""
    now, n = utcnow(), 0
    for job in jobs:
        if job.status in FINISHED or is_running_here(job.id):
            continue
        if now - last_progress(job) >= STALE_AFTER:
            job.status, job.message, job.finished_at = ImportStatus.FAILED, INTERRUPTED, now
            n += 1
    return n


# ---- the dashboard's progress chart, for incidents too big to rebuild inside a request ----------------

INLINE_CHART_ACCOUNTS = 20_000  # up to this many affected accounts the series is computed in the request
CHART_FRESH_SECONDS = 60
_charts: dict[int, tuple[float, dict]] = {}  # incident id -> (monotonic time computed, series)
_charts_running: set[int] = set()


def recovery_progress(app: Flask, session, *, incident_id: int, affected: int) -> dict | None:
    """The recovery-progress series (accounts.service.recovery_progress). Small incidents: computed now.
    Big ones (it scans the whole history): from this process's cache, refreshed in a background thread at
    most once a minute; None until the first computation is done."""
    if affected <= app.config.get("RECOVERY_CHART_INLINE_ACCOUNTS", INLINE_CHART_ACCOUNTS):
        return service.recovery_progress(session, incident_id=incident_id)
    with _lock:
        cached = _charts.get(incident_id)
        stale = cached is None or time.monotonic() - cached[0] > CHART_FRESH_SECONDS
        if stale and incident_id not in _charts_running:
            _charts_running.add(incident_id)
            threading.Thread(target=_compute_chart, args=(app, incident_id), name=f"chart-{incident_id}",
                             daemon=True).start()
    return cached[1] if cached else None


def _compute_chart(app: Flask, incident_id: int) -> None:
    with app.app_context():
        try:
            series = service.recovery_progress(db.session, incident_id=incident_id)
            series["as_of"] = utcnow()
            db.session.remove()  # release the connection before publishing the result
            with _lock:
                _charts[incident_id] = (time.monotonic(), series)
        except Exception:
            app.logger.exception("Recovery chart for incident %s failed", incident_id)
        finally:
            db.session.remove()
            with _lock:
                _charts_running.discard(incident_id)
