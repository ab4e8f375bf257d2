from tests.conftest import make_operator, sign_in


def test_console_routes_require_sign_in(client):
    response = client.get("/ops/incidents")
    assert response.status_code == 302
    assert "/ops/sign-in" in response.headers["Location"]


def test_an_operator_signs_in_and_out(client):
    make_operator("viewer")
    assert sign_in(client, "viewer@example.com").status_code == 302
    assert client.get("/ops/incidents").status_code == 200


def test_a_wrong_password_is_refused_with_a_message(client):
    make_operator("viewer")
    response = sign_in(client, "viewer@example.com", password="not the password")
    assert response.status_code == 400
    assert "do not match" in response.get_data(as_text=True)
    assert client.get("/ops/incidents").status_code == 302
