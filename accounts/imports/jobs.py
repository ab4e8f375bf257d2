"""Console imports as background jobs: the upload is saved under instance/imports/, the job row is
committed, then imports.run_job runs in a thread with its own app context (and so its own session).

The thread gets ids and a file path, never ORM objects from the request. A job whose process died keeps
its last status in the database; `mark_stale` fails jobs whose `updated_at` (written at every progress
step by imports.run_job) is older than STALE_AFTER."""
import os
import threading
import uuid
from datetime import timedelta
from typing import BinaryIO

from flask import Flask

from accounts.imports.account_import import AccountImport
from accounts.imports.service import ImportSpec, errors_dir, run_job
from accounts.models import ImportJob, ImportKind, ImportStatus
from accounts.imports.recovery_import import RecoveryImport
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


def save_upload(stream: BinaryIO) -> tuple[str, int]:
    """Copy a stream to a new private file under instance/imports/ in chunks; returns (path, size). A stream
    that breaks off (over a size limit, or the client went away) leaves no file behind."""
    size = 0
    with new_upload_file() as f:
        try:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                f.write(chunk)
        except BaseException:
            f.close()
            os.unlink(f.name)
            raise
    return f.name, size


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

            with open(path, "rb") as f:
                run_job(spec=spec_for(kind), job_id=job_id, stream=f, actor=actor)
        except Exception:
            app.logger.exception("Import job %s failed", job_id)
            _fail(job_id, "The import failed unexpectedly; nothing was applied.")
        finally:
            db.session.remove()
            with _lock:
                _running.pop(job_id, None)


def _fail(job_id: int, message: str) -> None:
    """End a job that broke before run_job could record an outcome (run_job records its own failures)."""
    db.session.rollback()
    job = db.session.get(ImportJob, job_id)
    if job is not None and job.status not in FINISHED:
        job.status, job.message, job.finished_at = ImportStatus.FAILED, message, utcnow()
        db.session.commit()


def mark_stale(session, jobs: list[ImportJob]) -> int:
    """Fail unfinished jobs without progress for STALE_AFTER (their process died). The caller commits.

    Phase 2 applies in one transaction, so a job that died before finishing applied nothing."""
    now, n = utcnow(), 0
    for job in jobs:
        if job.status in FINISHED or is_running_here(job.id):
            continue
        if now - job.updated_at >= STALE_AFTER:
            job.status, job.message, job.finished_at = ImportStatus.FAILED, INTERRUPTED, now
            n += 1
    return n
