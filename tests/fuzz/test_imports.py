"""Hypothesis properties of the CSV imports (accounts and recovery), through the project's own import
service (accounts.imports.service.run_job, as the CLI and the console run it) and through the upload routes.

For any file:
- the import never raises (the web routes would answer 500) and ends done, rejected or failed;
- a rejected or failed import applies nothing: accounts, attachments, contact history, recovery statuses
  and their history are exactly as before;
- an accepted import stores what the file says: each row's account (number, name; attached to the
  incident) or each row's recovery status (state, counts, note) reads back as written, trimmed as the
  importer documents.
"""
import io
import time

import pytest
import sqlalchemy as sa
from hypothesis import event, example, given
from hypothesis import strategies as st

from accounts.imports.account_import import AccountImport
from accounts.imports.service import create_job, run_job
from accounts.models import (Account, AccountChange, AffectedAccount, ImportJob, ImportStatus, RecoveryCategory,
                             RecoveryEvent, RecoveryStatus)
from accounts.imports.recovery_import import RecoveryImport
from core.db import db
from core.text import strip_unstorable
from tests.accounts.factories import ACTOR
from tests.conftest import csrf_from, make_operator, sign_in
from tests.fuzz import csvgen
from tests.fuzz.findings import crash_site, exception_key
from tests.fuzz.seed import seed
from tests.fuzz.settings import fuzz_settings

pytestmark = pytest.mark.fuzz

TABLES = (Account, AffectedAccount, AccountChange, RecoveryStatus, RecoveryEvent)
FINISHED = {ImportStatus.DONE, ImportStatus.REJECTED, ImportStatus.FAILED}


def everything() -> dict:
    """Every row of the tables an import may change, to compare before and after."""
    db.session.rollback()
    db.session.expire_all()
    out = {}
    for model in TABLES:
        table = model.__table__
        out[table.name] = [tuple(r) for r in db.session.execute(sa.select(table).order_by(table.c.id))]
    db.session.rollback()
    return out


def show(data: bytes) -> str:
    return repr(data if len(data) <= 400 else data[:200] + b"...(%d bytes)" % len(data))


def import_file(findings, kind: str, incident_id: int, data: bytes, skip_invalid: bool):
    """Run an import the way the CLI does; a raised exception is a finding (the routes would answer 500)."""
    spec = AccountImport() if kind == "accounts" else RecoveryImport()
    job = create_job(db.session, spec=spec, incident_id=incident_id, actor=ACTOR, filename=f"{kind}.csv",
                     skip_invalid=skip_invalid, size_bytes=len(data))
    db.session.commit()
    try:
        return run_job(spec=spec, job_id=job.id, stream=io.BytesIO(data), actor=ACTOR)
    except Exception as e:  # noqa: BLE001 - any exception is the finding
        import traceback
        db.session.rollback()
        tb = "".join(traceback.format_exception(e))
        exception, site = crash_site(tb)
        findings.add((kind, "raised", exception_key(tb)), f"{kind} import raised (the routes answer 500)",
                     f"skip_invalid={skip_invalid} file={show(data)}", f"{exception}\n    at {site}")
        return None


def check_outcome(findings, kind: str, job, data: bytes, skip_invalid: bool, before: dict, after: dict) -> bool:
    """The outcome properties every import must keep; True when the job was accepted."""
    shown = f"skip_invalid={skip_invalid} file={show(data)}"
    event(f"{kind} import {job.status.value}")  # shown by pytest --hypothesis-show-statistics
    if job.status not in FINISHED:
        findings.add((kind, "unfinished", job.status), f"{kind} import ended {job.status}", shown, job.message)
        return False
    if job.status != ImportStatus.DONE:
        if after != before:
            changed = [t for t in before if before[t] != after[t]]
            findings.add((kind, "applied", job.status, tuple(changed)),
                         f"{kind} import {job.status.value} but changed {', '.join(changed)}", shown, job.message)
        return False
    return True


# ---- accounts ------------------------------------------------------------------------------------

