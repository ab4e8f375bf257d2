"""Editing an offer program within a finance team's rules, and closing it (service and CLI)."""
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core.db import db, utcnow
from core.errors import Conflict, NotFound, ValidationError
from offers import grants, service
from offers.models import GrantState, OfferGrant, OfferKind, ProgramStatus
from ops.models import AuditEntry
from tests.accounts.factories import ACTOR
from tests.offers.helpers import incident_with, issue, make_program


@pytest.fixture
def incident(app):
    return incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}, "A3": {"photos": "lost"},
                          "B1": {"photos": "recovered"}})


def update(program_id: int, **data):
    program = service.update_program(db.session, actor=ACTOR, program_id=program_id, data=data)
    db.session.commit()
    return program


def refused(program_id: int, **data) -> dict:
    """The field errors of a refused edit, after checking that nothing changed."""
    before = service.program_summary(service.get_program(db.session, program_id))
    audits = audit_count()
    with pytest.raises(ValidationError) as e:
        service.update_program(db.session, actor=ACTOR, program_id=program_id, data=data)
    db.session.rollback()
    assert service.program_summary(service.get_program(db.session, program_id)) == before
    assert audit_count() == audits
    return e.value.fields


def audit_count(action: str = "offer.program.") -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action.like(f"{action}%")))


def grants_by_state(program_id: int) -> dict[str, int]:
    return grants.dashboard(db.session, program_id)["counts"]


# ---- the reminder setting on create ---------------------------------------------------------------

def test_a_new_program_reminds_three_days_before_unless_told_otherwise(incident):
    assert make_program(incident.id).remind_days_before == 3
    assert make_program(incident.id, remind_days_before=None).remind_days_before is None
    assert make_program(incident.id, remind_days_before=0).remind_days_before == 0
    assert make_program(incident.id, remind_days_before=90).remind_days_before == 90
    for bad in (91, -1, "3", True, 2.5):
        with pytest.raises(ValidationError) as e:
            make_program(incident.id, remind_days_before=bad)
        assert set(e.value.fields) == {"remind_days_before"}, bad


# ---- editing --------------------------------------------------------------------------------------

def test_name_description_reminder_and_budget_change_after_issuing_and_are_audited(incident):
    program = make_program(incident.id, description="Sorry.")
    issue(program.id)
    program = update(program.id, name="  Lost photos: gift card ", description="We apologise.",
                     remind_days_before=7, budget_cap="1000")
    assert (program.name, program.description, program.remind_days_before, program.budget_cap_minor) == (
        "Lost photos: gift card", "We apologise.", 7, 100000)
    assert program.updated_at is not None
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "offer.program.update"))
    assert entry.entity_id == str(program.id)
    assert entry.before == {"name": "Gift card", "description": "Sorry.", "remind_days_before": 3,
                            "budget_cap_minor": None}
    assert entry.after == {"name": "Lost photos: gift card", "description": "We apologise.",
                           "remind_days_before": 7, "budget_cap_minor": 100000}
    update(program.id, remind_days_before=None)
    assert program.remind_days_before is None


def test_an_edit_that_changes_nothing_leaves_no_audit_entry(incident):
    program = make_program(incident.id)
    issue(program.id)
    same = service.as_input(program)
    update(program.id, **same)  # every field sent back as it is, terms included: allowed, nothing changes
    update(program.id, eligible_states=["lost"], exclude_states=[])
    assert audit_count("offer.program.update") == 0 and program.updated_at is None


def test_valid_until_is_extended_after_issuing_but_not_shortened(incident):
    program = make_program(incident.id)
    issue(program.id)
    told = program.valid_until
    fields = refused(program.id, valid_until=told - timedelta(days=1))
    assert "subscribers were told" in fields["valid_until"]
    later = told + timedelta(days=14)
    assert update(program.id, valid_until=later).valid_until == later
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "offer.program.update"))
    assert entry.before == {"valid_until": told.isoformat()} and entry.after == {"valid_until": later.isoformat()}


def test_valid_until_is_shortened_while_no_grant_exists_but_never_into_the_past(incident):
    program = make_program(incident.id)
    sooner = utcnow() + timedelta(days=2)
    assert update(program.id, valid_until=sooner).valid_until == sooner
    assert refused(program.id, valid_until=utcnow() - timedelta(minutes=1)) == {
        "valid_until": "Must be in the future."}
    assert "valid_until" in refused(program.id, valid_until="2030-01-01")  # not a datetime
    issue(program.id)
    assert "valid_until" in refused(program.id, valid_until=utcnow() - timedelta(days=1))


