"""Hostile input gets a clear 4xx or is cleaned, never a 500 (issue 9, defects 4, 6, 7, 8 and 9)."""
import io
import json
from xml.etree import ElementTree as ET

import pytest
import sqlalchemy as sa

from accounts.models import Account
from core.db import db
from core.text import storable_lines, strip_unstorable, unstorable_fields
from incidents import service as incidents
from incidents.models import Incident
from ops.audit import Actor
from tests.accounts.factories import HEADER, make_incident, run_import
from tests.conftest import csrf_from, make_operator, post_form, sign_in

ACTOR = Actor.cli("test")


def api(client, secret, method, path, body: bytes | str):
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return client.open(path, method=method, data=data, content_type="application/json",
                       headers={"Authorization": f"Bearer {secret}"})


@pytest.mark.parametrize("text,clean", [("a\x00b", "ab"), ("tab\tand\nnewline\r", "tab\tand\nnewline\r"),
                                        ("v\x0btab", "vtab"), ("\ud800x", "x"), ("ok \ufffe", "ok "),
                                        ("Überwachung", "Überwachung")])
def test_only_the_characters_no_store_can_hold_are_stripped(text, clean):
    assert strip_unstorable(text) == clean


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 16])
def test_storable_lines_are_the_lines_stripped_one_by_one(block):
    """The block-wise strip of a text stream (CSV imports) gives exactly the per-line strip: the same lines,
    with their ends (\n, \r\n, a lone \r) where they were, whichever blocks the characters fall in."""
    import io
    import random

    pieces = ["plain", "a\x00b", "\x0b", "tab\there", "Überwachung", "\x01\x02", "q\"uote", ",", "\ufffe"]
    ends = ["\n", "\r\n", "\r"]
    r = random.Random(block)
    text = "".join("".join(r.choice(pieces) for _ in range(r.randint(0, 4))) + r.choice(ends) for _ in range(300))
    text += "last line without an end"
    expected = [strip_unstorable(line) for line in io.StringIO(text, newline="")]
    assert list(storable_lines(io.StringIO(text, newline=""), block)) == expected
    assert any(line != strip_unstorable(line) for line in io.StringIO(text, newline=""))  # there was work


def test_json_strings_with_such_characters_are_named_by_their_path():
    fields = unstorable_fields({"name": "ok", "accounts": [{"name": "a\x00"}], "x": {"y": "\x0b"}})
    assert set(fields) == {"accounts[0].name", "x.y"}


def test_a_control_character_stored_in_an_incident_name_does_not_break_the_atom_feed(client):
    incident = incidents.create_incident(db.session, actor=ACTOR, data={
        "name": "Photos", "impact": "major", "message": "We are \x0blooking."})
    db.session.flush()
    # As if stored before input was cleaned (or by a path that does not clean): the feed must still parse.
    db.session.execute(sa.update(Incident).where(Incident.id == incident.id).values(name="Pho\x0btos\x01"))
    db.session.commit()
    response = client.get("/history.atom")
    assert response.status_code == 200
    feed = ET.fromstring(response.data)
    titles = [e.text for e in feed.iter("{http://www.w3.org/2005/Atom}title")]
    assert any(t.startswith("Photos — ") for t in titles), titles


def test_a_console_form_strips_control_characters_instead_of_failing(client):
    make_operator("operator")
    assert sign_in(client, "operator@example.com").status_code == 302
    response = post_form(client, "/ops/incidents/new", {
        "name": "Contacts\x00 not\x0b syncing", "impact": "major", "status": "investigating",
        "message": "Looking\x00 into it.", "component_status": ""})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    incident = db.session.scalars(sa.select(Incident)).one()
    assert incident.name == "Contacts not syncing"


def test_a_lone_surrogate_in_json_is_a_422_that_names_the_field(client, api_token):
    _, secret = api_token
    response = api(client, secret, "POST", "/api/ops/v1/incidents",
                   '{"name": "Photos \\ud800", "impact": "major", "message": "x"}')
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "name" in response.get_json()["error"]["fields"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Incident)) == 0


