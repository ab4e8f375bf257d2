"""Recovery status: the overall-state rule, CSV import, single edits, history, categories."""
import pytest
import sqlalchemy as sa

from accounts import service
from accounts.models import AffectedAccount, ImportStatus, RecoveryEvent, RecoveryState, RecoveryStatus
from accounts.recovery import overall_state
from core.db import db
from core.errors import NotFound, ValidationError
from tests.accounts.factories import ACTOR, RECOVERY_HEADER, attach, make_incident, run_import

S = RecoveryState


@pytest.mark.parametrize("states, n, expected", [
    ([], 3, S.UNKNOWN),
    ([S.RECOVERED] * 3, 3, S.RECOVERED),
    ([S.RECOVERED] * 2, 3, S.UNKNOWN),  # one category not assessed yet
    ([S.LOST] * 3, 3, S.LOST),
    ([S.LOST, S.RECOVERED, S.AT_RISK], 3, S.AT_RISK),
    ([S.LOST, S.RECOVERING, S.UNKNOWN], 3, S.RECOVERING),
    ([S.LOST, S.RECOVERED, S.PARTIALLY_RECOVERED], 3, S.PARTIALLY_RECOVERED),
    ([S.LOST, S.RECOVERED, S.RECOVERED], 3, S.PARTIALLY_RECOVERED),
])
def test_overall_state_rule(states, n, expected):
    assert overall_state(states, n) == expected


def state_of(number: str) -> RecoveryState:
    return db.session.scalar(sa.select(AffectedAccount.state).join(AffectedAccount.account)
                             .where(sa.text("accounts.account_number = :n")).params(n=number))


def test_recovery_import_sets_statuses_history_and_overall_state(app):
    incident = make_incident()
    attach(incident.id, "A1", "A2")
    job = run_import(incident.id, RECOVERY_HEADER +
                     "A1,contacts,recovered,120,120,\n"
                     "A1,calendar,recovered,,,\n"
                     "A1,photos,recovered,300,300,all back\n"
                     "A2,photos,lost,50,0,disk failure\n", kind="recovery")
    assert job.status == ImportStatus.DONE, (job.message, job.errors)
    assert (job.rows_created, job.rows_updated, job.accounts_changed) == (4, 0, 1)  # A2 stays unknown
    assert state_of("A1") == S.RECOVERED
    assert state_of("A2") == S.UNKNOWN  # contacts and calendar not assessed yet
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryEvent)) == 4


def test_history_names_its_category_and_import_and_goes_with_its_incident(app):
    """recovery_events keeps one foreign key (migration 0020): its category and import are checked by the status
    row written beside it and by the job itself, and the history still goes with its incident's accounts."""
    from accounts.models import RecoveryCategory
    from incidents.models import Incident

    incident, other = make_incident(), make_incident()
    attach(incident.id, "A1")
    attach(other.id, "A1")
    job = run_import(incident.id, RECOVERY_HEADER + "A1,photos,lost,,,\n", kind="recovery")
    kept = run_import(other.id, RECOVERY_HEADER + "A1,photos,recovered,,,\n", kind="recovery")
    event = db.session.scalars(sa.select(RecoveryEvent).where(RecoveryEvent.import_id == job.id)).one()
    category = db.session.get(RecoveryCategory, event.category_id)
    assert (category.incident_id, category.key, event.new_state) == (incident.id, "photos", S.LOST)
    db.session.execute(sa.delete(Incident).where(Incident.id == incident.id))
    db.session.commit()
    assert [e.import_id for e in db.session.scalars(sa.select(RecoveryEvent))] == [kept.id]


def test_recovery_import_twice_changes_nothing_and_adds_no_history(app):
    incident = make_incident()
    attach(incident.id, "A1")
    text = RECOVERY_HEADER + "A1,photos,recovering,300,12,\n"
    run_import(incident.id, text, kind="recovery")
    job = run_import(incident.id, text, kind="recovery")
    assert (job.rows_created, job.rows_updated, job.rows_unchanged) == (0, 0, 1)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryEvent)) == 1


