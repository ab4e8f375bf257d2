"""Import files hold personal data: they are deleted IMPORT_RETENTION_DAYS after the import ended, never
while it runs; the job page of a pruned import still works, without the download."""
import os
import uuid
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from accounts.imports import retention
from accounts.imports.service import errors_dir
from accounts.models import ImportJob, ImportKind, ImportStatus
from core import periodic
from core.db import db, utcnow
from ops.models import AuditEntry
from tests.accounts.factories import ACTOR, HEADER, make_incident, run_import
from tests.conftest import make_operator, sign_in

BAD = HEADER + "A1,Ann Lee,(206) 555-0100,ann@example.com,en\nA2,Bad Phone,12,nobody@,en\n"


def file_aged(path: Path, text: str, days: float) -> Path:
    """Write a file and set its modification time `days` back."""
    path.write_text(text)
    t = (utcnow() - timedelta(days=days)).timestamp()
    os.utime(path, (t, t))
    return path


def job_with_files(incident_id: int, *, status=ImportStatus.DONE, ended_days_ago: float | None = 40,
                   progress_days_ago: float = 40) -> ImportJob:
    """A job whose upload and error CSV are in the imports folder, ended (or last progressing) days ago."""
    folder = errors_dir()
    upload = folder / f"upload-{uuid.uuid4().hex}.csv"
    upload.write_text(HEADER + "A1,Ann Lee,+12065550100,ann@example.com,en\n")
    now = utcnow()
    job = ImportJob(incident_id=incident_id, kind=ImportKind.ACCOUNTS, filename="accounts.csv", status=status,
                    source_path=str(upload), actor=ACTOR.label, created_at=now - timedelta(days=60),
                    updated_at=now - timedelta(days=progress_days_ago),
                    finished_at=None if ended_days_ago is None else now - timedelta(days=ended_days_ago))
    db.session.add(job)
    db.session.flush()
    errors = folder / f"import-{job.id}-errors.csv"
    errors.write_text("line,column,reason\n2,phone,bad\n")
    job.error_csv_path = str(errors)
    db.session.commit()
    return job


def files_of(job: ImportJob) -> list[Path]:
    return [Path(p) for p in (job.source_path, job.error_csv_path)]


def fresh(job_id: int) -> ImportJob:
    db.session.expire_all()
    return db.session.get(ImportJob, job_id)


def test_files_of_imports_finished_long_ago_go_and_recent_and_running_ones_stay(app):
    incident = make_incident()
    gone = [job_with_files(incident.id, status=s) for s in (ImportStatus.DONE, ImportStatus.REJECTED,
                                                              ImportStatus.FAILED)]
    recent = job_with_files(incident.id, ended_days_ago=5, progress_days_ago=5)
    running = job_with_files(incident.id, status=ImportStatus.VALIDATING, ended_days_ago=None, progress_days_ago=0)
    gone_files = [f for job in gone for f in files_of(job)]
    kept_files = files_of(recent) + files_of(running)
    pruned = retention.prune(db.session, actor=ACTOR, now=utcnow())
    db.session.commit()
    assert (pruned.jobs, pruned.files) == (3, 6)
    assert not any(f.exists() for f in gone_files)
    assert all(f.exists() for f in kept_files)
    for job in gone:
        job = fresh(job.id)
        assert job.source_path is None and job.error_csv_path is None and job.message == ''
    assert fresh(recent.id).source_path and fresh(running.id).error_csv_path
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "imports.prune"))
    assert entry.after == {"days": 30, "jobs": 3, "files": 6}


def test_an_import_that_died_long_ago_loses_its_files_but_one_with_fresh_progress_never(app):
    incident = make_incident()
    dead = job_with_files(incident.id, status=ImportStatus.APPLYING, ended_days_ago=None, progress_days_ago=31)
    running = job_with_files(incident.id, status=ImportStatus.APPLYING, ended_days_ago=None,
                             progress_days_ago=0.01)
    dead_files, running_files = files_of(dead), files_of(running)
    retention.prune(db.session, actor=ACTOR, now=utcnow(), days=0)  # even with no retention at all
    db.session.commit()
    assert not any(f.exists() for f in dead_files)
    assert all(f.exists() for f in running_files) and fresh(running.id).source_path


def test_leftover_uploads_no_job_refers_to_go_once_old_and_other_files_are_never_touched(app, tmp_path):
    folder = errors_dir()
    leftover = file_aged(folder / "upload-left-behind.csv", "account_number\nA9\n", 31)
    arriving = file_aged(folder / "upload-still-arriving.csv", "account_number\n", 0)
    someone_elses = file_aged(folder / "notes.txt", "not ours", 90)
    outside = tmp_path / "elsewhere.csv"  # a job pointing outside the imports folder (a CLI import, say)
    outside.write_text("x")
    incident = make_incident()
    job = job_with_files(incident.id)
    job.source_path = str(outside)
    db.session.commit()
    retention.prune(db.session, actor=ACTOR, now=utcnow())
    db.session.commit()
    assert not leftover.exists()
    assert arriving.exists() and someone_elses.exists() and outside.exists()
    assert fresh(job.id).source_path is None


def test_a_real_rejected_imports_error_csv_is_pruned_and_its_page_still_works(app, client):
    incident = make_incident()
    job = run_import(incident.id, BAD)
    assert job.status == ImportStatus.REJECTED and Path(job.error_csv_path).is_file()
    sign_in(client, make_operator("operator"))
    page = client.get(f"/ops/imports/{job.id}").get_data(as_text=True)
    assert "Download the rejected rows" in page
    assert client.get(f"/ops/imports/{job.id}/errors.csv").status_code == 200
    error_csv = Path(job.error_csv_path)
    job.finished_at = utcnow() - timedelta(days=31)
    db.session.commit()

    assert periodic.run_due()["imports.prune"] == "1 import files deleted (1 jobs)"
    assert not error_csv.exists()
    response = client.get(f"/ops/imports/{job.id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Download the rejected rows" not in page and "Nothing was applied" in page
    assert client.get(f"/ops/imports/{job.id}/errors.csv").status_code == 404


def test_the_retention_comes_from_the_config(app):
    app.config["IMPORT_RETENTION_DAYS"] = 60
    incident = make_incident()
    job = job_with_files(incident.id, ended_days_ago=40)
    assert str(retention.prune(db.session, actor=ACTOR, now=utcnow())) == "0 import files deleted (0 jobs)"
    db.session.commit()
    assert all(f.exists() for f in files_of(fresh(job.id)))
    assert db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "imports.prune")) is None


def test_imports_prune_cli_takes_days(runner):
    incident = make_incident()
    week_old = job_with_files(incident.id, ended_days_ago=7, progress_days_ago=7)
    files = files_of(week_old)
    default = runner.invoke(args=["imports", "prune"])
    assert default.exit_code == 0, default.output
    assert "Deleted 0 file(s) of 0 import(s) that ended more than 30 day(s) ago." in default.output
    assert all(f.exists() for f in files)
    short = runner.invoke(args=["imports", "prune", "--days", "3"])
    assert short.exit_code == 0, short.output
    assert "Deleted 2 file(s) of 1 import(s) that ended more than 3 day(s) ago." in short.output
    assert not any(f.exists() for f in files)
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "imports.prune"))
    assert entry.actor.startswith("cli") and entry.after["days"] == 3
    bad = runner.invoke(args=["imports", "prune", "--days", "-1"])
    assert bad.exit_code == 2 and "--days" in bad.output
