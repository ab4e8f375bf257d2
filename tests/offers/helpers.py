"""Building an incident whose accounts are in chosen recovery states, and offer programs for it."""
from datetime import timedelta

from core.db import db, utcnow
from offers import service
from tests.accounts.factories import ACTOR, RECOVERY_HEADER, attach, make_incident, run_import


def incident_with(states: dict[str, dict[str, str]]):
    """An incident with accounts {"A1": {"contacts": "lost", "photos": "recovered"}, ...} (statuses set)."""
    incident = make_incident()
    attach(incident.id, *states)
    rows = "".join(f"{n},{cat},{state},,,\n" for n, cats in states.items() for cat, state in cats.items())
    if rows:
        job = run_import(incident.id, RECOVERY_HEADER + rows, kind="recovery")
        assert job.status.value == "done", (job.message, job.errors)
    return incident


def make_program(incident_id: int, **data):
    body = {"name": "Gift card", "kind": "gift_card", "value": "100.00", "currency": "USD",
            "eligible_states": ["lost"], "valid_until": utcnow() + timedelta(days=30), **data}
    program = service.create_program(db.session, actor=ACTOR, incident_id=incident_id, data=body)
    db.session.commit()
    return program


def issue(program_id: int) -> dict:
    result = service.issue(db.session, actor=ACTOR, program_id=program_id)
    db.session.commit()
    return result