def test_a_change_is_appended_to_history_with_the_old_state(app):
    incident = make_incident()
    attach(incident.id, "A1")
    run_import(incident.id, RECOVERY_HEADER + "A1,photos,recovering,300,12,\n", kind="recovery")
    job = run_import(incident.id, RECOVERY_HEADER + "A1,photos,partially_recovered,300,200,\n", kind="recovery")
    assert job.rows_updated == 1
    events = db.session.scalars(sa.select(RecoveryEvent).order_by(RecoveryEvent.id)).all()
    assert [(e.old_state, e.new_state) for e in events] == [(None, S.RECOVERING), (S.RECOVERING, S.PARTIALLY_RECOVERED)]
    assert events[1].import_id == job.id


def test_bad_recovery_rows_are_rejected_with_line_column_and_reason(app):
    incident = make_incident()
    attach(incident.id, "A1")
    job = run_import(incident.id, RECOVERY_HEADER +
                     "A1,photos,recovered,10,11,\n"      # line 2: more recovered than total
                     "A1,music,lost,,,\n"                # line 3: unknown category
                     "A1,contacts,gone,,,\n"             # line 4: unknown state
                     "ZZ,contacts,lost,,,\n"             # line 5: not an affected account
                     "A1,calendar,lost,-1,x,\n"          # line 6: counts
                     "A1,calendar,lost,,,\n"             # line 7: fine
                     "A1,calendar,recovered,,,\n",       # line 8: repeats line 7's pair
                     kind="recovery")
    assert job.status == ImportStatus.REJECTED
    found = {(e["line"], e["column"]) for e in job.errors}
    assert found == {(2, "items_recovered"), (3, "category"), (4, "state"), (5, "account_number"),
                     (6, "items_total"), (6, "items_recovered"), (8, "category")}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryStatus)) == 0


def test_a_repeated_account_and_category_is_the_only_error_and_skip_invalid_keeps_the_first(app):
    """A file whose one fault is a repeated pair (the staged pairs cannot take their UNIQUE index, and the
    query that names the repeats runs): rejected whole; with skip-invalid the first of the pair applies."""
    incident = make_incident()
    attach(incident.id, "A1", "A2")
    text = RECOVERY_HEADER + "A1,photos,lost,,,\nA2,photos,lost,,,\nA1,photos,recovered,,,\nA1,photos,at_risk,,,\n"
    job = run_import(incident.id, text, kind="recovery")
    assert job.status == ImportStatus.REJECTED
    assert [(e["line"], e["column"]) for e in job.errors] == [(4, "category"), (5, "category")]
    assert all("already appear on line 2" in e["reason"] for e in job.errors)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryStatus)) == 0
    job = run_import(incident.id, text, kind="recovery", skip_invalid=True)
    assert (job.status, job.rows_created, job.rows_invalid) == (ImportStatus.DONE, 2, 2)
    assert set(db.session.scalars(sa.select(RecoveryStatus.state))) == {RecoveryState.LOST}


def test_skip_invalid_applies_only_the_good_recovery_rows(app):
    incident = make_incident()
    attach(incident.id, "A1")
    job = run_import(incident.id, RECOVERY_HEADER + "A1,photos,lost,,,\nZZ,photos,lost,,,\n", kind="recovery",
                     skip_invalid=True)
    assert job.status == ImportStatus.DONE and job.rows_created == 1 and job.rows_invalid == 1


def test_a_single_edit_uses_the_same_rules_and_history(app):
    incident = make_incident()
    attach(incident.id, "A1")
    counts = service.update_recovery(db.session, actor=ACTOR, incident_id=incident.id, account_number="A1", items=[
        {"category": "contacts", "state": "recovered", "items_total": 10, "items_recovered": 10},
        {"category": "calendar", "state": "recovered"},
        {"category": "photos", "state": "lost", "note": "No backup existed."},
    ])
    db.session.commit()
    assert counts["rows_created"] == 3
    assert state_of("A1") == S.PARTIALLY_RECOVERED
    events = db.session.scalars(sa.select(RecoveryEvent)).all()
    assert {e.actor for e in events} == {"test"} and all(e.import_id is None for e in events)


