"""Offer programs end to end through the service: eligibility, issuing, codes, budget, expiry, revocation."""
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from accounts.models import Account
from core.db import db, utcnow
from core.errors import Conflict, ValidationError
from offers import grants, service
from offers.models import GrantState, OfferGrant
from ops.models import AuditEntry
from tests.accounts.factories import ACTOR, RECOVERY_HEADER, run_import
from tests.offers.helpers import incident_with, issue, make_program

STATES = {
    "LOSTALL": {"contacts": "lost", "photos": "lost"},
    "LOSTSOME": {"contacts": "recovered", "photos": "lost"},
    "FULLREC": {"contacts": "recovered", "photos": "recovered"},
    "PARTIAL": {"contacts": "partially_recovered", "photos": "recovered"},
    "WAITING": {"contacts": "recovering", "photos": "at_risk"},
}
OTHERS = ["unknown", "at_risk", "recovering", "recovered", "partially_recovered"]


def granted_numbers(program_id: int) -> set[str]:
    return set(db.session.scalars(sa.select(Account.account_number).join(
        OfferGrant, OfferGrant.account_id == Account.id).where(OfferGrant.program_id == program_id)))


@pytest.fixture
def incident(app):
    return incident_with(STATES)


def test_lost_data_in_any_category_makes_an_account_eligible_for_the_gift_card(incident):
    program = make_program(incident.id, eligible_states=["lost"])
    assert issue(program.id) == {"issued": 2, "not_issued": 0}
    assert granted_numbers(program.id) == {"LOSTALL", "LOSTSOME"}


def test_everyone_else_is_any_other_state_excluding_lost(incident):
    program = make_program(incident.id, kind="free_months", value="35", eligible_states=OTHERS,
                           exclude_states=["lost"])
    issue(program.id)
    assert granted_numbers(program.id) == {"FULLREC", "PARTIAL", "WAITING"}
    assert program.months == 1


def test_fully_recovered_means_every_category_recovered(incident):
    program = make_program(incident.id, eligible_states=["recovered"],
                           exclude_states=["unknown", "at_risk", "recovering", "partially_recovered", "lost"])
    issue(program.id)
    assert granted_numbers(program.id) == {"FULLREC"}


def test_a_minimum_impact_above_the_incidents_leaves_nobody_eligible(incident):
    low = make_program(incident.id, min_impact="critical")
    assert service.preview(db.session, low)["eligible"] == 2
    incident.impact = "major"
    db.session.commit()
    assert service.preview(db.session, low)["eligible"] == 0
    assert issue(low.id)["issued"] == 0


def test_issuing_is_idempotent_and_a_rerun_grants_only_the_newly_eligible(incident):
    program = make_program(incident.id)
    assert issue(program.id)["issued"] == 2
    assert issue(program.id)["issued"] == 0
    job = run_import(incident.id, RECOVERY_HEADER + "FULLREC,photos,lost,,,\n", kind="recovery")
    assert job.status.value == "done"
    assert issue(program.id)["issued"] == 1
    assert granted_numbers(program.id) == {"LOSTALL", "LOSTSOME", "FULLREC"}
    # An account that recovers later keeps its grant: nothing is revoked silently.
    run_import(incident.id, RECOVERY_HEADER + "FULLREC,photos,recovered,,,\n", kind="recovery")
    assert issue(program.id)["issued"] == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OfferGrant)
                             .where(OfferGrant.state == GrantState.OFFERED)) == 3


def test_codes_are_unique_readable_and_from_the_unambiguous_alphabet(incident):
    program = make_program(incident.id, eligible_states=[*OTHERS, "lost"])
    assert issue(program.id)["issued"] == 5
    codes = list(db.session.scalars(sa.select(OfferGrant.code)))
    assert len(set(codes)) == 5
    for code in codes:
        assert re.fullmatch(r"[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{10}", code)
        assert re.fullmatch(r"[A-Z2-9]{5}-[A-Z2-9]{5}", service.display_code(code))
    assert not set("01OIL") & set(service.ALPHABET)
    sample = {service.new_code() for _ in range(2000)}
    assert len(sample) == 2000 and set("".join(sample)) == set(service.ALPHABET)
    drawn = [code for _n, code in service._with_codes(range(50_000))]  # the bulk path issue() uses
    assert len(set(drawn)) == 50_000 and all(len(c) == 10 for c in drawn)
    joined = "".join(drawn)
    assert set(joined) == set(service.ALPHABET)
    counts = [joined.count(ch) for ch in service.ALPHABET]  # uniform: ~16,129 each, no modulo bias
    assert max(counts) / min(counts) < 1.1


def test_the_budget_cap_stops_issuing_and_says_how_many_were_left_out(incident):
    program = make_program(incident.id, eligible_states=[*OTHERS, "lost"], value="100", budget_cap="350")
    assert service.preview(db.session, program)["would_issue"] == 3
    assert issue(program.id) == {"issued": 3, "not_issued": 2}
    assert program.not_issued == 2
    assert issue(program.id) == {"issued": 0, "not_issued": 2}


