"""Affected-account and recovery routes of the ops JSON API (/api/ops/v1), described in accounts/openapi.py.

Attaching accounts runs the same AccountImport job as the CLI and the console (a JSON body is turned into
the same CSV stream), so the rules, the error policy and the outcome record are one code path. Recovery
edits go through accounts.service.update_recovery, like the console's account page."""
import csv
import io
import os
from pathlib import Path

from flask import Response, current_app, jsonify, request, send_file, stream_with_context, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import PathConverter

from accounts import erasure, service
from accounts.imports import jobs
from accounts.imports.account_import import AccountImport
from accounts.imports.rows import ACCOUNT_COLUMNS
from accounts.imports.service import create_job, errors_dir, run_job
from accounts.models import ImportJob, ImportStatus, RecoveryState
from accounts.serializers import (CSV_SOURCE, JSON_SOURCE, account_json, categories_json, contact_json, job_json,
                                  recovery_json)
from core.db import db
from core.errors import NotFound, ServiceError, ValidationError
from incidents.service import get_incident
from incidents.models import Incident
from ops.api import accepts, bp, iso, json_body, query_int, requires, transactional
from ops.audit import record
from ops.auth import current_actor
from ops.models import Role
from ops.openapi import LIMIT, OFFSET

STATES = [s.value for s in RecoveryState]


class AccountNumberConverter(PathConverter):
    """An account number that may hold "/" but does not end in "/recovery": GET .../accounts/A1/recovery
    is the recovery route's address (405 there, since it only takes PUT), not the account "A1/recovery"."""

    regex = r"[^/](?:(?!/recovery\Z).)*"


bp.record_once(lambda state: state.app.url_map.converters.setdefault("account_number", AccountNumberConverter))


# ---- request helpers ----------------------------------------------------------------------------

def _incident(incident_id: int) -> Incident:
    return get_incident(db.session, incident_id=incident_id)


def _flag(name: str) -> bool:
    raw = request.args.get(name, "false").strip().lower()
    if raw not in ("true", "false", "1", "0"):
        raise ValidationError("Please correct the query parameters.", {name: "Use true or false."})
    return raw in ("true", "1")


