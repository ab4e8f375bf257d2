"""The ops API for affected accounts and recovery, end to end: imports (CSV and JSON), recovery edits,
summary, list, export and categories. Every answer is checked against the OpenAPI document."""
import csv
import io

import pytest
import sqlalchemy as sa

from accounts import service
from accounts.models import Account, AffectedAccount, ImportJob, RecoveryEvent
from core.db import db
from ops import service as ops_service
from ops.audit import Actor
from ops.models import AuditEntry
from tests.accounts.factories import HEADER, RECOVERY_HEADER, attach, make_incident, run_import
from tests.conftest import make_operator
from tests.ops.test_openapi import PREFIX, ApiClient, _template, api_operations

GOOD = HEADER + "A1,Ann Lee,(206) 555-0100,ann@example.com,en\nA2,Bruno,,bruno@example.com,es\n"
BAD_LINE = "A3,Bad Phone,12,nobody@,en\n"


class CsvAwareClient(ApiClient):
    """ApiClient that also accepts documented text/csv answers (bodies are checked by the tests)."""

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def check(self, method, path, response):
        if response.mimetype != "text/csv":
            return super().check(method, path, response)
        adapter = self.client.application.url_map.bind("localhost")
        rule, _args = adapter.match(PREFIX + path, method=method, return_rule=True)
        template = _template(rule.rule)
        answer = self.doc["paths"][template][method.lower()]["responses"][str(response.status_code)]
        assert "text/csv" in answer["content"], f"{method} {template} answered CSV, which is not documented"
        self.seen.add((template, method.lower()))


@pytest.fixture(autouse=True)
def _private_instance_folder(app, tmp_path):
    """Error CSVs go to this test's own folder, never the project's instance/imports/."""
    app.instance_path = str(tmp_path)


@pytest.fixture
def api(client, api_token):
    return CsvAwareClient(client, api_token[1])


@pytest.fixture
def incident(app):
    return make_incident()


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


def _count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def _recover(incident_id: int, rows: str) -> None:
    job = run_import(incident_id, RECOVERY_HEADER + rows, kind="recovery")
    assert job.status.value == "done", job.errors


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
        {"account_number": "J1", "name": "Jo", "phone": "+44 20 7946 0958", "email": "JO@Example.com", "locale": "en-GB"},
        {"account_number": "J2", "phone": None, "email": None, "locale": None},
    ]})
    assert response.status_code == 200, response.get_json()
    job = response.get_json()
    assert (job["filename"], job["rows_created"], job["rows_attached"]) == ("API request (JSON)", 2, 2)
    jo = db.session.scalar(sa.select(Account).where(Account.account_number == "J1"))
    assert (jo.phone, jo.email, jo.time_zone) == ("+442079460958", "jo@example.com", "Europe/London")


def test_posting_the_same_accounts_again_changes_nothing(api, incident):
    first = _post_csv(api, incident.id, GOOD).get_json()
    again = _post_csv(api, incident.id, GOOD)
    assert again.status_code == 200
    job = again.get_json()
    assert (job["rows_created"], job["rows_updated"], job["rows_unchanged"], job["rows_attached"]) == (0, 0, 2, 0)
    assert job["id"] != first["id"]
    assert _count(Account) == 2 and _count(AffectedAccount) == 2
    # An Idempotency-Key is accepted and harmless: the import itself is idempotent.
    keyed = api.post(
        f"/incidents/{incident.id}/affected-accounts", data=GOOD, content_type="text/csv",
        headers={"Idempotency-Key": "k1"})
    assert keyed.status_code == 200 and keyed.get_json()["rows_unchanged"] == 2
    assert _count(Account) == 2


def test_invalid_csv_rows_are_listed_by_line_column_and_reason_and_nothing_is_applied(api, incident):
    response = _post_csv(api, incident.id, GOOD + BAD_LINE + "A1,Again,,,en\n")
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"]["status"] == 422 and "Nothing was applied" in body["error"]["message"]
    rows = body["error"]["rows"]
    assert {(r["line"], r["column"]) for r in rows} == {(4, "phone"), (4, "email"), (5, "account_number")}
    assert "already appears on line 2" in next(r["reason"] for r in rows if r["line"] == 5)
    assert body["job"]["status"] == "rejected" and body["job"]["rows_invalid"] == 2
    assert _count(Account) == 0
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
    assert _count(Account) == 0


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
    assert _count(ImportJob) == 0


