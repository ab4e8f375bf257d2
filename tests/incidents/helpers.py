"""Factories for the incidents tests: components and incidents made through the service, as an operator would."""

from core.db import db
from incidents import service
from ops.audit import Actor


ACTOR = Actor.cli("test")


def make_component(name: str = "Contacts sync", **data):
    component = service.create_component(db.session, actor=ACTOR, data={"name": name, **data})
    db.session.commit()
    return component


def make_incident(name: str = "Contacts not syncing", component_ids=(), statuses=None, **data):
    incident = service.create_incident(db.session, actor=ACTOR, data={
        "name": name, "impact": "major", "message": "We are looking into it.",
        "component_ids": list(component_ids), "component_statuses": statuses or {}, **data})
    db.session.commit()
    return incident


def text(response) -> str:
    return response.get_data(as_text=True)
