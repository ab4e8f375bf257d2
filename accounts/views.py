"""Operator console: affected accounts and recovery status (dashboard, imports, list, account page, search).

Viewers read everything; writes need the operator role. Every write goes through accounts.service (or
an import job) and commits once; service ValidationErrors are shown beside the fields (422)."""
import io
import math
import os
from pathlib import Path

import sqlalchemy as sa
from flask import (Blueprint, Response, abort, current_app, flash, redirect, render_template, request,
                   send_file, stream_with_context, url_for)
from flask_login import current_user
from flask_wtf.csrf import CSRFError, validate_csrf
from werkzeug.formparser import parse_form_data
from werkzeug.utils import secure_filename
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError as WTFValidationError

import accounts.recovery
from accounts import charts, erasure, forms, serializers, service
from accounts.imports import jobs
from accounts.imports.service import create_job, errors_dir
from accounts.models import Account, ImportKind
from core.db import db
from core.errors import NotFound, ValidationError
from core.web import csrf
from incidents import service as incidents_service
from incidents.service import get_incident
from incidents.models import Incident
from ops.audit import record
from ops.auth import current_actor, role_required
from ops.models import Role

bp = Blueprint("accounts_console", __name__, url_prefix="/ops")

PER_PAGE = 50
MAX_PAGE = 1_000_000


@bp.context_processor
def _helpers():
    can_write = bool(current_user.is_authenticated and current_user.can(Role.OPERATOR))
    return {"can_write": can_write, "state_label": charts.label, "headers": forms.HEADERS,
            "running": lambda job: job.status not in jobs.FINISHED}


def _incident(incident_id: int) -> Incident:
    return get_incident(db.session, incident_id=incident_id)


def _kind(kind: str) -> ImportKind:
    if kind not in forms.HEADERS:
        abort(404)
    return ImportKind(kind)


# ---- dashboard and categories -------------------------------------------------------------------

def _dashboard(incident: Incident, cat_form=None, status: int = 200):
    summary = service.recovery_summary(db.session, incident_id=incident.id)
    progress = service.recovery_progress(db.session, incident_id=incident.id, live_states=summary["states"])
    if cat_form is None:
        cat_form = forms.CategoriesForm(formdata=None, categories=" ".join(
            c["key"] for c in summary["categories"]) or " ".join(service.DEFAULT_CATEGORIES))
    return render_template(
        "ops/recovery.html", incident=incident, summary=summary, progress=progress, cat_form=cat_form,
        bar=charts.stacked_bar(summary["states"]),
        chart=charts.progress_chart(progress["buckets"], progress["series"], unit=progress["unit"], css="chart-wide"),
        chart_narrow=charts.progress_chart(progress["buckets"], progress["series"], unit=progress["unit"], width=360,
                                           height=240, font=14, ids="progress-narrow", css="chart-narrow"),
        legend=charts.legend(),
        states=charts.STATE_ORDER, jobs=_fresh_jobs(service.list_import_jobs(db.session, incident_id=incident.id,
                                                                             limit=5))), status


def _fresh_jobs(job_list: list) -> list:
    """Fail jobs whose process died (no progress for 10 minutes) before showing them."""
    if jobs.mark_stale(db.session, job_list):
        db.session.commit()
    return job_list


@bp.get("/incidents/<int:incident_id>/recovery")
@role_required(Role.VIEWER)
def recovery_dashboard(incident_id: int):
    return _dashboard(_incident(incident_id))


@bp.post("/incidents/<int:incident_id>/recovery/categories")
@role_required(Role.OPERATOR)
def set_categories(incident_id: int):
    incident = _incident(incident_id)
    form = forms.CategoriesForm()
    if not form.validate():
        return _dashboard(incident, form, 422)
    try:
        service.set_categories(db.session, actor=current_actor(), incident_id=incident_id, keys=form.keys())
    except ValidationError as e:
        db.session.rollback()
        form.categories.errors = [*form.categories.errors, *(e.fields.values() or [e.message])]
        return _dashboard(incident, form, 422)
    db.session.commit()
    flash("Categories saved; every account's overall state was re-derived.", "success")
    return redirect(url_for(".recovery_dashboard", incident_id=incident_id), 303)


# ---- imports: upload, paste, job page -------------------------------------------------------------

def _import_page(incident: Incident, kind: ImportKind, upload=None, paste=None, status: int = 200):
    if paste is None:
        paste = forms.PasteForm(formdata=None, text=forms.HEADERS[kind.value] + "\n")
    return render_template("ops/imports_new.html", incident=incident, kind=kind.value,
                           upload=upload or forms.UploadForm(formdata=None), paste=paste,
                           example=forms.EXAMPLES[kind.value],
                           categories=service.list_categories(db.session, incident_id=incident.id)), status


