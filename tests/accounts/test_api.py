"""The ops API for affected accounts and recovery, end to end: imports (CSV and JSON), recovery edits,
summary, list, export and categories. Every answer is checked against the OpenAPI document."""
import csv
import io

import sqlalchemy as sa

from accounts.imports.service import errors_dir
from accounts.models import Account, AffectedAccount, ImportJob, RecoveryEvent
from core.db import db
from ops import service as ops_service
from ops.audit import Actor
from ops.models import AuditEntry
from tests.accounts.factories import HEADER, attach, count_rows, run_import
from tests.accounts.uploads import wait_for_job
from tests.conftest import make_operator
from tests.ops.api_client import PREFIX, CsvAwareClient, api_operations

GOOD = HEADER + "A1,Ann Lee,(206) 555-0100,ann@example.com,en\nA2,Bruno,,bruno@example.com,es\n"
BAD_LINE = "A3,Bad Phone,12,nobody@,en\n"


def _viewer_api(client) -> CsvAwareClient:
    viewer = make_operator("viewer", email="viewer@example.com")
    _token, secret = ops_service.create_token(db.session, actor=Actor.cli("test"), operator_id=viewer.id)
    db.session.commit()
    return CsvAwareClient(client, secret)


def _post_csv(api, incident_id: int, text: str | bytes, query: str = ""):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return api.post(f"/incidents/{incident_id}/affected-accounts{query}", data=data, content_type="text/csv")


def _numbers(incident_id: int) -> set[str]:
    return set(db.session.scalars(sa.select(Account.account_number).join(AffectedAccount)
                                  .where(AffectedAccount.incident_id == incident_id)))


# ---- attaching accounts ----------------------------------------------------------------------------

def test_a_csv_body_attaches_the_accounts_and_answers_the_job_summary(api, incident):
    response = _post_csv(api, incident.id, GOOD)
    assert response.status_code == 200, response.get_json()
    job = response.get_json()
    assert (job["status"], job["kind"], job["filename"]) == ("done", "accounts", "API request (CSV)")
    assert (job["rows_read"], job["rows_invalid"], job["rows_created"], job["rows_attached"]) == (2, 0, 2, 2)
    assert job["errors"] == [] and job["error_csv_url"] is None
    assert job["actor"].startswith("api@example.com (token ")
    assert _numbers(incident.id) == {"A1", "A2"}
    ann = db.session.scalar(sa.select(Account).where(Account.account_number == "A1"))
    assert (ann.phone, ann.email, ann.language) == ("+12065550100", "ann@example.com", "en")
    audit = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "accounts.import"))
    assert audit.after["job"] == job["id"] and audit.after["rows_created"] == 2
    assert audit.operator_id is not None
    assert api.get(f"/imports/{job['id']}").get_json() == job


def test_a_json_body_goes_through_the_same_import(api, incident):
    response = api.post(f"/incidents/{incident.id}/affected-accounts", json={"accounts": [
        {"account_number": "J1", "name": "Jo", "phone": "+44 20 7946 0958", "email": "JO@Example.com",
         "locale": "en-GB"},
        {"account_number": "J2", "phone": None, "email": None, "locale": None},
    ]})
    assert response.status_code == 200, response.get_json()
    job = response.get_json()
    assert (job["filename"], job["rows_created"], job["rows_attached"]) == ("API request (JSON)", 2, 2)
    jo = db.session.scalar(sa.select(Account).where(Account.account_number == "J1"))
    assert (jo.phone, jo.email, jo.time_zone) == ("+442079460958", "jo@example.com", "Europe/London")


def test_the_same_accounts_sent_as_json_after_a_csv_change_nothing(api, incident):
    _post_csv(api, incident.id, GOOD)
    job = api.post(f"/incidents/{incident.id}/affected-accounts", json={"accounts": [
        {"account_number": "A1", "name": "Ann Lee", "phone": "(206) 555-0100", "email": "ann@example.com",
         "locale": "en"},
        {"account_number": "A2", "name": "Bruno", "email": "bruno@example.com", "locale": "es"}]}).get_json()
    assert (job["rows_unchanged"], job["rows_created"], job["rows_updated"], job["rows_attached"]) == (2, 0, 0, 0)