def test_the_budget_cap_never_goes_below_the_liability_already_granted(incident):
    program = make_program(incident.id, value="100")
    assert issue(program.id)["issued"] == 3  # 300.00 granted
    fields = refused(program.id, budget_cap="299.99")
    assert "300.00 USD already granted" in fields["budget_cap"] and "3 live grants" in fields["budget_cap"]
    assert update(program.id, budget_cap="300").budget_cap_minor == 30000
    assert issue(program.id) == {"issued": 0, "not_issued": 0}
    assert update(program.id, budget_cap=None).budget_cap_minor is None  # no cap at all is never below
    # Declined and revoked grants no longer count against the budget.
    first = db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.id)).first()
    grants.decline(db.session, first)
    db.session.commit()
    assert update(program.id, budget_cap="200").budget_cap_minor == 20000
    assert "budget_cap" in refused(program.id, budget_cap="-5")


def test_the_terms_change_while_no_grant_exists(incident):
    program = make_program(incident.id)
    program = update(program.id, kind="free_months", months=2, value="35", currency="eur",
                     eligible_states=["lost", "recovered"], exclude_states=["at_risk"], min_impact="minor")
    assert (program.kind, program.months, program.value_minor, program.currency) == (
        OfferKind.FREE_MONTHS, 2, 3500, "EUR")
    assert program.eligible_states == ["lost", "recovered"] and program.exclude_states == ["at_risk"]
    assert program.min_impact == "minor"
    assert update(program.id, kind="gift_card").months is None  # months go with free months
    assert service.preview(db.session, program)["eligible"] == 4


@pytest.mark.parametrize("field,value", [
    ("kind", "account_credit"), ("value", "50"), ("currency", "EUR"), ("months", 2),
    ("eligible_states", ["lost", "recovered"]), ("exclude_states", ["recovered"]), ("min_impact", "critical"),
])
def test_the_terms_are_fixed_once_grants_exist(incident, field, value):
    program = make_program(incident.id, **({"kind": "free_months"} if field == "months" else {}))
    issue(program.id)
    fields = refused(program.id, **{field: value})
    assert set(fields) == {field} and "3 grants already carry these terms" in fields[field]
    assert "define a new one" in fields[field]


def test_terms_stay_fixed_even_when_every_grant_was_revoked(incident):
    program = make_program(incident.id)
    issue(program.id)
    for grant in db.session.scalars(sa.select(OfferGrant)).all():
        grants.revoke(db.session, actor=ACTOR, grant_id=grant.id, reason="Issued by mistake")
    db.session.commit()
    assert "value" in refused(program.id, value="5")


def test_bad_edits_name_their_fields(incident):
    program = make_program(incident.id)
    assert set(refused(program.id, name=" ", remind_days_before=91, colour="red")) == {"colour"}
    assert set(refused(program.id, name=" ", remind_days_before=91, budget_cap="lots")) == {
        "name", "remind_days_before", "budget_cap"}
    assert set(refused(program.id, kind="pony", eligible_states=[])) == {"kind", "eligible_states"}
    with pytest.raises(NotFound):
        service.update_program(db.session, actor=ACTOR, program_id=999, data={"name": "x"})


# ---- closing --------------------------------------------------------------------------------------

def close(program_id: int, reason: str = "Budget exhausted", expire_open: bool = False) -> dict:
    result = service.close_program(db.session, actor=ACTOR, program_id=program_id, reason=reason,
                                   expire_open=expire_open)
    db.session.commit()
    return result


def test_closing_stops_issuing_and_messages_and_open_offers_stay_valid(incident):
    program = make_program(incident.id)
    issue(program.id)
    first, second, third = db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.id)).all()
    grants.accept(db.session, first, via="web")
    db.session.commit()
    result = close(program.id, reason="  Replaced by program 2 ")
    assert result["already_closed"] is False and result["expired"] == 0
    assert program.status == ProgramStatus.CLOSED and program.close_reason == "Replaced by program 2"
    assert program.closed_by == ACTOR.label and program.closed_at is not None
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "offer.program.close"))
    assert entry.before == {"status": "active"}
    assert entry.after == {"status": "closed", "reason": "Replaced by program 2", "expire_open": False,
                           "expired": 0}
    with pytest.raises(Conflict, match="closed on .*Replaced by program 2.*no more grants"):
        service.issue(db.session, actor=ACTOR, program_id=program.id)
    with pytest.raises(Conflict, match="no more announcements or reminders"):
        service.check_can_message(program)
    with pytest.raises(Conflict, match="closed"):
        service.update_program(db.session, actor=ACTOR, program_id=program.id, data={"name": "x"})
    # Open offers can still be answered until valid_until; accepted ones are still fulfilled.
    assert grants.accept(db.session, second, via="sms") is True
    assert grants.decline(db.session, third) is True
    db.session.commit()
    csv = grants.export_csv(db.session, program.id)
    assert service.display_code(first.code) in csv and service.display_code(second.code) in csv
    done = grants.mark_fulfilled(db.session, actor=ACTOR, program_id=program.id, codes=[first.code])
    assert done["fulfilled"] == 1


