"""Data for the fuzz stage, made with the project's own service functions (as the rest of the suite does):
an incident with components, recovery categories and affected accounts in several states, a scheduled
maintenance, a component group, an offer program with grants, a broadcast, a finished and a rejected
import (so /imports/{id}/errors.csv has a file), two webhook endpoints, and an admin operator with a real API
token.

`seed()` returns the real ids and keys, so the fuzzers can aim at existing resources, not only at 404s."""
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from accounts import audiences
from accounts.models import ImportJob
from core.db import db, utcnow
from incidents import service as incidents
from notifications.outbound import service as webhooks
from offers.models import OfferGrant
from ops import service as ops_service
from ops.audit import Actor
from tests.accounts.factories import ACTOR, HEADER, RECOVERY_HEADER, attach, make_incident, run_import
from tests.conftest import make_operator
from tests.offers.helpers import issue, make_program

ACCOUNTS = ("A1001", "A1002", "A1003", "A1004", "B-7/8")  # one with a slash: the path parameter is <path:...>


@dataclass
class Seeded:
    token: str
    admin_email: str
    ids: dict[str, list] = field(default_factory=dict)  # path parameter name -> real values


def seed() -> Seeded:
    admin = make_operator("admin", email="fuzz-admin@example.com")
    _token, secret = ops_service.create_token(db.session, actor=Actor.cli("fuzz"), operator_id=admin.id)
    db.session.commit()

    components = [incidents.create_component(db.session, actor=ACTOR, data={"name": f"Component {i}"})
                  for i in range(6)]
    incidents.create_group(db.session, actor=ACTOR, data={"name": "Sync services"})
    db.session.commit()

    incident = make_incident("Sidekick data loss")
    incident_obj = incidents.get_incident(db.session, incident_id=incident.id)
    incident_obj.components = components[:3]
    db.session.commit()
    attach(incident.id, *ACCOUNTS)
    rows = "".join(f"{n},{cat},{state},10,{4 if state == 'partially_recovered' else 0},note\n"
                   for n, state in zip(ACCOUNTS, ("lost", "recovered", "at_risk", "partially_recovered", "lost"))
                   for cat in ("contacts", "photos"))
    job = run_import(incident.id, RECOVERY_HEADER + rows, kind="recovery")
    assert job.status.value == "done", (job.message, job.errors)
    rejected = run_import(incident.id, HEADER + "X1,Bad phone,not-a-phone,,en\n")
    assert rejected.status.value == "rejected", rejected.message

    maintenance = incidents.schedule_maintenance(db.session, actor=ACTOR, data={
        "name": "Database upgrade", "message": "Planned work.", "component_ids": [components[3].id],
        "scheduled_for": utcnow() + timedelta(days=1), "scheduled_until": utcnow() + timedelta(days=1, hours=2)})
    db.session.commit()

    program = make_program(incident.id, eligible_states=["lost", "partially_recovered"])
    issue(program.id)
    spare = make_program(incident.id, name="Spare program")  # announce/close/issue may change the first one
    grants = db.session.scalars(sa.select(OfferGrant.id).order_by(OfferGrant.id)).all()
    import_jobs = db.session.scalars(sa.select(ImportJob.id).order_by(ImportJob.id)).all()

    broadcast = audiences.broadcast_to_incident(db.session, actor=ACTOR, incident_id=incident.id, data={
        "message": "We are restoring your data.", "channels": ["sms", "email"]})
    hooks = [webhooks.create(db.session, actor=ACTOR, allow_private=False, data={
        "url": f"https://hooks{i}.example.com/lifeboat", "events": ["incident.created", "incident.updated"]})[0]
        for i in range(2)]
    db.session.commit()

    return Seeded(token=secret, admin_email=admin.email, ids={
        "incident_id": [incident.id],
        "maintenance_id": [maintenance.id],
        "component_id": [c.id for c in components],
        "job_id": list(import_jobs),
        "program_id": [program.id, spare.id],
        "grant_id": list(grants),
        "broadcast_id": [broadcast.id],
        "endpoint_id": [h.id for h in hooks],
        "account_number": list(ACCOUNTS),
    })
