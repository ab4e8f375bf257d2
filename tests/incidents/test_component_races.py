"""Components under hostile or concurrent input (issue 9, defects 5, 10 and 11): a 4xx, never a 500."""
import pytest
import sqlalchemy as sa

from core.db import db
from core.errors import NotFound, ValidationError
from incidents import service
from incidents.models import Component, ComponentGroup
from ops.audit import Actor

ACTOR = Actor.cli("test")


def api(client, secret, method, path, json=None):
    return client.open(path, method=method, json=json, headers={"Authorization": f"Bearer {secret}"})


@pytest.mark.parametrize("path,what", [("/api/ops/v1/components", "component"),
                                       ("/api/ops/v1/component-groups", "group")])
@pytest.mark.parametrize("first,second", [("Überwachung", "Überwachung"), ("Überwachung", "ÜBERWACHUNG"),
                                          ("Straße", "STRASSE"), ("Ωmega", "ωMEGA")])
def test_a_duplicate_name_in_any_script_is_a_422_on_every_database(client, api_token, path, what, first, second):
    _, secret = api_token
    assert api(client, secret, "POST", path, {"name": first}).status_code == 201
    response = api(client, secret, "POST", path, {"name": second})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["error"]["fields"]["name"] == f"Another {what} already has this name."


def test_renaming_a_component_to_another_ones_name_in_another_case_is_a_422(client, api_token):
    _, secret = api_token
    api(client, secret, "POST", "/api/ops/v1/components", {"name": "Überwachung"})
    other = api(client, secret, "POST", "/api/ops/v1/components", {"name": "Photos"}).get_json()
    response = api(client, secret, "PATCH", f"/api/ops/v1/components/{other['id']}", {"name": "überwachung"})
    assert response.status_code == 422


@pytest.mark.parametrize("position", [2**40, 2**31, -1, 100_001])
def test_a_huge_or_negative_position_is_refused_and_later_creates_still_work(client, api_token, position):
    _, secret = api_token
    response = api(client, secret, "POST", "/api/ops/v1/components", {"name": "Huge", "position": position})
    assert response.status_code in (400, 422), response.status_code
    response = api(client, secret, "POST", "/api/ops/v1/component-groups", {"name": "G", "position": position})
    assert response.status_code in (400, 422), response.status_code
    assert api(client, secret, "POST", "/api/ops/v1/components", {"name": "Next"}).status_code == 201


def test_the_largest_position_still_lets_later_creates_through(client, api_token):
    _, secret = api_token
    top = service.MAX_POSITION
    assert api(client, secret, "POST", "/api/ops/v1/components", {"name": "Last", "position": top}).status_code == 201
    created = api(client, secret, "POST", "/api/ops/v1/components", {"name": "After"})
    assert created.status_code == 201 and created.get_json()["position"] == top + 1


def test_an_update_of_a_component_deleted_meanwhile_is_not_found(app):
    component = service.create_component(db.session, actor=ACTOR, data={"name": "Photos"})
    db.session.commit()
    service.get_component(db.session, component_id=component.id)  # the PATCH has read it ...
    with db.engine.begin() as other:  # ... when a DELETE from another request commits
        other.execute(sa.delete(Component).where(Component.id == component.id))
    with pytest.raises(NotFound, match="deleted meanwhile"):
        service.update_component(db.session, actor=ACTOR, component_id=component.id,
                                 data={"description": "Still here?"})
    db.session.rollback()


def test_a_create_racing_another_create_of_the_same_name_is_a_422(app):
    with db.engine.begin() as other:  # another request commits the name after our check passed ...
        other.execute(sa.insert(ComponentGroup).values(name="Photos", description="", position=1))
    group = ComponentGroup(name="Photos", description="", position=2)  # ... and our insert follows
    db.session.add(group)
    with pytest.raises(ValidationError) as refused:
        service._unique_flush(db.session, group, "group")
    assert refused.value.fields == {"name": "Another group already has this name."}
    db.session.rollback()


def test_a_database_conflict_that_escapes_a_view_is_a_409_page_or_json(app, client):
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def racing_delete():
        from sqlalchemy.orm.exc import StaleDataError
        raise StaleDataError("DELETE statement on table 'components' expected to delete 1 row(s); 0 were matched.")

    app.add_url_rule("/test-race", "test_race", racing_delete)
    app.add_url_rule("/api/test-race", "test_api_race", racing_delete)
    page = client.get("/test-race")
    assert page.status_code == 409 and "Reload the page" in page.get_data(as_text=True)
    api_answer = client.get("/api/test-race")
    assert api_answer.status_code == 409 and api_answer.get_json()["error"]["status"] == 409