def test_an_unreadable_csv_fails_with_400_and_a_failed_job(api, incident):
    not_utf8 = _post_csv(api, incident.id, HEADER.encode() + "B1,Jos\xe9,,,en\n".encode("latin-1"))
    assert not_utf8.status_code == 400
    body = not_utf8.get_json()
    assert "not UTF-8" in body["error"]["message"] and body["job"]["status"] == "failed"
    no_header = _post_csv(api, incident.id, "A1,Ann Lee,,ann@example.com,en\n")
    assert no_header.status_code == 400 and "header row" in no_header.get_json()["error"]["message"]
    empty = _post_csv(api, incident.id, b"")
    assert empty.status_code == 400 and "empty" in empty.get_json()["error"]["message"]
    assert _count(Account) == 0


def test_other_content_types_unknown_incidents_and_bad_flags_are_refused(api, incident):
    url = f"/incidents/{incident.id}/affected-accounts"
    response = api.post(url, data="a=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and "text/csv" in response.get_json()["error"]["message"]
    assert _post_csv(api, 999, GOOD).status_code == 404
    bad = _post_csv(api, incident.id, GOOD, "?skip_invalid=maybe")
    assert bad.status_code == 422 and bad.get_json()["error"]["fields"] == {"skip_invalid": "Use true or false."}
    assert api.get("/imports/999").status_code == 404
    assert api.get("/imports/999/errors.csv").status_code == 404
    assert _count(ImportJob) == 0


def test_a_body_over_the_size_limit_is_refused_with_413(app, api, incident):
    app.config["MAX_CONTENT_LENGTH"] = 100
    response = _post_csv(api, incident.id, GOOD + "A3,x,,,en\n" * 20)
    assert response.status_code == 413
    assert _count(ImportJob) == 0 and _count(Account) == 0


def test_an_import_started_in_the_console_or_cli_can_be_followed(api, incident):
    job = run_import(incident.id, GOOD)
    answer = api.get(f"/imports/{job.id}").get_json()
    assert (answer["status"], answer["filename"], answer["rows_created"]) == ("done", "accounts.csv", 2)
    assert answer["errors"] == [] and answer["finished_at"].endswith("Z")


# ---- recovery of one account -------------------------------------------------------------------------

def test_putting_recovery_sets_the_states_with_history_and_answers_the_current_recovery(api, incident):
    attach(incident.id, "A1")
    response = api.put(f"/incidents/{incident.id}/accounts/A1/recovery", json={"categories": [
        {"category": "contacts", "state": "recovered", "items_total": 120, "items_recovered": 120},
        {"category": "Photos", "state": "lost", "note": "Nothing left on the phone."}]})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["account_number"] == "A1" and body["overall_state"] == "unknown"  # calendar still unknown
    by_key = {c["category"]: c for c in body["categories"]}
    assert list(by_key) == ["contacts", "calendar", "photos"]
    assert (by_key["contacts"]["state"], by_key["contacts"]["items_recovered"]) == ("recovered", 120)
    assert by_key["photos"]["note"] == "Nothing left on the phone."
    assert by_key["photos"]["updated_by"].startswith("api@example.com")
    assert by_key["calendar"] == {"category": "calendar", "state": "unknown", "items_total": None,
                                  "items_recovered": None, "note": "", "updated_at": None, "updated_by": ""}
    assert _count(RecoveryEvent) == 2
    assert _count(AuditEntry, AuditEntry.action == "recovery.update") == 1
    done = api.put(f"/incidents/{incident.id}/accounts/A1/recovery",
                   json={"categories": [{"category": "calendar", "state": "recovered"}]}).get_json()
    assert done["overall_state"] == "partially_recovered"


def test_putting_the_same_recovery_twice_records_no_new_history(api, incident):
    attach(incident.id, "A1")
    body = {"categories": [{"category": "contacts", "state": "recovering", "items_total": 10, "items_recovered": 3}]}
    first = api.put(f"/incidents/{incident.id}/accounts/A1/recovery", json=body)
    again = api.put(f"/incidents/{incident.id}/accounts/A1/recovery", json=body)
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json()
    assert _count(RecoveryEvent) == 1


def test_recovery_errors_name_the_item_and_field(api, incident):
    attach(incident.id, "A1")
    url = f"/incidents/{incident.id}/accounts/A1/recovery"
    schema = api.put(url, json={"categories": [
        {"category": "contacts", "state": "recovered"}, {"category": "photos", "state": "gone"},
        {"category": "notes", "state": "lost", "items_total": -1, "mood": "sad"}]})
    assert schema.status_code == 422
    assert schema.get_json()["error"]["fields"] == {
        "categories[1].state": "Choose one of: unknown, at_risk, recovering, recovered, partially_recovered, lost.",
        "categories[2].items_total": "Must be at least 0.", "categories[2].mood": "Unknown field."}
    rules = api.put(url, json={"categories": [
        {"category": "contacts", "state": "recovered"}, {"category": "notes", "state": "lost"},
        {"category": "photos", "state": "recovered", "items_total": 3, "items_recovered": 5}]})
    assert rules.status_code == 422
    fields = rules.get_json()["error"]["fields"]
    assert set(fields) == {"categories[1].category", "categories[2].items_recovered"}
    assert "not a category of this incident" in fields["categories[1].category"]
    twice = api.put(url, json={"categories": [{"category": "contacts", "state": "lost"},
                                              {"category": "contacts", "state": "recovered"}]})
    assert "already appear" in twice.get_json()["error"]["fields"]["categories[1].category"]
    assert api.put(url, json={"categories": []}).get_json()["error"]["fields"] == {"categories": "Give at least 1."}
    assert _count(RecoveryEvent) == 0
    assert api.put(f"/incidents/{incident.id}/accounts/NOPE/recovery", json={"categories": [
        {"category": "contacts", "state": "lost"}]}).status_code == 404
    assert api.put(f"/incidents/999/accounts/A1/recovery", json={"categories": [
        {"category": "contacts", "state": "lost"}]}).status_code == 404


def test_an_account_shows_contact_details_recovery_and_its_history(api, incident):
    attach(incident.id, "A1", "B/2")
    _recover(incident.id, "A1,contacts,at_risk,,,\n")
    api.put(f"/incidents/{incident.id}/accounts/A1/recovery",
            json={"categories": [{"category": "contacts", "state": "recovered", "note": "Restored"}]})
    account = api.get(f"/incidents/{incident.id}/accounts/A1").get_json()
    assert (account["account_number"], account["name"], account["phone"], account["email"], account["locale"]) == (
        "A1", "Name A1", "+12065550000", "a1@example.com", "en")
    assert account["overall_state"] == "unknown" and account["sms_opt_out"] is False
    assert [(h["category"], h["old_state"], h["new_state"]) for h in account["history"]] == [
        ("contacts", "at_risk", "recovered"), ("contacts", None, "at_risk")]
    assert account["history"][1]["import_id"] is not None and account["history"][0]["import_id"] is None
    # account numbers may contain a slash
    assert api.get(f"/incidents/{incident.id}/accounts/B/2").get_json()["account_number"] == "B/2"
    assert api.get(f"/incidents/{incident.id}/accounts/ZZ").status_code == 404


# ---- summary, list, export, categories -----------------------------------------------------------------

def test_the_summary_has_the_same_counts_as_the_console_dashboard(api, client, incident):
    attach(incident.id, "A1", "A2", "A3")
    _recover(incident.id, "A1,contacts,recovered,5,5,\nA1,calendar,recovered,,,\nA1,photos,recovered,,,\n"
                          "A2,contacts,at_risk,,,\nA3,photos,lost,4,0,\n")
    summary = api.get(f"/incidents/{incident.id}/recovery-summary").get_json()
    assert summary == service.recovery_summary(db.session, incident_id=incident.id)
    assert summary["affected_accounts"] == 3
    assert {k: v for k, v in summary["states"].items() if v} == {"recovered": 1, "at_risk": 1, "unknown": 1}
    photos = next(c for c in summary["categories"] if c["key"] == "photos")
    assert (photos["states"]["recovered"], photos["states"]["lost"], photos["items_total"]) == (1, 1, 4)
    # the console shows the same numbers
    from tests.conftest import sign_in
    sign_in(client, make_operator("operator"))
    page = client.get(f"/ops/incidents/{incident.id}/recovery").get_data(as_text=True)
    assert "<strong>3</strong> affected accounts" in page and "<strong>1</strong> at risk" in page
    assert api.get("/incidents/999/recovery-summary").status_code == 404


def test_the_list_pages_and_filters_affected_accounts(api, incident):
    attach(incident.id, *[f"A{i}" for i in range(1, 8)])
    _recover(incident.id, "A2,contacts,lost,,,\nA3,contacts,recovered,,,\nA3,calendar,recovered,,,\n"
                          "A3,photos,recovered,,,\n")
    base = f"/incidents/{incident.id}/affected-accounts"
    page = api.get(f"{base}?limit=3&offset=2").get_json()
    assert (page["total"], page["limit"], page["offset"]) == (7, 3, 2)
    assert [a["account_number"] for a in page["affected_accounts"]] == ["A3", "A4", "A5"]
    a3 = page["affected_accounts"][0]
    assert a3["overall_state"] == "recovered" and a3["categories"] == {
        "contacts": "recovered", "calendar": "recovered", "photos": "recovered"}
    assert [a["account_number"] for a in api.get(f"{base}?state=recovered").get_json()["affected_accounts"]] == ["A3"]
    lost = api.get(f"{base}?category=contacts&category_state=lost").get_json()
    assert [a["account_number"] for a in lost["affected_accounts"]] == ["A2"]
    assert api.get(f"{base}?q=a5@example.com").get_json()["affected_accounts"][0]["account_number"] == "A5"
    bad = api.get(f"{base}?limit=0&offset=-1&state=gone&category=music")
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["fields"]) == {"limit", "offset", "state", "category", "category_state"}
    assert api.get("/incidents/999/affected-accounts").status_code == 404