def test_a_single_edit_with_bad_values_changes_nothing(app):
    incident = make_incident()
    attach(incident.id, "A1")
    with pytest.raises(ValidationError) as e:
        service.update_recovery(db.session, actor=ACTOR, incident_id=incident.id, account_number="A1", items=[
            {"category": "contacts", "state": "recovered"}, {"category": "photos", "state": "bogus"}])
    assert "categories[1].state" in e.value.fields
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryStatus)) == 0
    with pytest.raises(NotFound):
        service.update_recovery(db.session, actor=ACTOR, incident_id=incident.id, account_number="nobody",
                                items=[{"category": "contacts", "state": "lost"}])


def test_summary_counts_states_and_categories(app):
    incident = make_incident()
    attach(incident.id, "A1", "A2", "A3")
    run_import(incident.id, RECOVERY_HEADER + "A1,contacts,recovered,5,5,\nA1,calendar,recovered,,,\n"
               "A1,photos,recovered,,,\nA2,photos,lost,7,0,\n", kind="recovery")
    summary = service.recovery_summary(db.session, incident_id=incident.id)
    assert summary["affected_accounts"] == 3
    assert summary["states"]["recovered"] == 1 and summary["states"]["unknown"] == 2
    photos = next(c for c in summary["categories"] if c["key"] == "photos")
    assert photos["states"]["recovered"] == 1 and photos["states"]["lost"] == 1 and photos["states"]["unknown"] == 1
    assert photos["items_total"] == 7


def test_categories_can_be_added_but_not_removed_once_used(app):
    incident = make_incident(categories=("contacts",))
    attach(incident.id, "A1")
    service.update_recovery(db.session, actor=ACTOR, incident_id=incident.id, account_number="A1",
                            items=[{"category": "contacts", "state": "recovered"}])
    db.session.commit()
    assert state_of("A1") == S.RECOVERED
    service.set_categories(db.session, actor=ACTOR, incident_id=incident.id, keys=["contacts", "photos"])
    db.session.commit()
    assert state_of("A1") == S.UNKNOWN  # photos not assessed yet
    with pytest.raises(ValidationError):
        service.set_categories(db.session, actor=ACTOR, incident_id=incident.id, keys=["photos"])


def test_export_streams_every_account_with_category_states(app):
    incident = make_incident()
    attach(incident.id, "A1", "A2")
    run_import(incident.id, RECOVERY_HEADER + "A2,photos,lost,7,0,\n", kind="recovery")
    text = "".join(service.export_rows(db.session, incident_id=incident.id))
    lines = text.strip().splitlines()
    assert lines[0] == ("account_number,name,phone,email,locale,overall_state,time_zone,sms_opt_out,email_opt_out,"
                        "added_at,updated_at,contacts_state,contacts_items_total,contacts_items_recovered,"
                        "contacts_note,calendar_state,calendar_items_total,calendar_items_recovered,calendar_note,"
                        "photos_state,photos_items_total,photos_items_recovered,photos_note")
    assert len(lines) == 3
    assert lines[2].startswith("A2,") and ",lost,7,0," in lines[2] and ",false,false,20" in lines[2]


def test_a_recovery_row_with_an_account_number_too_long_for_any_account_is_a_row_error(app):
    """Found by the fuzz stage: the recovery import did not check the length (PostgreSQL answered 500)."""
    from tests.accounts.factories import RECOVERY_HEADER, make_incident, run_import

    incident = make_incident()
    job = run_import(incident.id, RECOVERY_HEADER + "N" * 65 + ",contacts,lost,,,\n", kind="recovery")
    assert job.status.value == "rejected", (job.status, job.message)
    assert job.errors[0]["column"] == "account_number" and "At most 64 characters" in job.errors[0]["reason"]
