"""JSON shapes of the affected-account and recovery routes of the ops API (schemas in accounts/openapi.py)."""
from flask import url_for

from accounts import service
from accounts.models import AffectedAccount, ImportJob, ImportStatus
from core.db import db, utcnow
from ops.api import iso

CSV_SOURCE, JSON_SOURCE = "API request (CSV)", "API request (JSON)"  # ImportJob.filename of API imports
HISTORY_SHOWN = 50


def job_json(job: ImportJob) -> dict:
    """An import job's summary; errors of a JSON request also name their field, e.g. accounts[3].phone."""
    from_json = job.filename == JSON_SOURCE
    errors = [{**e, "field": _json_field(e) if from_json else None} for e in job.errors or []]
    return {
        "id": job.id, "incident_id": job.incident_id, "kind": job.kind.value, "status": job.status.value,
        "filename": job.filename, "skip_invalid": job.skip_invalid, "rows_read": job.rows_read,
        "rows_invalid": job.rows_invalid, "rows_created": job.rows_created, "rows_updated": job.rows_updated,
        "rows_unchanged": job.rows_unchanged, "rows_attached": job.rows_attached,
        "accounts_changed": job.accounts_changed, "errors": errors,
        "error_csv_url": url_for("api.import_errors", job_id=job.id) if job.error_csv_path else None,
        "message": job.message, "actor": job.actor, "created_at": iso(job.created_at),
        "finished_at": iso(job.finished_at), "progress": progress(job),
    }


RUNNING = (ImportStatus.PENDING, ImportStatus.VALIDATING, ImportStatus.APPLYING)


def progress(job: ImportJob, now=None) -> dict:
    """How far a job is: bytes and rows read and validated, and (while it reads) the time left at the pace so
    far; rows applied are in rows_created/updated/unchanged once it is done (one transaction applies them)."""
    running = job.status in RUNNING
    size, done = job.size_bytes or 0, job.bytes_read or 0
    percent = (min(99, 100 * done // size) if size else 0) if running else 100
    eta = None
    if job.status == ImportStatus.VALIDATING and 0 < done < size and job.created_at:
        elapsed = ((now or utcnow()) - job.created_at).total_seconds()
        eta = max(1, round(elapsed * (size - done) / done))
    return {"phase": job.status.value, "bytes_read": done, "size_bytes": size, "percent": percent,
            "rows_valid": max(0, (job.rows_read or 0) - (job.rows_invalid or 0)), "eta_seconds": eta}


def _json_field(error: dict) -> str:
    # A JSON request becomes a CSV with a header line and one line per account (line breaks are refused).
    column = f".{error['column']}" if error.get("column") else ""
    return f"accounts[{error['line'] - 2}]{column}"


def contact_json(affected: AffectedAccount) -> dict:
    a = affected.account
    return {"account_number": a.account_number, "name": a.name, "phone": a.phone, "email": a.email,
            "locale": a.language}


def recovery_json(affected: AffectedAccount) -> dict:
    """An affected account's overall state and every category of its incident (unknown when unset)."""
    statuses = service.statuses_of(db.session, affected_id=affected.id)
    items = []
    for c in service.list_categories(db.session, incident_id=affected.incident_id):
        s = statuses.get(c.id)
        items.append({"category": c.key, "state": s.state.value if s else "unknown",
                      "items_total": s.items_total if s else None, "items_recovered": s.items_recovered if s else None,
                      "note": s.note if s else "", "updated_at": iso(s.updated_at) if s else None,
                      "updated_by": s.updated_by if s else ""})
    return {"account_number": affected.account.account_number, "overall_state": affected.state.value,
            "categories": items}


def account_json(affected: AffectedAccount) -> dict:
    keys = {c.id: c.key for c in service.list_categories(db.session, incident_id=affected.incident_id)}
    history = [{"category": keys.get(e.category_id, str(e.category_id)),
                "old_state": e.old_state.value if e.old_state else None, "new_state": e.new_state.value,
                "items_total": e.items_total, "items_recovered": e.items_recovered, "note": e.note,
                "actor": e.actor, "import_id": e.import_id, "at": iso(e.at)}
               for e in service.history_of(db.session, affected_id=affected.id, limit=HISTORY_SHOWN)]
    a = affected.account
    return {**recovery_json(affected), **contact_json(affected), "time_zone": a.time_zone,
            "sms_opt_out": a.sms_opt_out, "email_opt_out": a.email_opt_out, "added_at": iso(affected.added_at),
            "updated_at": iso(affected.updated_at), "history": history}


def categories_json(incident_id: int) -> dict:
    return {"categories": [{"key": c.key, "label": c.label, "position": c.position}
                           for c in service.list_categories(db.session, incident_id=incident_id)]}