def test_posting_the_same_accounts_again_changes_nothing(api, incident):
    first = _post_csv(api, incident.id, GOOD).get_json()
    again = _post_csv(api, incident.id, GOOD)
    assert again.status_code == 200
    job = again.get_json()
    assert (job["rows_created"], job["rows_updated"], job["rows_unchanged"], job["rows_attached"]) == (0, 0, 2, 0)
    assert job["id"] != first["id"]
    assert count_rows(Account) == 2 and count_rows(AffectedAccount) == 2
    # An Idempotency-Key is accepted and harmless: the import itself is idempotent.
    keyed = api.post(
        f"/incidents/{incident.id}/affected-accounts", data=GOOD, content_type="text/csv",
        headers={"Idempotency-Key": "k1"})
    assert keyed.status_code == 200 and keyed.get_json()["rows_unchanged"] == 2
    assert count_rows(Account) == 2


def test_invalid_csv_rows_are_listed_by_line_column_and_reason_and_nothing_is_applied(api, incident):
    response = _post_csv(api, incident.id, GOOD + BAD_LINE + "A1,Again,,,en\n")
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"]["status"] == 422 and "Nothing was applied" in body["error"]["message"]
    rows = body["error"]["rows"]
    assert {(r["line"], r["column"]) for r in rows} == {(4, "phone"), (4, "email"), (5, "account_number")}
    assert "already appears on line 2" in next(r["reason"] for r in rows if r["line"] == 5)
    assert body["job"]["status"] == "rejected" and body["job"]["rows_invalid"] == 2
    assert count_rows(Account) == 0
    assert api.get(f"/imports/{body['job']['id']}").get_json()["status"] == "rejected"


def test_invalid_json_accounts_name_their_field(api, incident):
    response = api.post(f"/incidents/{incident.id}/affected-accounts", json={"accounts": [
        {"account_number": "J1"}, {"account_number": "J2", "phone": "12", "email": "nobody@"},
        {"account_number": "J1"}]})
    assert response.status_code == 422
    body = response.get_json()
    assert set(body["error"]["fields"]) == {"accounts[1].phone", "accounts[1].email", "accounts[2].account_number"}
    assert "already appears on line 2" in body["error"]["fields"]["accounts[2].account_number"]
    assert {e["field"] for e in body["job"]["errors"]} == set(body["error"]["fields"])
    assert count_rows(Account) == 0


def test_skip_invalid_applies_the_valid_rows_and_keeps_the_rejected_ones_in_an_error_csv(api, client, incident):
    response = _post_csv(api, incident.id, GOOD + BAD_LINE, "?skip_invalid=true")
    assert response.status_code == 200
    job = response.get_json()
    assert (job["status"], job["skip_invalid"], job["rows_invalid"], job["rows_created"]) == ("done", True, 1, 2)
    assert "1 invalid row(s) skipped" in job["message"]
    assert job["error_csv_url"] == f"{PREFIX}/imports/{job['id']}/errors.csv"
    errors = api.get(f"/imports/{job['id']}/errors.csv")
    assert errors.status_code == 200 and errors.mimetype == "text/csv"
    lines = list(csv.reader(io.StringIO(errors.get_data(as_text=True))))
    assert lines[0] == ["line", "column", "reason", "account_number", "name", "phone", "email", "locale"]
    assert {(r[0], r[1], r[3]) for r in lines[1:]} == {("4", "phone", "A3"), ("4", "email", "A3")}
    assert _numbers(incident.id) == {"A1", "A2"}
    # the rejected rows hold contact details: viewers may not fetch them
    assert _viewer_api(client).get(f"/imports/{job['id']}/errors.csv").status_code == 403


def test_skip_invalid_in_a_json_body(api, incident):
    response = api.post(f"/incidents/{incident.id}/affected-accounts", json={
        "skip_invalid": True, "accounts": [{"account_number": "J1"}, {"account_number": "J2", "locale": "??"}]})
    assert response.status_code == 200
    job = response.get_json()
    assert job["rows_created"] == 1 and [e["field"] for e in job["errors"]] == ["accounts[1].locale"]
    assert api.get(f"/imports/{job['id']}/errors.csv").status_code == 200


