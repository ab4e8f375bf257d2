"""Console pages for affected accounts: dashboard, categories, list and filters, account page, edits, export, search."""
import csv
import io

import pytest
import sqlalchemy as sa

from accounts import service
from accounts.models import RecoveryEvent, RecoveryStatus
from core.db import db
from ops.models import AuditEntry
from tests.accounts.factories import RECOVERY_HEADER, attach, make_incident, run_import
from tests.conftest import csrf_from, make_operator, post_form, sign_in


@pytest.fixture(autouse=True)
def _private_instance_folder(app, tmp_path):
    """Uploads and error CSVs go to this test's own folder, never the project's instance/imports/."""
    app.instance_path = str(tmp_path)


def recovery(incident_id: int, rows: str):
    job = run_import(incident_id, RECOVERY_HEADER + rows, kind="recovery")
    assert job.status.value == "done", job.errors
    return job


def test_the_dashboard_shows_counts_by_state_and_category_a_bar_and_a_chart(signed_in):
    client, _ = signed_in
    incident = make_incident()
    attach(incident.id, "A1", "A2", "A3")
    recovery(incident.id, "A1,contacts,recovered,5,5,\nA1,calendar,recovered,,,\nA1,photos,recovered,,,\n"
                          "A2,contacts,at_risk,,,\n")
    response = client.get(f"/ops/incidents/{incident.id}/recovery")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<strong>3</strong> affected accounts" in page
    assert "<strong>1</strong> recovered" in page and "<strong>1</strong> at risk" in page
    assert "<strong>1</strong> unknown" in page
    assert '<svg class="chart chart-bar" role="img"' in page and '<svg class="chart chart-progress chart-wide"' in page
    assert "<title id=\"progress-title\">" in page and "<desc id=\"progress-desc\">" in page
    assert 'id="progress-table"' in page
    # Category x state table: contacts has 1 recovered, 1 at risk and 1 unknown (no row yet).
    assert "category=contacts&amp;category_state=at_risk\">1</a>" in page
    assert "5 / 5" in page
    assert f"/ops/incidents/{incident.id}/accounts.csv" in page


def test_operators_choose_categories_and_errors_show_beside_the_field(signed_in):
    client, _ = signed_in
    incident = make_incident(categories=())
    url = f"/ops/incidents/{incident.id}/recovery"
    response = post_form(client, url, {"categories": "contacts, Photos notes"},
                         action=f"/ops/incidents/{incident.id}/recovery/categories")
    assert response.status_code == 303
    assert [c.key for c in service.list_categories(db.session, incident_id=incident.id)] == [
        "contacts", "photos", "notes"]
    response = post_form(client, url, {"categories": "contacts 9lives"},
                         action=f"/ops/incidents/{incident.id}/recovery/categories")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "use lower-case letters" in page and 'value="contacts 9lives"' in page


def test_the_list_filters_by_state_category_state_and_search(signed_in):
    client, _ = signed_in
    incident = make_incident()
    attach(incident.id, "A1", "A2", "A3")
    recovery(incident.id, "A1,contacts,recovered,,,\nA1,calendar,recovered,,,\nA1,photos,recovered,,,\n"
                          "A2,photos,lost,,,\n")
    base = f"/ops/incidents/{incident.id}/accounts"

    def listed(query: str) -> set[str]:
        response = client.get(base + query)
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        return {n for n in ("A1", "A2", "A3") if f"{base}/{n}\"" in page}

    assert listed("") == {"A1", "A2", "A3"}
    assert listed("?state=recovered") == {"A1"}
    assert listed("?state=unknown") == {"A2", "A3"}
    assert listed("?category=photos&category_state=lost") == {"A2"}
    assert listed("?category=photos&category_state=unknown") == {"A3"}
    assert listed("?q=a3@example.com") == {"A3"}
    assert listed("?q=(206) 555-0001") == {"A2"}  # any phone format
    assert client.get(base + "?state=bogus").status_code == 400


def test_the_list_is_paginated_fifty_to_a_page(signed_in):
    client, _ = signed_in
    incident = make_incident()
    attach(incident.id, *[f"N{i:03d}" for i in range(60)])
    base = f"/ops/incidents/{incident.id}/accounts"
    first = client.get(base).get_data(as_text=True)
    assert "Page 1 of 2" in first and f"{base}/N049\"" in first and f"{base}/N050\"" not in first
    second = client.get(base + "?page=2").get_data(as_text=True)
    assert f"{base}/N050\"" in second and f"{base}/N059\"" in second and f"{base}/N000\"" not in second
    assert client.get(base + "?page=99999999999999").status_code == 200


def test_the_account_page_shows_details_rule_statuses_and_history(signed_in):
    client, _ = signed_in
    incident = make_incident()
    attach(incident.id, "A1")
    job = recovery(incident.id, "A1,contacts,recovering,100,40,Restoring\n")
    recovery(incident.id, "A1,contacts,recovered,100,100,All back\n")
    page = client.get(f"/ops/incidents/{incident.id}/accounts/A1").get_data(as_text=True)
    assert "a1@example.com" in page and "+12065550000" in page
    assert "every category recovered" in page  # the rule, explained
    history = page.split('id="history"')[1]
    assert history.index("All back") < history.index("Restoring")  # newest first
    assert "Recovering</span> → <span class=\"badge recovery-recovered\">Recovered" in history
    assert "100 / 100" in history and "40 / 100" in history
    assert f"/ops/imports/{job.id}" in history
    assert client.get(f"/ops/incidents/{incident.id}/accounts/NOPE").status_code == 404