def test_closing_with_expire_open_ends_the_offered_grants_now(incident):
    program = make_program(incident.id)
    issue(program.id)
    first, second, third = db.session.scalars(sa.select(OfferGrant).order_by(OfferGrant.id)).all()
    grants.accept(db.session, first, via="web")
    db.session.commit()
    before = utcnow()
    assert close(program.id, expire_open=True) == {"program": program, "already_closed": False, "expired": 2}
    counts = grants_by_state(program.id)
    assert (counts["offered"], counts["accepted"], counts["expired"]) == (0, 1, 2)
    for grant in (second, third):
        db.session.refresh(grant)
        assert grant.state == GrantState.EXPIRED and grant.expired_at >= before
    # The subscriber is told the day it really ended, not the program's original date.
    with pytest.raises(Conflict, match=f"expired on {before:%d %b %Y}"):
        grants.accept(db.session, second, via="web")
    db.session.refresh(first)
    assert first.state == GrantState.ACCEPTED
    assert service.display_code(first.code) in grants.export_csv(db.session, program.id)


def test_closing_twice_is_a_no_op_and_a_first_close_needs_a_reason(incident):
    program = make_program(incident.id)
    issue(program.id)
    for bad in ("", "   ", "x" * 501, None):
        with pytest.raises(ValidationError) as e:
            service.close_program(db.session, actor=ACTOR, program_id=program.id, reason=bad)
        assert set(e.value.fields) == {"reason"}
        db.session.rollback()
    assert program.status == ProgramStatus.ACTIVE and audit_count("offer.program.close") == 0
    close(program.id, reason="Done")
    closed_at = program.closed_at
    again = close(program.id, reason="Another reason")
    assert again["already_closed"] is True and again["expired"] == 0
    assert program.closed_at == closed_at and program.close_reason == "Done"
    assert audit_count("offer.program.close") == 1
    # Offers left open by the first close can still be ended by a later one (a change, so audited).
    assert close(program.id, expire_open=True)["expired"] == 3
    assert audit_count("offer.program.close") == 2
    with pytest.raises(NotFound):
        service.close_program(db.session, actor=ACTOR, program_id=999, reason="x")


# ---- command line ---------------------------------------------------------------------------------

def test_the_cli_edits_and_closes_a_program(incident, runner):
    program = make_program(incident.id)
    issue(program.id)
    later = (program.valid_until + timedelta(days=7)).isoformat()
    result = runner.invoke(args=["offers", "edit", str(program.id), "--name", "Renamed", "--valid-until", later,
                                 "--remind-days-before", "none", "--budget-cap", "500"])
    assert result.exit_code == 0, result.output
    db.session.refresh(program)
    assert program.name == "Renamed" and program.remind_days_before is None and program.budget_cap_minor == 50000
    shorter = (program.valid_until - timedelta(days=1)).isoformat()
    result = runner.invoke(args=["offers", "edit", str(program.id), "--valid-until", shorter])
    assert result.exit_code != 0 and "valid_until: Can only be extended" in result.output
    assert runner.invoke(args=["offers", "edit", str(program.id)]).exit_code != 0
    assert runner.invoke(args=["offers", "close", str(program.id)]).exit_code != 0  # --reason is required
    result = runner.invoke(args=["offers", "close", str(program.id), "--reason", "Over", "--expire-open"])
    assert result.exit_code == 0 and "closed. 3 open offers ended now." in result.output
    result = runner.invoke(args=["offers", "close", str(program.id), "--reason", "Over"])
    assert result.exit_code == 0 and "already closed" in result.output
    for command in ("announce", "remind", "issue"):
        result = runner.invoke(args=["offers", command, str(program.id)])
        assert result.exit_code != 0 and "closed" in result.output, command
    assert db.session.scalar(sa.select(AuditEntry.actor).where(AuditEntry.action == "offer.program.close")) \
        .startswith("cli")