def test_bad_json_types_unknown_fields_and_line_breaks_are_refused_before_any_job(api, incident):
    url = f"/incidents/{incident.id}/affected-accounts"
    response = api.post(url, json={"accounts": [
        {"account_number": 7, "colour": "red"}, {"name": "no number"}, {"account_number": "X", "name": "a\nb"},
        "A4"], "skip_invalid": "yes", "extra": 1})
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == {
        "accounts[0].account_number": "Must be text.", "accounts[0].colour": "Unknown field.",
        "accounts[1].account_number": "This field is required.",
        "accounts[2].name": "Must be on one line (no line breaks).", "accounts[3]": "Must be an object.",
        "skip_invalid": "Must be true or false.", "extra": "Unknown field."}
    assert api.post(url, json={"accounts": []}).get_json()["error"]["fields"] == {"accounts": "Give at least 1."}
    assert api.post(url, data="{", content_type="application/json").status_code == 400
    assert api.post(url, json=[1]).status_code == 400
    assert count_rows(ImportJob) == 0


def test_an_unreadable_csv_fails_with_400_and_a_failed_job(api, incident):
    not_utf8 = _post_csv(api, incident.id, HEADER.encode() + "B1,Jos\xe9,,,en\n".encode("latin-1"))
    assert not_utf8.status_code == 400
    body = not_utf8.get_json()
    assert "not UTF-8" in body["error"]["message"] and body["job"]["status"] == "failed"
    no_header = _post_csv(api, incident.id, "A1,Ann Lee,,ann@example.com,en\n")
    assert no_header.status_code == 400 and "header row" in no_header.get_json()["error"]["message"]
    empty = _post_csv(api, incident.id, b"")
    assert empty.status_code == 400 and "empty" in empty.get_json()["error"]["message"]
    assert count_rows(Account) == 0


