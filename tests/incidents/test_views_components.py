"""The operator console for components and groups."""
import sqlalchemy as sa

from core.db import db
from incidents.models import Component, ComponentGroup, ComponentStatus
from ops.models import AuditEntry
from tests.conftest import post_form
from tests.incidents.helpers import make_component, text


def test_an_operator_creates_a_group_and_a_component_in_it(signed_in):
    client, _ = signed_in
    made = post_form(client, "/ops/components", {"name": "Sync"}, action="/ops/components/groups",
                     follow_redirects=True)
    assert "Group “Sync” created." in text(made)
    group = db.session.scalar(sa.select(ComponentGroup))
    response = post_form(client, "/ops/components/new", {
        "name": "Contacts sync", "description": "Address book", "group_id": str(group.id), "position": "3",
        "status": "degraded_performance", "showcase": "y"})
    assert response.status_code == 302
    page = text(client.get("/ops/components"))
    assert "Component “Contacts sync” saved." in page
    assert page.index("<h2>Sync</h2>") < page.index("<td>Contacts sync<br>")
    component = db.session.scalar(sa.select(Component))
    assert (component.group_id, component.position, component.status, component.showcase,
            component.only_show_if_degraded) == (group.id, 3, ComponentStatus.DEGRADED_PERFORMANCE, True, False)
    actions = set(db.session.scalars(sa.select(AuditEntry.action)).all())
    assert {"component_group.create", "component.create"} <= actions


def test_components_are_listed_in_position_order(signed_in):
    client, _ = signed_in
    make_component("Zeta", position=1)
    make_component("Alpha", position=2)
    page = text(client.get("/ops/components"))
    assert page.index("Zeta") < page.index("Alpha")


def test_a_duplicate_name_is_refused_beside_the_field_with_the_rest_kept(signed_in):
    client, _ = signed_in
    make_component("Email")
    response = post_form(client, "/ops/components/new", {"name": "email", "description": "Kept text",
                                                          "position": "2"})
    assert response.status_code == 422
    body = text(response)
    assert 'id="name-error">Another component already has this name.' in body
    assert "Kept text" in body and 'value="2"' in body


def test_a_position_that_is_not_a_number_is_refused(signed_in):
    client, _ = signed_in
    response = post_form(client, "/ops/components/new", {"name": "Photos", "position": "first"})
    assert response.status_code == 422
    assert 'id="position-error">' in text(response)


def test_an_operator_edits_a_component(signed_in):
    client, _ = signed_in
    component = make_component("Photos")
    url = f"/ops/components/{component.id}/edit"
    assert 'value="Photos"' in text(client.get(url))
    response = post_form(client, url, {"name": "Photo library", "description": "", "position": "7",
                                       "only_show_if_degraded": "y"})
    assert response.status_code == 302
    db.session.expire_all()
    edited = db.session.get(Component, component.id)
    assert (edited.name, edited.position, edited.showcase, edited.only_show_if_degraded) == \
        ("Photo library", 7, False, True)


def test_an_operator_changes_a_component_status_directly(signed_in):
    client, _ = signed_in
    component = make_component("Email")
    response = post_form(client, "/ops/components", {"status": "major_outage"},
                         action=f"/ops/components/{component.id}/status", follow_redirects=True)
    assert "Email is now major outage." in text(response)
    db.session.expire_all()
    assert db.session.get(Component, component.id).status == ComponentStatus.MAJOR_OUTAGE


def test_an_unknown_status_is_refused(signed_in):
    client, _ = signed_in
    component = make_component("Email")
    response = post_form(client, "/ops/components", {"status": "on_fire"},
                         action=f"/ops/components/{component.id}/status")
    assert response.status_code == 422
    assert "Choose one of" in text(response)


def test_an_unknown_component_gives_the_styled_not_found_page(signed_in):
    client, _ = signed_in
    response = client.get("/ops/components/77/edit")
    assert response.status_code == 404
    assert "No component with id 77." in text(response)