def _csv_of(accounts: list[dict]) -> io.BytesIO:
    """The accounts of a JSON request as the CSV an import reads: header on line 1, accounts[i] on line i + 2."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(ACCOUNT_COLUMNS)
    for a in accounts:
        w.writerow([a.get(c) or "" for c in ACCOUNT_COLUMNS])
    return io.BytesIO(out.getvalue().encode("utf-8"))


def _job_answer(job: ImportJob) -> Response:
    summary = job_json(job)
    if job.status == ImportStatus.DONE:
        return jsonify(summary)
    status = 422 if job.status == ImportStatus.REJECTED else 400
    error: dict = {"status": status, "message": job.message}
    if job.status == ImportStatus.REJECTED and job.filename == JSON_SOURCE:
        error["fields"] = {}
        for e in summary["errors"]:
            error["fields"].setdefault(e["field"], e["reason"])
    elif job.status == ImportStatus.REJECTED:
        error["rows"] = [{k: e[k] for k in ("line", "column", "reason")} for e in summary["errors"]]
    response = jsonify({"error": error, "job": summary})
    response.status_code = status
    return response


# ---- attaching accounts and import jobs ---------------------------------------------------------

@bp.post("/incidents/<int:incident_id>/affected-accounts")
@accepts("text/csv")
def import_affected_accounts(incident_id: int):
    # Not @transactional: the import job commits its own progress and outcome. Re-sending the same
    # accounts changes nothing (the import is idempotent), so Idempotency-Key is not needed here.
    _incident(incident_id)
    skip_invalid = _flag("skip_invalid")
    if request.mimetype == "text/csv" and _in_background():
        return _start_background(incident_id, skip_invalid)
    if request.mimetype == "text/csv":
        stream, source = request.stream, CSV_SOURCE  # a body over MAX_CONTENT_LENGTH is refused (413) here
    else:
        data = json_body("AffectedAccountsImport")
        stream, source = _csv_of(data["accounts"]), JSON_SOURCE
        skip_invalid = data.get("skip_invalid", skip_invalid)
    actor, spec = current_actor(), AccountImport()
    job = create_job(db.session, spec=spec, incident_id=incident_id, actor=actor, filename=source,
                     skip_invalid=skip_invalid, size_bytes=request.content_length or 0)
    db.session.commit()
    # run_job records every outcome itself, a body cut off over the size limit (413) included.
    return _job_answer(run_job(spec=spec, job_id=job.id, stream=stream, actor=actor))


def _prefers_async() -> bool:
    return "respond-async" in request.headers.get("Prefer", "").lower()  # RFC 7240


def _in_background() -> bool:
    """A CSV body becomes a background job when the client asks (Prefer: respond-async), when it is larger
    than the inline limit (MAX_CONTENT_LENGTH), or when its length is not known in advance (chunked)."""
    chunked = request.headers.get("Transfer-Encoding", "").lower() == "chunked"
    return _prefers_async() or chunked or (request.content_length or 0) > current_app.config["MAX_CONTENT_LENGTH"]


def _start_background(incident_id: int, skip_invalid: bool) -> Response:
    """Stream the body to a private file (up to IMPORT_MAX_BYTES, any number of rows), start the job in the
    background and answer 202 Accepted with its address; GET it for progress, the ETA and the outcome."""
    limit = current_app.config["IMPORT_MAX_BYTES"]
    if (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()
    request.max_content_length = limit  # before the stream is first read: it is wrapped with this limit
    path, size = jobs.save_upload(request.stream)
    actor = current_actor()
    if size == 0:  # nothing to wait for: the same answer as inline (400, a failed job saying so)
        os.unlink(path)
        job = create_job(db.session, spec=AccountImport(), incident_id=incident_id, actor=actor,
                         filename=CSV_SOURCE, skip_invalid=skip_invalid, size_bytes=0)
        db.session.commit()
        return _job_answer(run_job(spec=AccountImport(), job_id=job.id, stream=io.BytesIO(b""), actor=actor))
    job = create_job(db.session, spec=AccountImport(), incident_id=incident_id, actor=actor, filename=CSV_SOURCE,
                     skip_invalid=skip_invalid, size_bytes=size, source_path=path)
    db.session.commit()
    jobs.start(current_app._get_current_object(), job_id=job.id, actor=actor)
    response = jsonify(job_json(job))
    response.status_code = 202
    response.headers["Location"] = url_for("api.get_import", job_id=job.id)
    if _prefers_async():
        response.headers["Preference-Applied"] = "respond-async"
    return response


# Not @transactional but safe to retry as is; a check that every POST honours Idempotency-Key can accept this.
import_affected_accounts.api_naturally_idempotent = True


@bp.get("/imports/<int:job_id>")
def get_import(job_id: int):
    job = service.get_import_job(db.session, job_id=job_id)
    if jobs.mark_stale(db.session, [job]):  # a job whose process died shows as failed, as in the console
        db.session.commit()
    return jsonify(job_json(job))


@bp.get("/imports/<int:job_id>/errors.csv")
@requires(Role.OPERATOR)  # the rejected rows hold subscribers' contact details
def import_errors(job_id: int):
    job = service.get_import_job(db.session, job_id=job_id)
    path = Path(job.error_csv_path or "")
    if not job.error_csv_path or path.resolve().parent != errors_dir().resolve() or not path.is_file():
        raise NotFound("This import has no error file.")
    return send_file(path, mimetype="text/csv", as_attachment=True, download_name=f"import-{job.id}-errors.csv",
                     max_age=0)


# ---- affected accounts: list, export, one account, its recovery ---------------------------------

def _list_filters(incident_id: int) -> dict:
    """The list's query parameters, checked as the document states them (an empty value is a wrong one,
    except for q, where blank means no search)."""
    fields: dict = {}
    numbers = {"limit": query_int(fields, "limit", LIMIT), "offset": query_int(fields, "offset", OFFSET)}
    state, category = request.args.get("state"), request.args.get("category")
    category_state, q = request.args.get("category_state"), request.args.get("q")
    for name, value in (("state", state), ("category_state", category_state)):
        if value is not None and value not in STATES:
            fields[name] = f"Choose one of: {', '.join(STATES)}."
    keys = [c.key for c in service.list_categories(db.session, incident_id=incident_id)]
    if category is not None and category not in keys:
        fields["category"] = f"Choose one of this incident's categories: {', '.join(keys) or '(none yet)'}."
    if (category is None) != (category_state is None):
        fields.setdefault("category_state" if category is not None else "category",
                          "Give category and category_state together.")
    if q is not None and len(q) > 254:
        fields["q"] = "At most 254 characters."
    if fields:
        raise ValidationError("Please correct the query parameters.", fields)
    return {"state": state, "category": category, "category_state": category_state,
            "q": (q or "").strip() or None, **numbers}


@bp.get("/incidents/<int:incident_id>/affected-accounts")
def list_affected_accounts(incident_id: int):
    _incident(incident_id)
    if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
        return export_affected_accounts(incident_id)
    f = _list_filters(incident_id)
    rows, total = service.list_affected_window(db.session, incident_id=incident_id, **f)
    categories = {c.id: c.key for c in service.list_categories(db.session, incident_id=incident_id)}
    states = service.states_of_many(db.session, affected_ids=[r.id for r in rows])
    items = [{**contact_json(r), "overall_state": r.state.value, "added_at": iso(r.added_at),
              "updated_at": iso(r.updated_at),
              "categories": {key: states.get((r.id, cid), "unknown") for cid, key in categories.items()}}
             for r in rows]
    return jsonify({"affected_accounts": items, "total": total, "limit": f["limit"], "offset": f["offset"]})


@bp.get("/incidents/<int:incident_id>/affected-accounts.csv")
def export_affected_accounts(incident_id: int):
    _incident(incident_id)
    record(db.session, actor=current_actor(), action="accounts.export", entity_type="incident",
           entity_id=incident_id, after={"via": "api"})
    db.session.commit()
    response = Response(stream_with_context(service.export_rows(db.session, incident_id=incident_id)),
                        mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="incident-{incident_id}-accounts.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/incidents/<int:incident_id>/accounts/<account_number:account_number>")
def get_affected_account(incident_id: int, account_number: str):
    _incident(incident_id)
    return jsonify(account_json(service.get_affected(db.session, incident_id=incident_id,
                                                     account_number=account_number)))


@bp.put("/incidents/<int:incident_id>/accounts/<path:account_number>/recovery")
@transactional
def update_recovery(incident_id: int, account_number: str):
    # PUT is idempotent by nature: sending the same statuses again records no new history.
    _incident(incident_id)
    service.get_affected(db.session, incident_id=incident_id, account_number=account_number)
    items = json_body("RecoveryUpdate")["categories"]
    try:
        service.update_recovery(db.session, actor=current_actor(), incident_id=incident_id,
                                account_number=account_number, items=items)
    except ServiceError:
        db.session.rollback()
        raise
    return jsonify(recovery_json(service.get_affected(db.session, incident_id=incident_id,
                                                      account_number=account_number)))


@bp.post("/accounts/<path:account_number>/erase")
@requires(Role.ADMIN)
@transactional
def erase_account(account_number: str):
    """Erase a subscriber's personal data everywhere (accounts.erasure); admins only, audited with counts."""
    counts = erasure.erase(db.session, actor=current_actor(), account_number=account_number)
    return jsonify({"erased": counts})


# ---- summary and categories ---------------------------------------------------------------------

@bp.get("/incidents/<int:incident_id>/recovery-summary")
def recovery_summary(incident_id: int):
    return jsonify(service.recovery_summary(db.session, incident_id=incident_id))


@bp.get("/incidents/<int:incident_id>/recovery-categories")
def get_recovery_categories(incident_id: int):
    _incident(incident_id)
    return jsonify(categories_json(incident_id))


@bp.put("/incidents/<int:incident_id>/recovery-categories")
@transactional
def put_recovery_categories(incident_id: int):
    _incident(incident_id)
    keys = json_body("RecoveryCategoriesUpdate")["categories"]
    try:
        service.set_categories(db.session, actor=current_actor(), incident_id=incident_id, keys=keys)
    except ServiceError:
        db.session.rollback()
        raise
    return jsonify(categories_json(incident_id))