def test_the_export_streams_every_account_with_its_states_as_csv(api, incident):
    attach(incident.id, "A1", "A2")
    _recover(incident.id, "A1,contacts,partially_recovered,10,7,\n")
    response = api.get(f"/incidents/{incident.id}/affected-accounts.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="incident-{incident.id}-accounts.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["account_number"] for r in rows] == ["A1", "A2"]
    assert (rows[0]["contacts_state"], rows[0]["contacts_items_total"], rows[0]["contacts_items_recovered"]) == (
        "partially_recovered", "10", "7")
    assert (rows[1]["overall_state"], rows[1]["photos_state"], rows[1]["email"]) == ("unknown", "unknown", "a2@example.com")
    negotiated = api.get(f"/incidents/{incident.id}/affected-accounts", headers={"Accept": "text/csv"})
    assert negotiated.mimetype == "text/csv" and negotiated.get_data() == response.get_data()
    assert _count(AuditEntry, AuditEntry.action == "accounts.export") == 2
    assert api.get("/incidents/999/affected-accounts.csv").status_code == 404


def test_categories_are_read_and_chosen_and_in_use_ones_cannot_be_removed(api, incident):
    url = f"/incidents/{incident.id}/recovery-categories"
    assert [c["key"] for c in api.get(url).get_json()["categories"]] == ["contacts", "calendar", "photos"]
    response = api.put(url, json={"categories": ["photos", "Contacts", "calendar", "notes"]})
    assert response.status_code == 200
    assert [(c["key"], c["label"]) for c in response.get_json()["categories"]] == [
        ("photos", "Photos"), ("contacts", "Contacts"), ("calendar", "Calendar"), ("notes", "Notes")]
    attach(incident.id, "A1")
    _recover(incident.id, "A1,notes,lost,,,\n")
    refused = api.put(url, json={"categories": ["contacts"]})
    assert refused.status_code == 422 and "Cannot remove" in refused.get_json()["error"]["fields"]["categories"]
    assert api.put(url, json={"categories": "contacts"}).get_json()["error"]["fields"] == {"categories": "Must be a list."}
    assert _count(AuditEntry, AuditEntry.action == "recovery.categories") == 2  # the factory's and ours
    assert api.put("/incidents/999/recovery-categories", json={"categories": ["x"]}).status_code == 404


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
    assert _count(ImportJob) == 1 and _count(RecoveryEvent) == 0