@bp.get("/incidents/<int:incident_id>/import/<kind>")
@role_required(Role.OPERATOR)
def import_new(incident_id: int, kind: str):
    return _import_page(_incident(incident_id), _kind(kind))


@bp.post("/incidents/<int:incident_id>/import/<kind>/upload")
@csrf.exempt  # checked in _parse_upload: the body is parsed here, with its own size limit
@role_required(Role.OPERATOR)
def import_upload(incident_id: int, kind: str):
    incident, kind_ = _incident(incident_id), _kind(kind)
    fields, files = _parse_upload(current_app.config["IMPORT_MAX_BYTES"])
    form = forms.UploadForm(formdata=fields, meta={"csrf": False})
    upload = files.get("file")
    if upload is None or not upload.filename:
        _discard(files)
        form.file.errors = ["Choose a CSV file to upload."]
        return _import_page(incident, kind_, upload=form, status=422)
    path = upload.stream.name
    _discard(files, keep=path)
    if os.path.getsize(path) == 0:
        os.unlink(path)
        form.file.errors = ["The file is empty: it needs a header row and at least one row."]
        return _import_page(incident, kind_, upload=form, status=422)
    name = secure_filename(upload.filename) or f"{kind}.csv"
    return _start(incident, kind_, name, path, os.path.getsize(path), form.skip_invalid.data)


def _parse_upload(limit: int):
    """Parse the multipart body with a larger limit than the app's, streaming each file part straight
    into its own file under instance/imports/ (no temp copy); then check the CSRF token."""
    request.max_content_length = limit
    cfg = current_app.config
    _stream, fields, files = parse_form_data(
        request.environ, stream_factory=lambda *args, **kwargs: jobs.new_upload_file(),
        max_content_length=limit, max_form_memory_size=cfg.get("MAX_FORM_MEMORY_SIZE") or 500_000,
        max_form_parts=cfg.get("MAX_FORM_PARTS") or 1000)
    for storage in files.values():
        storage.stream.flush()
    try:
        validate_csrf(fields.get("csrf_token"))
    except WTFValidationError as e:
        _discard(files)
        raise CSRFError(e.args[0]) from None
    return fields, files


def _discard(files, keep: str | None = None) -> None:
    """Close the uploaded parts' files and delete all but `keep`."""
    for storage in files.values():
        storage.stream.close()
        if storage.stream.name != keep:
            os.unlink(storage.stream.name)


@bp.post("/incidents/<int:incident_id>/import/<kind>/paste")
@role_required(Role.OPERATOR)
def import_paste(incident_id: int, kind: str):
    incident, kind_ = _incident(incident_id), _kind(kind)
    form = forms.PasteForm()
    if not form.validate():
        return _import_page(incident, kind_, paste=form, status=422)
    text = (form.text.data or "").strip()
    if len(text.splitlines()) < 2:
        form.text.errors = ["Paste the header row and at least one row."]
        return _import_page(incident, kind_, paste=form, status=422)
    path, size = jobs.save_upload(io.BytesIO((text + "\n").encode("utf-8")))
    return _start(incident, kind_, "pasted rows", path, size, form.skip_invalid.data)


def _start(incident: Incident, kind: ImportKind, filename: str, path: str, size: int, skip_invalid: bool):
    actor = current_actor()
    job = create_job(db.session, spec=jobs.spec_for(kind), incident_id=incident.id, actor=actor,
                     filename=filename, skip_invalid=bool(skip_invalid), size_bytes=size, source_path=path)
    db.session.commit()
    jobs.start(current_app._get_current_object(), job_id=job.id, actor=actor)
    return redirect(url_for(".import_job", job_id=job.id), 303)


@bp.get("/incidents/<int:incident_id>/imports")
@role_required(Role.VIEWER)
def import_list(incident_id: int):
    incident = _incident(incident_id)
    job_list = _fresh_jobs(service.list_import_jobs(db.session, incident_id=incident_id, limit=100))
    return render_template("ops/imports_list.html", incident=incident, jobs=job_list)


@bp.get("/imports/<int:job_id>")
@role_required(Role.VIEWER)
def import_job(job_id: int):
    job = _fresh_jobs([service.get_import_job(db.session, job_id=job_id)])[0]
    progress = serializers.progress(job)
    return render_template("ops/imports_job.html", job=job, incident=_incident(job.incident_id),
                           percent=progress["percent"], progress=progress)


@bp.get("/imports/<int:job_id>/errors.csv")
@role_required(Role.OPERATOR)
def import_errors(job_id: int):
    job = service.get_import_job(db.session, job_id=job_id)
    path = Path(job.error_csv_path or "")
    # Only this job's own report, and only from the imports folder.
    if not job.error_csv_path or path.resolve().parent != errors_dir().resolve() or not path.is_file():
        raise NotFound("This import has no error file.")
    return send_file(path, mimetype="text/csv", as_attachment=True, download_name=f"import-{job.id}-errors.csv",
                     max_age=0)


