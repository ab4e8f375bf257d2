"""Bad input gets a clear 4xx (a styled page, or JSON under /api/), and a crash a calm 500: never a traceback."""
import time

import itsdangerous.timed
import pytest

from core.db import db
from incidents.models import Component
from tests.conftest import PASSWORD, csrf_from, make_operator, post_form, sign_in

HUGE = "9" * 30  # far beyond any database integer


def is_styled_page(response) -> bool:
    html = response.get_data(as_text=True)
    return response.mimetype == "text/html" and 'class="site-header"' in html and "style.css" in html


def error_of(response) -> dict:
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:200]
    error = response.get_json()["error"]
    assert error["status"] == response.status_code and error["message"]
    return error


def no_leak(response, *secrets: str) -> bool:
    text = response.get_data(as_text=True)
    return "Traceback" not in text and 'File "' not in text and not any(s in text for s in secrets)


@pytest.fixture
def crashing(app):
    """Routes that fail as a bug would, with exceptions handled as in production (not re-raised)."""
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def boom():
        raise RuntimeError("secret internal detail: password=hunter2")

    def too_large_number():
        db.session.add(Component(name="Overflowing", position=10**30))
        db.session.flush()
        return "unreachable"

    app.add_url_rule("/test-boom", "test_boom", boom)
    app.add_url_rule("/api/test-boom", "test_api_boom", boom)
    app.add_url_rule("/test-overflow", "test_overflow", too_large_number)
    app.add_url_rule("/api/test-overflow", "test_api_overflow", too_large_number)
    return app


# ---- 404 ---------------------------------------------------------------------------------------

