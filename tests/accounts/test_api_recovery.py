"""The ops API for one account's recovery, the summary, the list, the CSV export and the categories,
end to end; every answer is checked against the OpenAPI document (CsvAwareClient)."""
import csv
import io

import sqlalchemy as sa

from accounts import service
from accounts.models import RecoveryEvent
from core.db import db
from ops.models import AuditEntry
from tests.accounts.factories import attach, count_rows, recover
from tests.conftest import make_operator, sign_in
from tests.ops.api_client import PREFIX

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
    assert count_rows(RecoveryEvent) == 2
    assert count_rows(AuditEntry, AuditEntry.action == "recovery.update") == 1
    done = api.put(f"/incidents/{incident.id}/accounts/A1/recovery",
                   json={"categories": [{"category": "calendar", "state": "recovered"},
                                        {"category": "photos", "state": "recovered"}]}).get_json()
    assert done["overall_state"] == "recovered"
    # An overwrite keeps what it replaced: the audit entry has the states before and after.
    last = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "recovery.update")
                              .order_by(AuditEntry.id.desc())).first()
    assert last.before == {"account_number": "A1", "overall_state": "unknown", "items": [
        {"category": "calendar", "state": "unknown", "items_total": None, "items_recovered": None, "note": ""},
        {"category": "photos", "state": "lost", "items_total": None, "items_recovered": None,
         "note": "Nothing left on the phone."}]}
    assert last.after["overall_state"] == "recovered" and [i["state"] for i in last.after["items"]] == [
        "recovered", "recovered"]
    assert last.entity_label == "A1"


def test_putting_the_same_recovery_twice_records_no_new_history(api, incident):
    attach(incident.id, "A1")
    body = {"categories": [{"category": "contacts", "state": "recovering", "items_total": 10, "items_recovered": 3}]}
    first = api.put(f"/incidents/{incident.id}/accounts/A1/recovery", json=body)
    again = api.put(f"/incidents/{incident.id}/accounts/A1/recovery", json=body)
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json()
    assert count_rows(RecoveryEvent) == 1


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
    assert count_rows(RecoveryEvent) == 0
    assert api.put(f"/incidents/{incident.id}/accounts/NOPE/recovery", json={"categories": [
        {"category": "contacts", "state": "lost"}]}).status_code == 404
    assert api.put(f"/incidents/999/accounts/A1/recovery", json={"categories": [
        {"category": "contacts", "state": "lost"}]}).status_code == 404


def test_an_account_shows_contact_details_recovery_and_its_history(api, incident):
    attach(incident.id, "A1", "B/2")
    recover(incident.id, "A1,contacts,at_risk,,,\n")
    api.put(f"/incidents/{incident.id}/accounts/A1/recovery",
            json={"categories": [{"category": "contacts", "state": "recovered", "note": "Restored"}]})
    account = api.get(f"/incidents/{incident.id}/accounts/A1").get_json()
    assert (account["account_number"], account["name"], account["phone"], account["email"], account["locale"]) == (
        "A1", "Name A1", "+12065550000", "a1@example.com", "en")
    assert account["overall_state"] == "unknown" and account["sms_opt_out"] is False
    assert [(h["category"], h["old_state"], h["new_state"]) for h in account["history"]] == [
        ("contacts", "at_risk", "recovered"), ("contacts", None, "at_risk")]
    assert account["history"][1]["import_id"] is not None and account["history"][0]["import_id"] is None
    # account numbers may contain a slash: percent-encoded as the document says, or even as it is
    assert api.get(f"/incidents/{incident.id}/accounts/B%2F2").get_json()["account_number"] == "B/2"
    raw = api.client.get(f"{PREFIX}/incidents/{incident.id}/accounts/B/2",
                         headers={"Authorization": f"Bearer {api.secret}"})
    assert raw.get_json()["account_number"] == "B/2"
    assert api.get(f"/incidents/{incident.id}/accounts/ZZ").status_code == 404


