"""The offer routes of the ops API (define, edit, close, issue, export, fulfil, revoke), each answer checked
against the OpenAPI document."""
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core.db import db, utcnow
from offers import grants
from offers.models import OfferGrant
from offers.service import display_code
from ops import service as ops_service
from ops.audit import Actor
from ops.models import AuditEntry
from tests.conftest import make_operator
from tests.offers.helpers import incident_with
from tests.ops.api_client import CsvAwareClient
@pytest.fixture
def incident(app):
    return incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "recovered"},
                          "A3": {"photos": "lost", "contacts": "recovered"}})


def body(**extra):
    until = (utcnow() + timedelta(days=30)).isoformat().replace("+00:00", "Z")
    return {"name": "Lost data: $100 gift card", "description": "Our apologies.", "kind": "gift_card",
            "value": 100, "currency": "USD", "eligible_states": ["lost"], "valid_until": until, **extra}


def test_an_operator_defines_issues_and_follows_a_program(api, incident):
    response = api.post(f"/incidents/{incident.id}/offer-programs", json=body())
    assert response.status_code == 201, response.get_json()
    program = response.get_json()
    assert program["id"] and response.headers["Location"].endswith(f"/offer-programs/{program['id']}")
    assert program["value"] == "100.00" and program["value_minor"] == 10000
    assert program["preview"] == {"eligible": 2, "new": 2, "would_issue": 2, "over_budget": 0,
                                  "liability_minor": 20000}
    issued = api.post(f"/offer-programs/{program['id']}/issue")
    assert issued.status_code == 200 and issued.get_json() == {"issued": 2, "not_issued": 0}
    assert api.post(f"/offer-programs/{program['id']}/issue").get_json() == {"issued": 0, "not_issued": 0}
    got = api.get(f"/offer-programs/{program['id']}").get_json()
    assert got["counts"]["offered"] == 2 and got["announced_at"] is None
    assert got["liability_minor"] == {"offered": 20000, "accepted": 0, "fulfilled": 0}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action.like("offer.program.%"))) == 2
    assert api.post(f"/offer-programs/{program['id']}/announce").status_code == 200
    assert api.get(f"/offer-programs/{program['id']}").get_json()["announced_at"] is not None


def test_bad_programs_get_422_with_fields_and_unknown_ids_404(api, incident):
    response = api.post(f"/incidents/{incident.id}/offer-programs",
                        json=body(kind="pony", valid_until="tomorrow", eligible_states=[]))
    assert response.status_code == 422
    assert {"kind", "eligible_states"} <= set(response.get_json()["error"]["fields"])
    response = api.post(f"/incidents/{incident.id}/offer-programs", json=body(valid_until="2026-01-01T00:00:00"))
    assert response.status_code == 422 and "valid_until" in response.get_json()["error"]["fields"]
    response = api.post(f"/incidents/{incident.id}/offer-programs", json=body(value="ten"))
    assert response.status_code == 422 and "value" in response.get_json()["error"]["fields"]
    assert api.post("/incidents/999/offer-programs", json=body()).status_code == 404
    assert api.get("/offer-programs/999").status_code == 404
    assert api.post("/offer-programs/999/issue").status_code == 404
    assert api.post("/offer-grants/999/revoke", json={"reason": "x"}).status_code == 404


def test_grants_are_revoked_and_fulfilled_through_the_api(api, incident):
    program = api.post(f"/incidents/{incident.id}/offer-programs", json=body()).get_json()
    api.post(f"/offer-programs/{program['id']}/issue")
    first, second = db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.id)).all()
    revoked = api.post(f"/offer-grants/{first.id}/revoke", json={"reason": "Fraudulent claim"})
    assert revoked.status_code == 200 and revoked.get_json()["state"] == "revoked"
    assert api.post(f"/offer-grants/{first.id}/revoke", json={"reason": "again"}).status_code == 409
    assert api.post(f"/offer-grants/{first.id}/revoke", json={}).status_code == 422
    grants.accept(db.session, second, via="web")
    db.session.commit()
    done = api.post(f"/offer-programs/{program['id']}/fulfil", json={"codes": [second.code, first.code]})
    assert done.status_code == 200
    assert done.get_json()["fulfilled"] == 1
    assert list(done.get_json()["not_fulfilled"].values()) == ["revoked"]


# ---- edit, close and the accepted CSV ---------------------------------------------------------------

def token_for(role: str) -> str:
    operator = make_operator(role, email=f"{role}-token@example.com")
    _token, secret = ops_service.create_token(db.session, actor=Actor.cli("test"), operator_id=operator.id)
    db.session.commit()
    return secret