def test_a_single_edit_saves_only_changed_categories_and_records_history(signed_in):
    client, operator = signed_in
    incident = make_incident()
    attach(incident.id, "A1")
    url = f"/ops/incidents/{incident.id}/accounts/A1"
    response = post_form(client, url, {
        "contacts-state": "recovered", "contacts-items_total": "12", "contacts-items_recovered": "12",
        "contacts-note": "From backup", "calendar-state": "unknown", "photos-state": "unknown"})
    assert response.status_code == 303
    statuses = db.session.scalars(sa.select(RecoveryStatus)).all()
    assert [(s.state.value, s.items_total, s.note) for s in statuses] == [("recovered", 12, "From backup")]
    event = db.session.scalar(sa.select(RecoveryEvent))
    assert event.actor == f"{operator.email} (web)" and event.old_state is None
    page = client.get(url).get_data(as_text=True)
    assert "Recovery status saved." in page and "From backup" in page


def test_a_single_edit_with_a_bad_value_keeps_what_was_typed_and_shows_the_error(signed_in):
    client, _ = signed_in
    incident = make_incident()
    attach(incident.id, "A1")
    url = f"/ops/incidents/{incident.id}/accounts/A1"
    response = post_form(client, url, {
        "contacts-state": "recovering", "contacts-items_total": "ten", "contacts-items_recovered": "3",
        "contacts-note": "Typed note", "calendar-state": "lost", "calendar-items_total": "5",
        "calendar-items_recovered": "9", "photos-state": "unknown"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "&#39;ten&#39; is not a whole number" in page
    assert 'id="contacts-items_total-error"' in page
    assert "9 recovered is more than the 5 in total." in page and 'id="calendar-items_recovered-error"' in page
    assert 'value="ten"' in page and 'value="Typed note"' in page
    assert '<option selected value="lost">' in page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryEvent)) == 0


def test_export_streams_every_affected_account_with_its_states(signed_in):
    client, _ = signed_in
    incident = make_incident()
    attach(incident.id, "A1", "A2")
    recovery(incident.id, "A1,contacts,recovered,7,7,\n")
    response = client.get(f"/ops/incidents/{incident.id}/accounts.csv")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="incident-{incident.id}-accounts.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["account_number"] for r in rows] == ["A1", "A2"]
    assert (rows[0]["contacts_state"], rows[0]["contacts_items_total"], rows[0]["overall_state"]) == (
        "recovered", "7", "unknown")
    assert rows[1]["photos_state"] == "unknown"
    assert db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "accounts.export")) is not None


def test_search_finds_an_account_by_number_phone_or_email_with_its_incidents(signed_in):
    client, _ = signed_in
    first, second = make_incident("Storage failure"), make_incident("Calendar sync outage")
    attach(first.id, "A1", "A2")
    attach(second.id, "A1")
    for q in ("A1", "+1 206 555 0000", "A1@EXAMPLE.COM"):
        page = client.get("/ops/accounts", query_string={"q": q}).get_data(as_text=True)
        assert "1 account found" in page, q
        assert f"/ops/incidents/{first.id}/accounts/A1" in page and f"/ops/incidents/{second.id}/accounts/A1" in page
    page = client.get("/ops/accounts?q=nobody@example.com").get_data(as_text=True)
    assert "0 accounts found" in page
    menu = client.get("/ops/accounts").get_data(as_text=True)
    assert f"/ops/incidents/{first.id}/recovery" in menu and 'href="/ops/accounts">Accounts</a>' in menu


def test_viewers_read_everything_but_every_write_is_refused(client):
    incident = make_incident()
    attach(incident.id, "A1")
    sign_in(client, make_operator("viewer"))
    for url in (f"/ops/incidents/{incident.id}/recovery", f"/ops/incidents/{incident.id}/accounts",
                f"/ops/incidents/{incident.id}/accounts/A1", f"/ops/incidents/{incident.id}/accounts.csv",
                "/ops/accounts?q=A1"):
        assert client.get(url).status_code == 200, url
    page = client.get(f"/ops/incidents/{incident.id}/accounts/A1").get_data(as_text=True)
    assert "Save recovery status" not in page
    token = csrf_from(page)
    assert client.post(f"/ops/incidents/{incident.id}/accounts/A1",
                       data={"csrf_token": token, "contacts-state": "lost"}).status_code == 403
    assert client.post(f"/ops/incidents/{incident.id}/recovery/categories",
                       data={"csrf_token": token, "categories": "contacts"}).status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryEvent)) == 0


def test_anonymous_visitors_are_redirected_to_sign_in(client):
    incident = make_incident()
    for url in (f"/ops/incidents/{incident.id}/recovery", f"/ops/incidents/{incident.id}/accounts",
                f"/ops/incidents/{incident.id}/accounts.csv", "/ops/accounts"):
        response = client.get(url)
        assert response.status_code == 302 and "/ops/sign-in" in response.headers["Location"], url


def test_posts_without_a_csrf_token_are_refused(signed_in):
    client, _ = signed_in
    incident = make_incident()
    attach(incident.id, "A1")
    response = client.post(f"/ops/incidents/{incident.id}/accounts/A1", data={"contacts-state": "lost"})
    assert response.status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryEvent)) == 0