def test_invalid_programs_are_refused_with_field_errors(incident):
    with pytest.raises(ValidationError) as e:
        make_program(incident.id, name="", kind="pony", value="-3", currency="XXX",
                     eligible_states=["sad"], valid_until=utcnow() - timedelta(days=1), months=3)
    assert set(e.value.fields) == {"name", "kind", "value", "currency", "eligible_states", "valid_until", "months"}
    with pytest.raises(ValidationError) as e:
        make_program(incident.id, eligible_states=["lost"], exclude_states=["lost"], value="1.234")
    assert set(e.value.fields) == {"exclude_states", "value"}


def test_accepting_is_idempotent_and_declined_or_revoked_offers_cannot_be_accepted(incident):
    program = make_program(incident.id)
    issue(program.id)
    first, second = db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.id)).all()
    assert grants.accept(db.session, grants.find_grant(db.session, service.display_code(first.code).lower()),
                         via="web") is True
    assert grants.accept(db.session, first, via="web") is False
    assert first.state == GrantState.ACCEPTED and first.accepted_via == "web"
    assert grants.decline(db.session, second) is True
    with pytest.raises(Conflict, match="declined"):
        grants.accept(db.session, second, via="sms")


def test_expired_offers_cannot_be_accepted_and_the_expire_pass_marks_them(incident):
    program = make_program(incident.id)
    issue(program.id)
    first, second = db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.id)).all()
    program.valid_until = utcnow() - timedelta(minutes=1)
    db.session.commit()
    with pytest.raises(Conflict, match="expired on"):
        grants.accept(db.session, first, via="web")
    assert first.state == GrantState.EXPIRED
    assert grants.expire(db.session) == 1
    db.session.refresh(second)
    assert second.state == GrantState.EXPIRED
    with pytest.raises(Conflict):
        issue(program.id)


def test_revoking_needs_a_reason_and_is_audited(incident):
    program = make_program(incident.id)
    issue(program.id)
    grant = db.session.scalars(sa.select(OfferGrant)).first()
    with pytest.raises(ValidationError):
        grants.revoke(db.session, actor=ACTOR, grant_id=grant.id, reason=" ")
    grants.revoke(db.session, actor=ACTOR, grant_id=grant.id, reason="Duplicate account")
    db.session.commit()
    assert grant.state == GrantState.REVOKED and grant.revoke_reason == "Duplicate account"
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "offer.grant.revoke"))
    assert entry.entity_id == str(grant.id) and entry.after["reason"] == "Duplicate account"
    assert entry.before == {"state": "offered"}
    with pytest.raises(Conflict, match="withdrawn"):
        grants.accept(db.session, grant, via="web")
    with pytest.raises(Conflict):
        grants.revoke(db.session, actor=ACTOR, grant_id=grant.id, reason="again")


def test_fulfilment_exports_accepted_grants_and_marks_them_by_code(incident, runner):
    program = make_program(incident.id)
    issue(program.id)
    first, second = db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.id)).all()
    grants.accept(db.session, first, via="sms")
    db.session.commit()
    result = runner.invoke(args=["offers", "export", str(program.id)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == ",".join(grants.EXPORT_COLUMNS)
    assert len(lines) == 2 and lines[1].startswith(service.display_code(first.code) + ",")
    assert ",gift_card,,100.00,USD," in lines[1] and lines[1].endswith(",sms")
    out = grants.mark_fulfilled(db.session, actor=ACTOR, program_id=program.id,
                                codes=[service.display_code(first.code), second.code, "NOPE"])
    db.session.commit()
    assert out["fulfilled"] == 1
    assert out["not_fulfilled"] == {service.display_code(second.code): "offered", "NOPE": "unknown code"}
    assert grants.export_csv(db.session, program.id).count("\n") == 1  # only the header is left
    stats = grants.dashboard(db.session, program.id)
    assert stats["counts"]["fulfilled"] == 1 and stats["counts"]["offered"] == 1
    assert stats["liability_minor"] == {"offered": 10000, "accepted": 0, "fulfilled": 10000}


def test_the_cli_issues_expires_and_fulfils_from_a_csv(incident, runner, tmp_path):
    program = make_program(incident.id)
    result = runner.invoke(args=["offers", "issue", str(program.id)])
    assert result.exit_code == 0 and "Issued 2 grants" in result.output
    grant = db.session.scalars(sa.select(OfferGrant)).first()
    grants.accept(db.session, grant, via="web")
    db.session.commit()
    path = tmp_path / "done.csv"
    path.write_text(f"code,amount\n{service.display_code(grant.code)},100\n")
    result = runner.invoke(args=["offers", "fulfil", str(program.id), str(path)])
    assert result.exit_code == 0 and "Fulfilled 1" in result.output
    assert runner.invoke(args=["offers", "export", "999"]).exit_code != 0
    assert "Expired 0" in runner.invoke(args=["offers", "expire"]).output


def test_a_code_collision_is_retried_with_a_fresh_code(incident, monkeypatch):
    real = service.secrets.token_bytes
    calls = []

    def first_block_all_twos(n):  # the first draw gives every account the same code: all but one collide
        calls.append(n)
        return bytes(n) if len(calls) == 1 else real(n)

    monkeypatch.setattr(service.secrets, "token_bytes", first_block_all_twos)
    program = make_program(incident.id, eligible_states=[*OTHERS, "lost"])
    assert issue(program.id) == {"issued": 5, "not_issued": 0}
    codes = set(db.session.scalars(sa.select(OfferGrant.code)))
    assert len(codes) == 5 and "2222222222" in codes and len(calls) >= 2