# ---- summary, list, export, categories -----------------------------------------------------------------

def test_the_summary_has_the_same_counts_as_the_console_dashboard(api, client, incident):
    attach(incident.id, "A1", "A2", "A3")
    recover(incident.id, "A1,contacts,recovered,5,5,\nA1,calendar,recovered,,,\nA1,photos,recovered,,,\n"
                          "A2,contacts,at_risk,,,\nA3,photos,lost,4,0,\n")
    summary = api.get(f"/incidents/{incident.id}/recovery-summary").get_json()
    assert summary == service.recovery_summary(db.session, incident_id=incident.id)
    assert summary["affected_accounts"] == 3
    assert {k: v for k, v in summary["states"].items() if v} == {"recovered": 1, "at_risk": 1, "unknown": 1}
    photos = next(c for c in summary["categories"] if c["key"] == "photos")
    assert (photos["states"]["recovered"], photos["states"]["lost"], photos["items_total"]) == (1, 1, 4)
    # the console shows the same numbers
    sign_in(client, make_operator("operator"))
    page = client.get(f"/ops/incidents/{incident.id}/recovery").get_data(as_text=True)
    assert "<strong>3</strong> affected accounts" in page and "<strong>1</strong> at risk" in page
    assert api.get("/incidents/999/recovery-summary").status_code == 404


def test_the_list_pages_and_filters_affected_accounts(api, incident):
    attach(incident.id, *[f"A{i}" for i in range(1, 8)])
    recover(incident.id, "A2,contacts,lost,,,\nA3,contacts,recovered,,,\nA3,calendar,recovered,,,\n"
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
    recover(incident.id, "A1,contacts,partially_recovered,10,7,\n")
    response = api.get(f"/incidents/{incident.id}/affected-accounts.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="incident-{incident.id}-accounts.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["account_number"] for r in rows] == ["A1", "A2"]
    assert (rows[0]["contacts_state"], rows[0]["contacts_items_total"], rows[0]["contacts_items_recovered"]) == (
        "partially_recovered", "10", "7")
    assert (rows[1]["overall_state"], rows[1]["photos_state"], rows[1]["email"]) == (
        "unknown", "unknown", "a2@example.com")
    negotiated = api.get(f"/incidents/{incident.id}/affected-accounts", headers={"Accept": "text/csv"})
    assert negotiated.mimetype == "text/csv" and negotiated.get_data() == response.get_data()
    assert count_rows(AuditEntry, AuditEntry.action == "accounts.export") == 2
    assert api.get("/incidents/999/affected-accounts.csv").status_code == 404


def test_categories_are_read_and_chosen_and_in_use_ones_cannot_be_removed(api, incident):
    url = f"/incidents/{incident.id}/recovery-categories"
    assert [c["key"] for c in api.get(url).get_json()["categories"]] == ["contacts", "calendar", "photos"]
    response = api.put(url, json={"categories": ["photos", "Contacts", "calendar", "notes"]})
    assert response.status_code == 200
    assert [(c["key"], c["label"]) for c in response.get_json()["categories"]] == [
        ("photos", "Photos"), ("contacts", "Contacts"), ("calendar", "Calendar"), ("notes", "Notes")]
    attach(incident.id, "A1")
    recover(incident.id, "A1,notes,lost,,,\n")
    refused = api.put(url, json={"categories": ["contacts"]})
    assert refused.status_code == 422 and "Cannot remove" in refused.get_json()["error"]["fields"]["categories"]
    not_a_list = api.put(url, json={"categories": "contacts"})
    assert not_a_list.get_json()["error"]["fields"] == {"categories": "Must be a list."}
    assert count_rows(AuditEntry, AuditEntry.action == "recovery.categories") == 2  # the factory's and ours
    assert api.put("/incidents/999/recovery-categories", json={"categories": ["x"]}).status_code == 404
