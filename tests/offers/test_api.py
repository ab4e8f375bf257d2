"""The offer routes of the ops API, each answer checked against the OpenAPI document."""
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core.db import db, utcnow
from offers.models import OfferGrant
from ops.models import AuditEntry
from tests.offers.helpers import incident_with
from tests.ops.test_openapi import ApiClient


@pytest.fixture
def api(client, api_token):
    return ApiClient(client, api_token[1])


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
    assert got["counts"]["offered"] == 2
    assert got["liability_minor"] == {"offered": 20000, "accepted": 0, "fulfilled": 0}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action.like("offer.program.%"))) == 2


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
    from offers import grants

    grants.accept(db.session, second, via="web")
    db.session.commit()
    done = api.post(f"/offer-programs/{program['id']}/fulfil", json={"codes": [second.code, first.code]})
    assert done.status_code == 200
    assert done.get_json()["fulfilled"] == 1
    assert list(done.get_json()["not_fulfilled"].values()) == ["revoked"]