def test_other_content_types_unknown_incidents_and_bad_flags_are_refused(api, incident):
    url = f"/incidents/{incident.id}/affected-accounts"
    response = api.post(url, data="a=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and "text/csv" in response.get_json()["error"]["message"]
    assert _post_csv(api, 999, GOOD).status_code == 404
    bad = _post_csv(api, incident.id, GOOD, "?skip_invalid=maybe")
    assert bad.status_code == 422 and bad.get_json()["error"]["fields"] == {"skip_invalid": "Use true or false."}
    assert api.get("/imports/999").status_code == 404
    assert api.get("/imports/999/errors.csv").status_code == 404
    assert count_rows(ImportJob) == 0


def test_a_body_over_the_import_limit_is_refused_with_413_and_leaves_nothing(app, api, incident):
    app.config.update(MAX_CONTENT_LENGTH=100, IMPORT_MAX_BYTES=150)
    response = _post_csv(api, incident.id, GOOD + "A3,x,,,en\n" * 20)
    assert response.status_code == 413
    assert count_rows(ImportJob) == 0 and count_rows(Account) == 0
    assert not list(errors_dir().glob("upload-*"))


def test_a_body_over_the_inline_limit_becomes_a_background_job_with_progress(app, api, incident):
    app.config["MAX_CONTENT_LENGTH"] = 100  # the inline limit; IMPORT_MAX_BYTES (1 GB) is the background one
    rows = "".join(f"L{i},Name {i},+1206555{i:04d},l{i}@example.com,en\n" for i in range(500))
    response = _post_csv(api, incident.id, HEADER + rows)
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert response.headers["Location"] == f"{PREFIX}/imports/{job['id']}" and "Preference-Applied" not in response.headers
    assert job["progress"]["size_bytes"] == len((HEADER + rows).encode())
    done = wait_for_job(job["id"])
    assert done.status.value == "done" and done.rows_attached == 500
    followed = api.get(f"/imports/{job['id']}").get_json()
    assert followed["progress"] == {"phase": "done", "bytes_read": job["progress"]["size_bytes"],
                                    "size_bytes": job["progress"]["size_bytes"], "percent": 100, "rows_valid": 500,
                                    "eta_seconds": None}


def test_prefer_respond_async_runs_even_a_small_body_in_the_background(api, incident):
    response = api.post(f"/incidents/{incident.id}/affected-accounts", data=GOOD.encode(), content_type="text/csv",
                        headers={"Prefer": "respond-async"})
    assert response.status_code == 202 and response.headers["Preference-Applied"] == "respond-async"
    assert wait_for_job(response.get_json()["id"]).rows_attached == 2
    assert _numbers(incident.id) == {"A1", "A2"}


def test_progress_gives_an_eta_from_the_pace_so_far(app):
    from datetime import timedelta

    from accounts.models import ImportStatus
    from accounts.serializers import progress
    from core.db import utcnow

    now = utcnow()
    job = ImportJob(status=ImportStatus.VALIDATING, size_bytes=1000, bytes_read=250, rows_read=2500,
                    rows_invalid=10, created_at=now - timedelta(seconds=30))
    assert progress(job, now) == {"phase": "validating", "bytes_read": 250, "size_bytes": 1000, "percent": 25,
                                  "rows_valid": 2490, "eta_seconds": 90}
    job.status = ImportStatus.APPLYING
    assert progress(job, now)["eta_seconds"] is None  # one transaction: no pace to measure


def test_an_import_started_in_the_console_or_cli_can_be_followed(api, incident):
    job = run_import(incident.id, GOOD)
    answer = api.get(f"/imports/{job.id}").get_json()
    assert (answer["status"], answer["filename"], answer["rows_created"]) == ("done", "accounts.csv", 2)
    assert answer["errors"] == [] and answer["finished_at"].endswith("Z")


# ---- roles and the document ---------------------------------------------------------------------------

def test_a_viewer_token_reads_but_cannot_import_or_change_recovery(client, incident):
    attach(incident.id, "A1")
    viewer = _viewer_api(client)
    assert viewer.get(f"/incidents/{incident.id}/recovery-summary").status_code == 200
    assert viewer.get(f"/incidents/{incident.id}/affected-accounts").status_code == 200
    assert viewer.get(f"/incidents/{incident.id}/accounts/A1").status_code == 200
    assert _post_csv(viewer, incident.id, GOOD).status_code == 403
    assert viewer.put(f"/incidents/{incident.id}/accounts/A1/recovery",
                      json={"categories": [{"category": "contacts", "state": "lost"}]}).status_code == 403
    assert viewer.put(f"/incidents/{incident.id}/recovery-categories", json={"categories": ["x"]}).status_code == 403
    assert count_rows(ImportJob) == 1 and count_rows(RecoveryEvent) == 0


def test_every_accounts_operation_is_documented_and_answers_as_documented(app, api, incident):
    ours = {op for op in api_operations(app) if "account" in op[0] or "recovery" in op[0] or "imports" in op[0]}
    assert len(ours) == 11
    job = _post_csv(api, incident.id, GOOD + BAD_LINE, "?skip_invalid=1").get_json()
    api.get(f"/imports/{job['id']}")
    api.get(f"/imports/{job['id']}/errors.csv")
    api.get(f"/incidents/{incident.id}/affected-accounts")
    api.get(f"/incidents/{incident.id}/affected-accounts.csv")
    api.get(f"/incidents/{incident.id}/accounts/A1")
    api.put(f"/incidents/{incident.id}/accounts/A1/recovery",
            json={"categories": [{"category": "contacts", "state": "lost"}]})
    api.get(f"/incidents/{incident.id}/recovery-summary")
    api.get(f"/incidents/{incident.id}/recovery-categories")
    api.put(f"/incidents/{incident.id}/recovery-categories", json={"categories": ["contacts", "calendar", "photos"]})
    assert api.post("/accounts/A1/erase").status_code == 403  # admins only (tests/accounts/test_erasure.py)
    assert api.seen == ours
    doc = api.doc["paths"][f"/incidents/{{incident_id}}/affected-accounts"]["post"]
    assert set(doc["requestBody"]["content"]) == {"application/json", "text/csv"}
    assert "respond-async" in doc["description"] and "idempotent" in doc["description"]
    assert "202" in doc["responses"]


def test_a_streamed_body_that_breaks_off_over_the_limit_is_refused_and_leaves_nothing(app, api, incident):
    """A chunked body (no Content-Length) goes to the background; over IMPORT_MAX_BYTES it is cut while it is
    saved: 413, no job, and no partial file."""
    app.config["IMPORT_MAX_BYTES"] = 200
    body = io.BytesIO((GOOD + "".join(f"C{i},x,,,en\n" for i in range(50))).encode())
    response = api.post(f"/incidents/{incident.id}/affected-accounts", input_stream=body, content_type="text/csv",
                        headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413
    assert count_rows(ImportJob) == 0 and count_rows(Account) == 0
    assert not list(errors_dir().glob("upload-*"))