def test_a_nul_in_json_is_a_422_that_names_the_field_not_out_of_range(client, api_token):
    _, secret = api_token
    response = api(client, secret, "POST", "/api/ops/v1/incidents",
                   json.dumps({"name": "Photos\x00", "impact": "major", "message": "x"}))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert "control character (U+0000)" in error["fields"]["name"]
    assert "out of range" not in json.dumps(error)


@pytest.mark.parametrize("depth", [33, 900, 5000, 100_000])
def test_deeply_nested_json_is_a_400(client, api_token, depth):
    _, secret = api_token
    response = api(client, secret, "POST", "/api/ops/v1/incidents", "[" * depth + "]" * depth)
    assert response.status_code == 400, response.status_code
    assert "nests too deeply" in response.get_json()["error"]["message"]
    nested = '{"name": "x", "impact": "major", "message": "m", "extra": ' + "{\"a\": " * depth + "1" + "}" * depth + "}"
    response = api(client, secret, "POST", "/api/ops/v1/incidents", nested)
    assert response.status_code == 400


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_that_are_not_json_are_a_400(client, api_token, constant):
    _, secret = api_token
    response = api(client, secret, "POST", "/api/ops/v1/components", f'{{"name": "x", "position": {constant}}}')
    assert response.status_code == 400
    assert "not a JSON value" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("path,fields", [("/ops/sign-in", ("email", "password")), ("/my", ("identifier",))])
def test_a_text_field_sent_as_a_file_upload_is_a_4xx_not_a_500(client, path, fields):
    token = csrf_from(client.get(path).get_data(as_text=True))
    data = {"csrf_token": token, **{f: (io.BytesIO(b"a@example.com"), "x.txt") for f in fields}}
    response = client.post(path, data=data, content_type="multipart/form-data")
    assert 400 <= response.status_code < 500, response.status_code
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/ops/sign-in", "/my"])
def test_a_json_body_to_a_form_is_a_4xx_not_a_500(client, path):
    for body in (b"[1, 2]", b'{"email": 5, "password": [1], "identifier": {"a": 1}}', b"{bad"):
        response = client.post(path, data=body, content_type="application/json")
        assert 400 <= response.status_code < 500, (body, response.status_code)


def test_nul_and_control_characters_in_an_imported_csv_are_stripped_on_every_database(app):
    incident = make_incident()
    job = run_import(incident.id, HEADER + "A1,Ana\x00 Li\x0bma,,ana@example.com,en\nA\x002,Bo,,,en\n")
    assert job.status.value == "done", (job.message, job.errors)
    names = dict(db.session.execute(sa.select(Account.account_number, Account.name)).tuples().all())
    assert names == {"A1": "Ana Lima", "A2": "Bo"}


def test_every_post_form_of_the_app_derives_from_the_one_safe_base(app):
    from flask_wtf import FlaskForm

    from core.forms import WebForm

    def all_subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from all_subclasses(sub)

    ours = [c for c in all_subclasses(FlaskForm) if c is not WebForm and not c.__module__.startswith("tests.")]
    assert len(ours) > 15
    assert [c.__qualname__ for c in ours if not issubclass(c, WebForm)] == []


def test_a_number_of_thousands_of_digits_in_json_is_a_400(client, api_token):
    _, secret = api_token
    response = api(client, secret, "POST", "/api/ops/v1/components", '{"name": "x", "position": ' + "9" * 5000 + "}")
    assert response.status_code == 400
    assert "number too long" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("path", ["/ops/sign-in", "/my"])
def test_a_multipart_part_without_a_name_is_ignored_not_a_500(client, path):
    body = (b"--xyz\r\nContent-Disposition: form-data\r\n\r\nnameless\r\n"
            b"--xyz\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n\r\n--xyz--\r\n")
    response = client.post(path, data=body, content_type="multipart/form-data; boundary=xyz")
    assert 400 <= response.status_code < 500, response.status_code