def test_every_accounts_operation_is_documented_and_answers_as_documented(app, api, incident):
    ours = {op for op in api_operations(app) if "account" in op[0] or "recovery" in op[0] or "imports" in op[0]}
    assert len(ours) == 10
    job = _post_csv(api, incident.id, GOOD + BAD_LINE, "?skip_invalid=1").get_json()
    api.get(f"/imports/{job['id']}")
    api.get(f"/imports/{job['id']}/errors.csv")
    api.get(f"/incidents/{incident.id}/affected-accounts")
    api.get(f"/incidents/{incident.id}/affected-accounts.csv")
    api.get(f"/incidents/{incident.id}/accounts/A1")
    api.put(f"/incidents/{incident.id}/accounts/A1/recovery", json={"categories": [{"category": "contacts", "state": "lost"}]})
    api.get(f"/incidents/{incident.id}/recovery-summary")
    api.get(f"/incidents/{incident.id}/recovery-categories")
    api.put(f"/incidents/{incident.id}/recovery-categories", json={"categories": ["contacts", "calendar", "photos"]})
    assert api.seen == ours
    doc = api.doc["paths"][f"/incidents/{{incident_id}}/affected-accounts"]["post"]
    assert set(doc["requestBody"]["content"]) == {"application/json", "text/csv"}
    assert "CLI or the console upload" in doc["description"] and "idempotent" in doc["description"]


def test_a_streamed_body_that_breaks_off_over_the_limit_marks_the_job_failed(app, api, incident):
    """A chunked body (no Content-Length) over the limit is cut mid-import: 413, and the job is not left
    'validating' for ten minutes."""
    app.config["MAX_CONTENT_LENGTH"] = 200
    body = io.BytesIO((GOOD + "".join(f"C{i},x,,,en\n" for i in range(50))).encode())
    response = api.post(f"/incidents/{incident.id}/affected-accounts", input_stream=body, content_type="text/csv",
                        headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413
    job = db.session.scalar(sa.select(ImportJob))
    db.session.refresh(job)
    assert job.status.value == "failed" and "could not be read" in job.message
    assert _count(Account) == 0