def iso_z(dt) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def test_an_operator_edits_a_program_within_the_rules(api, incident):
    program = api.post(f"/incidents/{incident.id}/offer-programs", json=body(remind_days_before=None)).get_json()
    assert program["remind_days_before"] is None and program["status"] == "active" and program["closed_at"] is None
    url = f"/offer-programs/{program['id']}"
    changed = api.patch(url, json={"value": "50", "eligible_states": ["lost", "recovered"], "min_impact": None,
                                   "remind_days_before": 5})
    assert changed.status_code == 200, changed.get_json()
    got = changed.get_json()
    assert got["value_minor"] == 5000 and got["remind_days_before"] == 5 and got["updated_at"]
    assert got["preview"]["eligible"] == 3
    assert api.post(f"{url}/issue").get_json()["issued"] == 3
    refused = api.patch(url, json={"kind": "account_credit", "valid_until": "2020-01-01T00:00:00Z",
                                   "budget_cap": 100})
    assert refused.status_code == 422
    fields = refused.get_json()["error"]["fields"]
    assert set(fields) == {"kind", "valid_until", "budget_cap"}
    assert "already carry these terms" in fields["kind"] and "150.00 USD already granted" in fields["budget_cap"]
    assert api.get(url).get_json()["value_minor"] == 5000
    shorter = iso_z(utcnow() + timedelta(days=5))
    assert "subscribers were told" in api.patch(url, json={"valid_until": shorter}).get_json()["error"]["fields"][
        "valid_until"]
    later = utcnow() + timedelta(days=60)
    extended = api.patch(url, json={"valid_until": iso_z(later), "budget_cap": "150", "name": "Renamed"})
    assert extended.status_code == 200 and extended.get_json()["budget_cap_minor"] == 15000
    assert extended.get_json()["valid_until"].startswith(later.strftime("%Y-%m-%dT%H:%M"))
    for bad in ({"remind_days_before": 91}, {"colour": "red"}, {"valid_until": "soon"}, {"name": ""},
                {"valid_until": "2030-01-01T00:00:00"}):
        response = api.patch(url, json=bad)
        assert response.status_code == 422 and set(response.get_json()["error"]["fields"]) == set(bad), bad
    assert api.patch("/offer-programs/999", json={"name": "x"}).status_code == 404
    updates = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "offer.program.update")
                                 .order_by(AuditEntry.id)).all()
    assert len(updates) == 2 and updates[1].after["name"] == "Renamed" and updates[1].before["name"] == body()["name"]


def test_an_operator_closes_a_program_and_the_accepted_csv_stays_available(client, api, incident):
    program = api.post(f"/incidents/{incident.id}/offer-programs", json=body()).get_json()
    url = f"/offer-programs/{program['id']}"
    api.post(f"{url}/issue")
    first = db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.id)).first()
    grants.accept(db.session, first, via="web")
    db.session.commit()
    assert api.post(f"{url}/close", json={}).status_code == 422
    assert api.post(f"{url}/close", json={"reason": "  "}).status_code == 422
    closed = api.post(f"{url}/close", json={"reason": "Budget spent", "expire_open": True})
    assert closed.status_code == 200
    answer = closed.get_json()
    assert answer["already_closed"] is False and answer["expired"] == 1
    assert answer["program"]["status"] == "closed" and answer["program"]["close_reason"] == "Budget spent"
    assert answer["program"]["closed_by"].startswith("api@example.com") and answer["program"]["closed_at"]
    assert answer["program"]["counts"]["expired"] == 1 and answer["program"]["counts"]["accepted"] == 1
    again = api.post(f"{url}/close", json={"reason": "Again"})
    assert again.status_code == 200 and again.get_json()["already_closed"] is True
    assert again.get_json()["program"]["close_reason"] == "Budget spent"
    issued = api.post(f"{url}/issue")
    assert issued.status_code == 409 and "closed" in issued.get_json()["error"]["message"]
    assert api.post(f"{url}/announce").status_code == 409
    assert api.patch(url, json={"name": "x"}).status_code == 409
    assert api.post("/offer-programs/999/close", json={"reason": "x"}).status_code == 404
    viewer = CsvAwareClient(client, token_for("viewer"))
    csv = viewer.get(f"{url}/accepted.csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert csv.get_data(as_text=True) == grants.export_csv(db.session, program["id"])
    assert display_code(first.code) in csv.get_data(as_text=True)
    assert 'filename="offer-' in csv.headers["Content-Disposition"]
    assert viewer.get("/offer-programs/999/accepted.csv").status_code == 404
    # It holds names, emails and phones: who took it is audited.
    [taken] = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "offer.export")).all()
    assert taken.entity_id == str(program["id"]) and taken.after == {"via": "api"} and "(token " in taken.actor


def test_a_viewer_token_reads_but_cannot_edit_or_close_and_no_token_gets_401(client, api, incident):
    program = api.post(f"/incidents/{incident.id}/offer-programs", json=body()).get_json()
    url = f"/offer-programs/{program['id']}"
    viewer = CsvAwareClient(client, token_for("viewer"))
    assert viewer.get(url).status_code == 200
    assert viewer.patch(url, json={"name": "x"}).status_code == 403
    assert viewer.post(f"{url}/close", json={"reason": "x"}).status_code == 403
    nobody = CsvAwareClient(client, None)
    assert nobody.patch(url, json={"name": "x"}).status_code == 401
    assert nobody.post(f"{url}/close", json={"reason": "x"}).status_code == 401
    assert nobody.get(f"{url}/accepted.csv").status_code == 401
    got = api.get(url).get_json()
    assert got["name"] == body()["name"] and got["status"] == "active"


def test_every_offer_operation_is_exercised_against_the_document(client, api, incident):
    program = api.post(f"/incidents/{incident.id}/offer-programs", json=body()).get_json()
    url = f"/offer-programs/{program['id']}"
    csv_api = CsvAwareClient(client, api.secret)
    csv_api.patch(url, json={"description": "Updated."})
    csv_api.post(f"{url}/issue")
    csv_api.post(f"{url}/announce")
    csv_api.get(url)
    csv_api.get(f"{url}/accepted.csv")
    grant = db.session.scalars(sa.select(OfferGrant)).first()
    csv_api.post(f"/offer-grants/{grant.id}/revoke", json={"reason": "Test"})
    csv_api.post(f"{url}/fulfil", json={"codes": ["NOPE"]})
    csv_api.post(f"{url}/close", json={"reason": "Done"})
    ours = {(path, method) for path, item in api.doc["paths"].items() for method, op in item.items()
            if "offers" in op.get("tags", [])}
    assert ours - csv_api.seen == {("/incidents/{incident_id}/offer-programs", "post")}