# ---- affected accounts: list, export, account page, search -------------------------------------------

@bp.get("/incidents/<int:incident_id>/accounts")
@role_required(Role.VIEWER)
def account_list(incident_id: int):
    incident = _incident(incident_id)
    categories = service.list_categories(db.session, incident_id=incident_id)
    form = forms.FilterForm(request.args)
    form.category.choices = [forms.ANY] + [SelectChoice(c.key, c.label) for c in categories]
    page = min(max(request.args.get("page", 1, type=int), 1), MAX_PAGE)
    rows, total, status = [], 0, 200
    if form.validate():
        rows, total = service.list_affected(
            db.session, incident_id=incident_id, state=form.state.data or None,
            category=form.category.data or None, category_state=form.category_state.data or None,
            q=(form.q.data or "").strip() or None, page=page, per_page=PER_PAGE)
    else:
        status = 400
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("ops/accounts_list.html", incident=incident, form=form, rows=rows, total=total,
                           page=page, pages=max(1, math.ceil(total / PER_PAGE)), args=args), status


@bp.get("/incidents/<int:incident_id>/accounts.csv")
@role_required(Role.VIEWER)
def account_export(incident_id: int):
    _incident(incident_id)
    record(db.session, actor=current_actor(), action="accounts.export", entity_type="incident",
           entity_id=incident_id)
    db.session.commit()
    response = Response(stream_with_context(service.export_rows(db.session, incident_id=incident_id)),
                        mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="incident-{incident_id}-accounts.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/incidents/<int:incident_id>/accounts/<path:account_number>", methods=["GET", "POST"])
@role_required(Role.VIEWER)
def account_page(incident_id: int, account_number: str):
    if request.method == "POST" and not current_user.can(Role.OPERATOR):
        abort(403)
    incident = _incident(incident_id)
    affected = service.get_affected(db.session, incident_id=incident_id, account_number=account_number)
    categories = service.list_categories(db.session, incident_id=incident_id)
    statuses = service.statuses_of(db.session, affected_id=affected.id)
    form = forms.recovery_edit_form(categories, statuses)
    other, status = {}, 200
    if request.method == "POST":
        if form.validate():
            items = forms.changed_items(form, categories, statuses)
            if not items:
                flash("Nothing changed.", "info")
                return redirect(request.path, 303)
            try:
                service.update_recovery(db.session, actor=current_actor(), incident_id=incident_id,
                                        account_number=account_number, items=items)
            except ValidationError as e:
                db.session.rollback()
                other = forms.attach_item_errors(form, items, e.fields, e.message)
            else:
                db.session.commit()
                flash("Recovery status saved.", "success")
                return redirect(request.path, 303)
        status = 422
        # The rollback expired these; load them again for the page.
        affected = service.get_affected(db.session, incident_id=incident_id, account_number=account_number)
        statuses = service.statuses_of(db.session, affected_id=affected.id)
    by_id = {c.id: c for c in categories}
    rule = [line.strip() for line in (accounts.recovery.__doc__ or "").splitlines() if "->" in line]
    return render_template(
        "ops/accounts_detail.html", incident=incident, affected=affected, account=affected.account,
        categories=categories, statuses=statuses, form=form, other_errors=other, rule=rule, by_id=by_id,
        history=service.history_of(db.session, affected_id=affected.id)), status


@bp.route("/accounts/<path:account_number>/erase", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def erase(account_number: str):
    """Erase a subscriber's personal data (accounts.erasure) after the admin types the account number."""
    account = db.session.scalar(sa.select(Account).where(Account.account_number == account_number))
    if account is None:
        abort(404)
    form = forms.EraseForm()
    status = 200
    if request.method == "POST":
        if form.validate() and form.confirm.data.strip() == account_number:
            counts = erasure.erase(db.session, actor=current_actor(), account_number=account_number)
            db.session.commit()
            flash(f"Erased account {account_number}: {erasure.describe(counts)}.", "success")
            return redirect(url_for(".search"), 303)
        if not form.confirm.errors:
            form.confirm.errors = [f"Type {account_number} exactly to confirm."]
        status = 422
    attached = service.incidents_of_accounts(db.session, account_ids=[account.id]).get(account.id, [])
    return render_template("ops/accounts_erase.html", account=account, form=form, attached=attached), status


@bp.get("/accounts")
@role_required(Role.VIEWER)
def search():
    q = (request.args.get("q") or "").strip()[:254]
    found = service.search_accounts(db.session, q=q) if q else []
    attached = service.incidents_of_accounts(db.session, account_ids=[a.id for a in found])
    # The page doubles as the way in to each incident's recovery dashboard.
    recent = [*incidents_service.open_incidents(db.session), *incidents_service.closed_incidents(db.session, limit=10)]
    return render_template("ops/accounts_search.html", q=q, found=found, attached=attached, recent=recent)