def test_account_import_applies_all_or_nothing_and_stores_what_the_file_says(fuzz_app, findings):
    incident_id = seed().ids["incident_id"][0]

    @fuzz_settings(80)  # slower than recovery: every accepted file adds accounts
    @given(csvgen.csv_files(csvgen.ACCOUNT_COLUMNS, csvgen.account_rows()), st.booleans())
    @csvgen.corpus(csvgen.ACCOUNT_CORPUS)
    def prop(file, skip_invalid):
        data, _header, _rows = file
        before = everything()
        job = import_file(findings, "accounts", incident_id, data, skip_invalid)
        if job is None or not check_outcome(findings, "accounts", job, data, skip_invalid, before, everything()):
            return
        if skip_invalid and job.rows_invalid:
            return  # which rows were valid is the importer's call; the rejected ones are in its error file
        header, rows = csvgen.read_back(data)
        for row in rows:
            # Characters no store can hold are stripped on import (core.text): that is what the file "says".
            values = {h: strip_unstorable(row[i]).strip() for i, h in enumerate(header)}
            account = db.session.scalar(sa.select(Account).where(Account.account_number == values["account_number"]))
            problem = None
            if account is None:
                problem = "an accepted row's account is not stored"
            elif account.name != values["name"]:
                problem = f"name stored as {account.name!r}, the file says {values['name']!r}"
            elif not db.session.scalar(sa.select(AffectedAccount.id).where(
                    AffectedAccount.account_id == account.id, AffectedAccount.incident_id == incident_id)):
                problem = "the account is not attached to the incident"
            elif bool(account.phone) != bool(values["phone"]) or bool(account.email) != bool(values["email"]):
                problem = f"phone/email stored as {account.phone!r}/{account.email!r} from {values['phone']!r}/" \
                          f"{values['email']!r}"
            if problem:
                findings.add(("accounts", "round-trip", problem.split(" ")[0]), f"accounts import: {problem}",
                             f"skip_invalid={skip_invalid} file={show(data)}")
        db.session.rollback()

    prop()


# ---- recovery ------------------------------------------------------------------------------------

def test_recovery_import_applies_all_or_nothing_and_stores_what_the_file_says(fuzz_app, findings):
    seeded = seed()
    incident_id = seeded.ids["incident_id"][0]
    numbers = [n for n in seeded.ids["account_number"]]
    categories = {c.key: c.id for c in db.session.scalars(
        sa.select(RecoveryCategory).where(RecoveryCategory.incident_id == incident_id))}
    db.session.commit()

    @fuzz_settings(100)
    @given(csvgen.csv_files(csvgen.RECOVERY_COLUMNS, csvgen.recovery_rows(numbers, list(categories))),
           st.booleans())
    @csvgen.corpus(csvgen.RECOVERY_CORPUS)
    def prop(file, skip_invalid):
        data, _header, _rows = file
        before = everything()
        job = import_file(findings, "recovery", incident_id, data, skip_invalid)
        if job is None or not check_outcome(findings, "recovery", job, data, skip_invalid, before, everything()):
            return
        if skip_invalid and job.rows_invalid:
            return
        header, rows = csvgen.read_back(data)
        for row in rows:
            v = {h: strip_unstorable(row[i]).strip() for i, h in enumerate(header)}
            status = db.session.scalar(
                sa.select(RecoveryStatus).join(AffectedAccount).join(Account)
                .where(Account.account_number == v["account_number"], AffectedAccount.incident_id == incident_id,
                       RecoveryStatus.category_id == categories.get(v["category"].lower())))
            expected = (v["state"].lower(), int(v["items_total"]) if v["items_total"] else None,
                        int(v["items_recovered"]) if v["items_recovered"] else None, v["note"])
            stored = None if status is None else (status.state.value, status.items_total, status.items_recovered,
                                                  status.note)
            if stored != expected:
                findings.add(("recovery", "round-trip"), "recovery import: stored values differ from the file",
                             f"skip_invalid={skip_invalid} file={show(data)}",
                             f"row {row!r}: stored {stored!r}, expected {expected!r}")
        db.session.rollback()

    prop()


# ---- through HTTP: the API's text/csv upload and the console's upload form ------------------------