def test_an_unknown_address_gets_the_styled_404_page(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert is_styled_page(response)
    assert "There is nothing here" in response.get_data(as_text=True)


def test_a_404_inside_the_console_leads_back_to_the_console(client):
    response = client.get("/ops/no-such-page")
    assert response.status_code == 404 and is_styled_page(response)
    assert 'href="/ops/"' in response.get_data(as_text=True)


def test_an_unknown_address_under_api_answers_json_404(client):
    for url in ("/api/v2/no-such-thing.json", "/api/ops/v1/no-such-thing"):
        response = client.get(url)
        assert response.status_code == 404
        error_of(response)


def test_unknown_ids_are_404_on_pages_and_in_the_api(client, api_token):
    _operator, secret = api_token
    assert client.get("/incidents/999999").status_code == 404
    response = client.get("/api/ops/v1/incidents/999999", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 404
    assert "999999" in error_of(response)["message"]


def test_ids_too_large_for_the_database_are_simply_not_found(client, api_token):
    _operator, secret = api_token
    page = client.get(f"/incidents/{HUGE}")
    assert page.status_code == 404 and is_styled_page(page)
    api = client.get(f"/api/ops/v1/incidents/{HUGE}", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 404
    error_of(api)


# ---- 405 and 413 -------------------------------------------------------------------------------

def test_a_wrong_method_is_405_with_an_allow_header(client):
    page = client.delete("/ops/sign-in")
    assert page.status_code == 405 and is_styled_page(page)
    assert {"GET", "POST"} <= {m.strip() for m in page.headers["Allow"].split(",")}
    assert "DELETE" in page.get_data(as_text=True)

    api = client.put("/api/v2/summary.json")
    assert api.status_code == 405
    assert "GET" in api.headers["Allow"]
    assert "PUT" in error_of(api)["message"]


def test_a_body_above_the_size_limit_is_413_on_pages_and_in_the_api(app, client, api_token):
    _operator, secret = api_token
    app.config["MAX_CONTENT_LENGTH"] = 1024
    page = client.post("/ops/sign-in", data={"email": "a@example.com", "password": "x" * 5000})
    assert page.status_code == 413 and is_styled_page(page)
    assert "too large" in page.get_data(as_text=True)

    api = client.post("/api/ops/v1/incidents", json={"name": "x", "message": "m" * 5000},
                      headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 413
    assert "too large" in error_of(api)["message"]


# ---- CSRF --------------------------------------------------------------------------------------

def test_a_form_without_its_csrf_token_gets_a_clear_400_page(client):
    make_operator("viewer")
    response = client.post("/ops/sign-in", data={"email": "viewer@example.com", "password": PASSWORD})
    assert response.status_code == 400 and is_styled_page(response)
    assert "form session expired" in response.get_data(as_text=True)
    assert client.get("/ops/incidents").status_code == 302  # not signed in


def test_an_expired_csrf_token_gets_the_same_clear_400_page(app, client, monkeypatch):
    make_operator("viewer")
    app.config["WTF_CSRF_TIME_LIMIT"] = 1
    with monkeypatch.context() as m:  # the page (and its token) as it was served ten seconds ago
        m.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda signer: int(time.time()) - 10)
        token = csrf_from(client.get("/ops/sign-in").get_data(as_text=True))
    response = client.post("/ops/sign-in", data={"email": "viewer@example.com", "password": PASSWORD,
                                                 "csrf_token": token})
    assert response.status_code == 400 and is_styled_page(response)
    assert "Reload the page and submit again" in response.get_data(as_text=True)


# ---- malformed bodies --------------------------------------------------------------------------

def test_garbage_and_non_utf8_form_bodies_are_a_4xx_never_a_500(client):
    token = csrf_from(client.get("/ops/sign-in").get_data(as_text=True))
    bodies = [
        ("application/x-www-form-urlencoded", b"\xff\xfe\x00=\xff&&&=%%%"),
        ("application/x-www-form-urlencoded",
         f"csrf_token={token}&email=%ff%fe%00@example.com&password=\xff".encode("latin-1")),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nthis is not multipart"),
        ("multipart/form-data", b"no boundary at all"),
        ("text/plain", b"\x00\x01\x02"),
    ]
    for content_type, body in bodies:
        response = client.post("/ops/sign-in", data=body, content_type=content_type)
        assert 400 <= response.status_code < 500, (content_type, body, response.status_code)
        assert no_leak(response)


def test_malformed_json_to_the_api_is_a_json_400(client, api_token):
    _operator, secret = api_token
    for body in (b"{not json", b"[1, 2]", b"\xff\xfe{}", b""):
        response = client.post("/api/ops/v1/incidents", data=body, content_type="application/json",
                               headers={"Authorization": f"Bearer {secret}"})
        assert response.status_code == 400, (body, response.status_code)
        error_of(response)


def test_numbers_too_large_for_the_database_in_forms_and_queries_are_a_4xx(client):
    make_operator("admin")
    assert sign_in(client, "admin@example.com").status_code == 302
    response = post_form(client, "/ops/components/new", {"name": "Pager", "position": HUGE, "status": "operational"})
    assert 400 <= response.status_code < 500 and no_leak(response)
    assert client.get(f"/ops/audit?operator_id={HUGE}&page={HUGE}").status_code < 500


def test_a_value_the_database_rejects_is_a_400_page_or_json(crashing, client):
    page = client.get("/test-overflow")
    assert page.status_code == 400 and is_styled_page(page)
    assert "out of range" in page.get_data(as_text=True)
    api = client.get("/api/test-overflow")
    assert api.status_code == 400
    assert "out of range" in error_of(api)["message"]


# ---- 500 ---------------------------------------------------------------------------------------

def test_a_crash_in_a_view_shows_the_styled_500_page_without_a_traceback(crashing, client):
    response = client.get("/test-boom")
    assert response.status_code == 500 and is_styled_page(response)
    assert "Something went wrong" in response.get_data(as_text=True)
    assert no_leak(response, "hunter2", "RuntimeError")


def test_a_crash_under_api_answers_json_500_without_details(crashing, client):
    response = client.get("/api/test-boom")
    assert response.status_code == 500
    assert "Something went wrong" in error_of(response)["message"]
    assert no_leak(response, "hunter2", "RuntimeError")
