"""Retention of import files: uploaded CSVs and rejected-row CSVs hold subscribers' personal data, so
they are deleted IMPORT_RETENTION_DAYS (default 30) after their import ended. The job row stays, with its
counts and message, and its file paths emptied; the console then simply offers no download."""
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import current_app

from accounts.imports.service import errors_dir
from accounts.models import ImportJob, ImportStatus
from ops.audit import Actor, record

log = logging.getLogger("lifeboat.retention")

RETENTION_DAYS = 30
FINISHED = (ImportStatus.DONE, ImportStatus.REJECTED, ImportStatus.FAILED)
OUR_FILES = ("upload-*.csv", "import-*-errors.csv")  # the names accounts.imports.jobs and .service write
# An unfinished import, or an upload no job refers to yet, is left alone for at least this long whatever the
# retention: a running import's last progress (or an upload still arriving) is never older than this.
IN_FLIGHT_GRACE = timedelta(days=1)


@dataclass
class Pruned:
    jobs: int = 0  # jobs whose files were let go
    files: int = 0  # files deleted (a job's, or left behind by an upload that never became a job)

    def __str__(self) -> str:
        return f"{self.files} import files deleted ({self.jobs} jobs)"


def retention_days() -> int:
    return int(current_app.config.get("IMPORT_RETENTION_DAYS", RETENTION_DAYS))


def _ours(folder: Path, path: str) -> Path | None:
    """The path if it is a file directly in the imports folder (never delete anything else)."""
    p = Path(path)
    try:
        return p if p.resolve().parent == folder else None
    except OSError:
        return None


def _delete(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def prune_files(session, *, now: datetime, days: int) -> Pruned:
    """Delete the files of imports that ended more than `days` ago, and empty their paths; the caller commits.

    Files of running imports are never touched. An import that shows no progress for the whole retention
    period (and at least IN_FLIGHT_GRACE) is not running: its process died, so its file goes too. Upload
    files that no import refers to (a request that died before its job was saved) are deleted once older
    than that too."""
    cutoff = now - timedelta(days=days)
    quiet_since = min(cutoff, now - IN_FLIGHT_GRACE)
    folder = errors_dir().resolve()
    finished = ImportJob.status.in_([s.value for s in FINISHED])
    ended = sa.or_(sa.and_(finished, sa.func.coalesce(ImportJob.finished_at, ImportJob.updated_at) < cutoff),
                   sa.and_(sa.not_(finished), ImportJob.updated_at < quiet_since))
    old = session.execute(sa.select(ImportJob.id, ImportJob.source_path, ImportJob.error_csv_path).where(
        ended, sa.or_(ImportJob.source_path.is_not(None), ImportJob.error_csv_path.is_not(None)))).all()
    pruned = Pruned()
    for _job_id, source_path, error_csv_path in old:
        for path in (source_path, error_csv_path):
            if path and (mine := _ours(folder, path)) is not None and _delete(mine):
                pruned.files += 1
        pruned.jobs += 1
    for i in range(0, len(old), 500):
        session.execute(sa.update(ImportJob).where(ImportJob.id.in_([row[0] for row in old[i:i + 500]]))
                        .values(source_path=None, error_csv_path=None).execution_options(synchronize_session=False))
    pruned.files += _orphans(session, folder, quiet_since)
    return pruned


def _orphans(session, folder: Path, cutoff: datetime) -> int:
    """Our files, older than the cutoff, that no import job refers to."""
    known = set()
    for source_path, error_csv_path in session.execute(sa.select(ImportJob.source_path, ImportJob.error_csv_path)
                                                       .where(sa.or_(ImportJob.source_path.is_not(None),
                                                                     ImportJob.error_csv_path.is_not(None)))):
        known.update(str(Path(p).resolve()) for p in (source_path, error_csv_path) if p)
    n = 0
    for pattern in OUR_FILES:
        for path in folder.glob(pattern):
            try:
                old = path.stat().st_mtime < cutoff.timestamp()
            except FileNotFoundError:
                continue
            if old and str(path.resolve()) not in known and _delete(path):
                n += 1
    return n


def prune(session, *, actor: Actor, now: datetime, days: int | None = None) -> Pruned:
    """prune_files with the configured retention (or `days`), audited when it deleted anything."""
    days = retention_days() if days is None else days
    pruned = prune_files(session, now=now, days=days)
    if pruned.jobs or pruned.files:
        record(session, actor=actor, action="imports.prune", entity_type="import_job",
               after={"days": days, "jobs": pruned.jobs, "files": pruned.files})
        log.info("import retention (%s days): %s", days, pruned)
    return pruned


def prune_due(session, now: datetime) -> str:
    """The periodic task (core.periodic): prune with IMPORT_RETENTION_DAYS."""
    return str(prune(session, actor=Actor(operator_id=None, label="scheduler"), now=now))