def test_csv_uploads_never_cause_a_server_error_and_a_refused_upload_applies_nothing(fuzz_app, findings):
    seeded = seed()
    incident_id = seeded.ids["incident_id"][0]
    api = fuzz_app.test_client()
    auth = {"Authorization": f"Bearer {seeded.token}"}
    operator = make_operator("operator", email="fuzz-operator@example.com")
    console = fuzz_app.test_client()
    assert sign_in(console, operator).status_code == 302
    db.session.commit()

    @fuzz_settings(30)
    @given(csvgen.csv_files(csvgen.ACCOUNT_COLUMNS, csvgen.account_rows()), st.booleans())
    @csvgen.corpus(csvgen.ACCOUNT_CORPUS[:8])
    def api_upload(file, skip_invalid):
        data = file[0]
        before = everything()
        fuzz_app.fuzz_errors.clear()
        response = api.post(f"/api/ops/v1/incidents/{incident_id}/affected-accounts",
                            query_string={"skip_invalid": str(skip_invalid).lower()}, data=data,
                            headers={**auth, "Content-Type": "text/csv"})
        repro = f"POST /api/ops/v1/incidents/{incident_id}/affected-accounts text/csv skip_invalid={skip_invalid} " \
                f"body={show(data)}"
        event(f"API text/csv upload: {response.status_code}")
        if response.status_code >= 500:
            tb = fuzz_app.fuzz_errors[-1] if fuzz_app.fuzz_errors else ""
            exception, site = crash_site(tb)
            findings.add(("api csv", response.status_code, exception_key(tb)),
                         f"API text/csv import: {response.status_code}", repro, f"{exception}\n    at {site}")
        elif response.status_code >= 400 and everything() != before:
            findings.add(("api csv", "applied"), f"API text/csv import answered {response.status_code} but "
                                                 "changed data", repro)

    @fuzz_settings(20)
    @given(st.sampled_from(["accounts", "recovery"]),
           csvgen.csv_files(csvgen.ACCOUNT_COLUMNS, csvgen.account_rows()),
           csvgen.csv_files(csvgen.RECOVERY_COLUMNS, csvgen.recovery_rows(seeded.ids["account_number"],
                                                                          ["contacts", "photos", "calendar"])),
           st.sampled_from(["accounts.csv", "", "../../etc/passwd", "ÉLAN\x00.csv", "a\r\nb.csv", "\ud800.csv",
                            "x" * 400 + ".csv", "data.xlsx"]),
           st.sampled_from([None, "y", "on", "\x00"]))
    @example("accounts", (csvgen.ACCOUNT_CORPUS[3], None, None), (b"", None, None), "accounts.csv", None)
    @example("recovery", (b"", None, None), (csvgen.RECOVERY_CORPUS[0], None, None), "\ud800.csv", "y")
    def console_upload(kind, accounts_file, recovery_file, filename, skip):
        data = accounts_file[0] if kind == "accounts" else recovery_file[0]
        page = console.get(f"/ops/incidents/{incident_id}/import/{kind}")
        assert page.status_code == 200, page.status_code
        fields = {"csrf_token": csrf_from(page.get_data(as_text=True)),
                  "file": (io.BytesIO(data), filename.encode("utf-8", "surrogatepass").decode("latin-1"))}
        if skip is not None:
            fields["skip_invalid"] = skip
        db.session.commit()
        last_job = db.session.scalar(sa.select(sa.func.max(ImportJob.id)))
        fuzz_app.fuzz_errors.clear()
        response = console.post(f"/ops/incidents/{incident_id}/import/{kind}/upload", data=fields,
                                content_type="multipart/form-data")
        repro = f"console upload kind={kind} filename={filename!r} skip_invalid={skip!r} file={show(data)}"
        if response.status_code >= 500:
            tb = fuzz_app.fuzz_errors[-1] if fuzz_app.fuzz_errors else ""
            exception, site = crash_site(tb)
            findings.add(("console upload", response.status_code, exception_key(tb)),
                         f"console CSV upload: {response.status_code}", repro, f"{exception}\n    at {site}")
            return
        fuzz_app.fuzz_logged.clear()
        job = _wait_for_new_job(last_job)
        event(f"console upload: {response.status_code} job {job.status.value if job else None}")
        if job is not None and job.status == ImportStatus.FAILED and "unexpectedly" in (job.message or ""):
            tb = fuzz_app.fuzz_logged[-1] if fuzz_app.fuzz_logged else ""
            exception, site = crash_site(tb)
            findings.add(("console upload", "job crashed", kind, exception_key(tb)),
                         "console import job crashed in its thread (shown as 'failed unexpectedly')", repro,
                         f"{exception}\n    at {site}")

    api_upload()
    console_upload()


def _wait_for_new_job(last_id: int | None, timeout: float = 30):
    from accounts.imports import jobs

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()
        db.session.expire_all()
        job = db.session.scalar(sa.select(ImportJob).where(ImportJob.id > (last_id or 0)).order_by(ImportJob.id))
        if job is None:
            return None  # no job was started (the form was refused)
        if job.status in FINISHED and not jobs.is_running_here(job.id):
            return job
        time.sleep(0.02)
    raise AssertionError(f"import job after {last_id} did not finish in {timeout}s")
