"""Export everything (ops.exports): every dataset by API (JSON pages with a cursor, one CSV file) and CLI (CSV,
JSON Lines); readings of personal data audited; admins only; no secret leaves."""
import csv
import io
import json

import pytest
import sqlalchemy as sa

from core.db import db
from notifications import worker
from ops import exports
from ops import service as ops_service
from ops.audit import Actor
from ops.models import AuditEntry
from tests.accounts.factories import attach, make_incident, recover
from tests.conftest import make_operator
from tests.ops.api_client import CsvAwareClient

EVERY = {"incidents", "incident_updates", "component_status_history", "affected_accounts", "recovery_events",
         "account_changes", "import_jobs", "messages", "message_events", "opt_outs", "inbound_sms",
         "offer_programs", "offer_grants", "operators", "audit_log", "webhook_endpoints", "webhook_deliveries",
         "webhook_attempts", "subscriptions"}


@pytest.fixture
def admin(client):
    operator = make_operator("admin", email="root@example.com")
    _token, secret = ops_service.create_token(db.session, actor=Actor.cli("test"), operator_id=operator.id)
    db.session.commit()
    return CsvAwareClient(client, secret)


def _an_outage(api):
    incident = make_incident()
    attach(incident.id, "A1", "A2", "A3")
    recover(incident.id, "A1,photos,lost,,,gone\nA2,photos,recovered,10,10,\n")
    assert api.post(f"/incidents/{incident.id}/broadcasts",
                    json={"message": "Hello {{ name }}", "channels": ["sms"]}).status_code == 201
    worker.run_once()
    return incident


def test_every_dataset_is_listed_and_reads_as_json_pages_and_as_csv(app, api, admin):
    _an_outage(api)
    listed = admin.get("/exports").get_json()["datasets"]
    assert {d["name"] for d in listed} >= EVERY
    assert api.get("/exports").status_code == 403  # an operator's token: admins only
    for d in listed:
        page = admin.get(f"/exports/{d['name']}?limit=1000")
        assert page.status_code == 200, (d["name"], page.get_json())
        rows = page.get_json()["rows"]
        assert all(set(r) == set(d["columns"]) for r in rows), d["name"]  # (JSON objects: keys sorted)
        text = admin.get(f"/exports/{d['name']}.csv").get_data(as_text=True)
        parsed = list(csv.DictReader(io.StringIO(text)))
        assert list(parsed[0]) == d["columns"] if parsed else text.strip() == ",".join(d["columns"])
        # (the audit log grows by each reading of a personal dataset in between)
        assert len(parsed) == len(rows) or d["name"] == "audit_log" and len(parsed) > len(rows), d["name"]
    affected = admin.get("/exports/affected_accounts").get_json()["rows"]
    assert {r["account_number"] for r in affected} == {"A1", "A2", "A3"}
    assert {"time_zone", "sms_opt_out", "email_opt_out", "added_at", "overall_state"} <= set(affected[0])
    assert all(r["added_at"].endswith("Z") for r in affected)
    assert not {"secret", "previous_secret"} & {c for d in listed for c in d["columns"]}  # no signing secret leaves
    operators = admin.get("/exports/operators").get_json()["rows"]
    assert "password_hash" not in operators[0] and {o["email"] for o in operators} >= {"root@example.com"}
    messages = [m for m in admin.get("/exports/messages").get_json()["rows"] if m["broadcast_id"]]
    assert len(messages) == 3 and all("/m/[link #" in m["body"] for m in messages)  # (recovery notices wait)
    events = admin.get("/exports/message_events").get_json()["rows"]
    assert {e["status"] for e in events} == {"sent"} and len(events) == 3


def test_pages_follow_the_cursor_oldest_first_and_readings_of_personal_data_are_audited(app, api, admin):
    _an_outage(api)
    first = admin.get("/exports/affected_accounts?limit=2").get_json()
    assert [r["account_number"] for r in first["rows"]] == ["A1", "A2"] and first["next_cursor"]
    rest = admin.get(f"/exports/affected_accounts?limit=2&cursor={first['next_cursor']}").get_json()
    assert [r["account_number"] for r in rest["rows"]] == ["A3"] and rest["next_cursor"] is None
    bad = admin.get("/exports/affected_accounts?cursor=ZDE")  # a newest-first cursor here is refused
    assert bad.status_code == 422 and "cursor" in bad.get_json()["error"]["fields"]
    assert admin.get("/exports/nothing").status_code == 404
    admin.get("/exports/incidents")  # not personal: not audited
    reads = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "export.read")).all()
    assert [(r.entity_id, r.after["via"]) for r in reads] == [("affected_accounts", "api")]


def test_the_cli_exports_csv_and_json_lines_and_lists_the_datasets(app, api, runner, tmp_path):
    _an_outage(api)
    listing = runner.invoke(args=["export"])
    assert listing.exit_code == 0 and all(name in listing.output for name in EVERY)
    target = tmp_path / "messages.jsonl"
    result = runner.invoke(args=["export", "messages", "--format", "jsonl", "-o", str(target)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert len([m for m in lines if m["broadcast_id"]]) == 3 and list(lines[0]) == exports.columns(exports.get("messages"))
    result = runner.invoke(args=["export", "recovery_events"])
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert {(r["new_state"], r["note"]) for r in rows} == {("lost", "gone"), ("recovered", "")}
    assert runner.invoke(args=["export", "nope"]).exit_code == 1
    reads = db.session.scalars(sa.select(AuditEntry.after).where(AuditEntry.action == "export.read")).all()
    assert [r["via"] for r in reads] == ["cli jsonl", "cli csv"]
