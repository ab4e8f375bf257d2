"""The OpenAPI document and the server agree on what a request may be (issue 9, defect 13).

Crafted requests at the edges of every rule go to both: openapi-core reads each against the document, and
the server answers it. A request the document forbids must be refused with a status the operation
documents; one the document allows must be accepted. ApiClient checks every answer against the document."""
import re
from datetime import timedelta

import pytest
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
from werkzeug.test import EnvironBuilder

from core.db import utcnow
from ops import openapi
from tests.ops.api_client import PREFIX, api_operations

BIG_IDS = ("2147483648", "99999999999999999999")  # one past a database INTEGER, and past a BIGINT


@pytest.fixture
def world(api):
    """An incident with categories and the account A1, a maintenance, a component and an offer program."""
    component = api.post("/components", json={"name": "Contacts sync"}).get_json()
    incident = api.post("/incidents", json={"name": "Storage failure", "message": "Looking into it."}).get_json()
    api.put(f"/incidents/{incident['id']}/recovery-categories", json={"categories": ["contacts", "photos"]})
    job = api.post(f"/incidents/{incident['id']}/affected-accounts", json={"accounts": [{"account_number": "A1"}]})
    assert job.status_code == 200, job.get_json()
    maintenance = api.post("/maintenances", json={
        "name": "Upgrade", "message": "Planned.", "scheduled_for": "2030-01-01T01:00:00Z",
        "scheduled_until": "2030-01-01T03:00:00Z"}).get_json()
    program = api.post(f"/incidents/{incident['id']}/offer-programs", json=_program()).get_json()
    return {"component": component["id"], "incident": incident["id"], "maintenance": maintenance["id"],
            "program": program["id"]}


def _program(**extra) -> dict:
    until = (utcnow() + timedelta(days=30)).isoformat().replace("+00:00", "Z")
    return {"name": "Gift card", "kind": "gift_card", "value": 100, "currency": "USD", "eligible_states": ["lost"],
            "valid_until": until, **extra}


def _document_refuses(spec: OpenAPI, secret: str, method: str, path: str, kwargs: dict) -> bool:
    """Whether openapi-core finds the request outside the document."""
    headers = {"Authorization": f"Bearer {secret}", **kwargs.get("headers", {})}
    request = EnvironBuilder(path=PREFIX + path, method=method, headers=headers,
                             **{k: v for k, v in kwargs.items() if k != "headers"}).get_request()
    try:
        spec.validate_request(WerkzeugOpenAPIRequest(request))
    except Exception:  # noqa: BLE001  (any validation error: path, parameter, body)
        return True
    return False


# (method, path, request keywords, the status the server answers); {incident} etc. come from `world`
# Not whole numbers in the document's terms, though openapi-core reads query integers with int(), which takes them.
NOT_INTEGERS = ["/incidents?limit=1_0", "/incidents?limit=%2B5", "/incidents?offset=%205", "/maintenances?limit=%D9%A5"]
REFUSED = [
    ("GET", "/incidents?offset=2147483648", {}, 422),
    ("GET", "/maintenances?offset=-1", {}, 422),
    ("GET", "/incidents/2147483648", {}, 404),
    ("PATCH", "/components/2147483648", {"json": {}}, 404),
    ("DELETE", "/components/99999999999999999999", {}, 404),
    ("POST", "/components", {"json": {"name": "Edge", "position": 2147483648}}, 422),
    ("POST", "/components", {"json": {"name": " \t "}}, 422),
    ("POST", "/components", {"json": {"name": "Sync\x00"}}, 422),
    ("PATCH", "/components/{component}", {"json": {"group_id": 2147483648}}, 422),
    ("POST", "/component-groups", {"json": {"name": "Group", "position": -1}}, 422),
    ("PATCH", "/components/{component}", {"json": {"position": 100001}}, 422),
    ("POST", "/incidents", {"json": {"name": "x", "message": "y",
                                     "component_statuses": {"99999999999999999999": "major_outage"}}}, 422),
    ("POST", "/incidents", {"json": {"name": "x", "message": "y", "component_ids": [2147483648]}}, 422),
    ("POST", "/incidents", {"json": {"name": "x", "message": "y", "started_at": "0001-01-01T00:00:00+01:00"}}, 422),
    ("POST", "/incidents", {"json": {"name": "x", "message": "y", "started_at": "2026-01-02 05:30:00Z"}}, 422),
    ("POST", "/maintenances", {"json": {"name": "m", "message": "y", "scheduled_for": "9999-12-31T23:59:59-23:00",
                                        "scheduled_until": "9999-12-31T23:59:59-23:59"}}, 422),
    ("POST", "/maintenances/{maintenance}/updates", {"json": {"status": "resolved", "message": "x"}}, 422),
    ("POST", "/incidents/{incident}/updates", {"json": {"status": "completed", "message": "x"}}, 422),
    ("POST", "/incidents", {"json": {"name": "x", "message": "y"}, "headers": {"Idempotency-Key": "k\x01"}}, 400),
    ("POST", "/offer-programs/{program}/issue", {"headers": {"Idempotency-Key": "k" * 256}}, 400),
    ("GET", "/incidents/{incident}/affected-accounts?state=", {}, 422),
    ("GET", "/incidents/{incident}/affected-accounts?category=Photos&category_state=lost", {}, 422),
    ("GET", "/incidents/{incident}/affected-accounts?q=" + "x" * 255, {}, 422),
    ("GET", "/incidents/{incident}/affected-accounts?offset=2147483648", {}, 422),
    ("GET", "/incidents/{incident}/accounts/A1%00", {}, 404),
    ("PUT", "/incidents/{incident}/recovery-categories", {"json": {"categories": ["0photos"]}}, 422),
    ("PUT", "/incidents/{incident}/recovery-categories", {"json": {"categories": ["", "  "]}}, 422),
    ("PUT", "/incidents/{incident}/accounts/A1/recovery",
     {"json": {"categories": [{"category": "ph otos", "state": "lost"}]}}, 422),
    ("POST", "/incidents/{incident}/affected-accounts", {"json": {"accounts": [{"account_number": ""}]}}, 422),
    ("POST", "/incidents/{incident}/broadcasts", {"json": {"message": "x", "channels": ["sms"], "audience": {}}}, 422),
    ("POST", "/incidents/{incident}/broadcasts",
     {"json": {"message": "x", "channels": ["sms"], "subject": "a\nb"}}, 422),
    ("POST", "/incidents/{incident}/broadcasts",
     {"json": {"message": "x", "channels": ["sms"], "audience": {"categories": ["Photos"]}}}, 422),
    ("POST", "/incidents/{incident}/offer-programs", {"json": _program(value=1e300)}, 422),
    ("POST", "/incidents/{incident}/offer-programs", {"json": _program(value="0.00")}, 422),
    ("POST", "/incidents/{incident}/offer-programs", {"json": _program(value="1e3")}, 422),
    ("POST", "/incidents/{incident}/offer-programs", {"json": _program(currency="XYZ")}, 422),
    ("POST", "/incidents/{incident}/offer-programs", {"json": _program(months=3)}, 422),
    ("POST", "/incidents/{incident}/offer-programs", {"json": _program(valid_until="9999-12-31T23:59:59-23:00")}, 422),
    ("PATCH", "/offer-programs/{program}", {"json": {"budget_cap": 1e300}}, 422),
    ("POST", "/offer-programs/{program}/close", {"json": {"reason": "   "}}, 422),
    ("POST", "/offer-grants/2147483647/revoke", {"json": {"reason": "\x85\u3000"}}, 422),  # white space to Python
    ("POST", "/offer-programs/{program}/fulfil", {"json": {"codes": ["--"]}}, 422),
    ("POST", "/offer-grants/2147483648/revoke", {"json": {"reason": "x"}}, 404),
]

ACCEPTED = [
    ("GET", "/incidents?limit=100&offset=2147483647", {}),
    ("GET", "/incidents/{incident}/affected-accounts?offset=2147483647&q=%20", {}),
    ("GET", "/incidents/{incident}/affected-accounts?category=photos&category_state=lost", {}),
    ("POST", "/components", {"json": {"name": "Last", "position": 100000}}),
    ("POST", "/components", {"json": {"name": "After the last"}}),  # the next position cannot go higher
    ("POST", "/component-groups", {"json": {"name": "First", "position": 0}}),
    ("PATCH", "/components/{component}", {"json": {"group_id": 0, "description": ""}}),
    ("POST", "/incidents", {"json": {"name": "Old", "message": "m", "started_at": "1970-01-01T00:00:00Z",
                                     "component_statuses": {"000{component}": "major_outage"}}}),
    ("POST", "/maintenances", {"json": {"name": "Far", "message": "m", "scheduled_for": "2999-12-31T23:00:00-23:59",
                                        "scheduled_until": "2999-12-31T23:59:59.999999999-23:59"}}),
    ("POST", "/maintenances/{maintenance}/updates", {"json": {"status": "scheduled", "message": "Moved."}}),
    ("POST", "/incidents", {"json": {"name": "Keyed", "message": "m"}, "headers": {"Idempotency-Key": "k " * 127}}),
    ("PUT", "/incidents/{incident}/accounts/A1/recovery", {"json": {"categories": [
        {"category": " Contacts ", "state": "lost", "items_total": 2000000000, "items_recovered": 0}]}}),
    ("POST", "/incidents/{incident}/broadcasts", {"json": {"message": "x", "channels": ["sms"],
                                                           "subject": "One line", "audience": {"states": ["lost"]}}}),
    ("POST", "/incidents/{incident}/offer-programs", {"json": _program(value="9999999999.99", currency="usd",
                                                                       budget_cap="")}),
    ("POST", "/incidents/{incident}/offer-programs", {"json": _program(kind="free_months", months=24,
                                                                       value=9999999999.99)}),
    # JSON Schema takes 4.0 for an integer, and so does the server
    ("POST", "/incidents/{incident}/offer-programs", {"json": _program(kind="free_months", months=2.0,
                                                                       remind_days_before=4.0)}),
    ("PUT", "/incidents/{incident}/accounts/A1/recovery", {"json": {"categories": [
        {"category": "photos", "state": "partially_recovered", "items_total": 10.0, "items_recovered": 4.0}]}}),
    ("POST", "/component-groups", {"json": {"name": "Whole", "position": 3.0}}),
    ("PUT", "/incidents/{incident}/recovery-categories", {"json": {"categories": [" Contacts ", "photos", "",
                                                                                 "call-log"]}}),
    # a row the import refuses (a tab in the account number) is skipped with skip_invalid, not the request
    ("POST", "/incidents/{incident}/affected-accounts", {"json": {"skip_invalid": True, "accounts": [
        {"account_number": "A\t9"}, {"account_number": " A10 ", "locale": "es_mx"}]}}),
]


def test_requests_the_document_forbids_are_refused_with_a_documented_status(app, api, world):
    spec = OpenAPI.from_dict(openapi.document())
    problems = []
    for method, path, kwargs, status in REFUSED:
        path = path.format(**world)
        if not _document_refuses(spec, api.secret, method, path, kwargs):
            problems.append(f"{method} {path}: the document allows it")
        try:
            answer = api.request(method, path, **kwargs)  # checks that the answer is documented
        except AssertionError as e:
            problems.append(f"{method} {path}: {e}")
            continue
        if answer.status_code != status:
            problems.append(f"{method} {path}: {answer.status_code}, not {status}: {answer.get_data(as_text=True)}")
    assert not problems, "\n".join(problems)


def test_query_integers_are_ascii_digits_only(api):
    for path in NOT_INTEGERS:
        response = api.get(path)
        assert response.status_code == 422, path
        assert set(response.get_json()["error"]["fields"].values()) == {"Must be a whole number."}


def test_requests_the_document_allows_are_accepted(app, api, world):
    spec = OpenAPI.from_dict(openapi.document())
    problems = []
    for method, path, kwargs in ACCEPTED:
        path = path.format(**world)
        if "json" in kwargs:
            kwargs = {**kwargs, "json": _format(kwargs["json"], world)}
        if _document_refuses(spec, api.secret, method, path, kwargs):
            problems.append(f"{method} {path}: the document refuses it")
        try:
            answer = api.request(method, path, **kwargs)
        except AssertionError as e:
            problems.append(f"{method} {path}: {e}")
            continue
        if not 200 <= answer.status_code < 300:
            problems.append(f"{method} {path}: {answer.status_code} {answer.get_data(as_text=True)}")
    assert not problems, "\n".join(problems)


def _format(value, world):
    """{incident} and the like replaced in a JSON body's keys and strings."""
    if isinstance(value, dict):
        return {_format(k, world): _format(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [_format(v, world) for v in value]
    return value.format(**world) if isinstance(value, str) and "{" in value else value


def test_an_id_beyond_a_database_integer_is_not_found_whatever_the_method(app, api):
    """Werkzeug used to answer 405 (not documented) when another method's route for the path was tried first."""
    for template, method in sorted(api_operations(app)):
        if not re.search(r"\{\w*_id\}", template):  # no id in the path (an account number, a dataset's name)
            continue
        for big in BIG_IDS:
            path = template.replace("{account_number}", "A1")
            path = re.sub(r"\{[^}]+\}", big, path)
            response = api.request(method.upper(), path, json={} if method in ("post", "put", "patch") else None)
            assert response.status_code == 404, (method, path, response.status_code)
            assert response.get_json()["error"]["status"] == 404


def test_the_recovery_address_is_never_read_as_an_account(api, world):
    incident = world["incident"]
    api.post(f"/incidents/{incident}/affected-accounts", json={"accounts": [{"account_number": "A2/recovery"}]})
    # GET on the recovery route's address: that route only takes PUT
    for path in (f"/incidents/{incident}/accounts/A1/recovery", f"/incidents/{incident}/accounts/A2%2Frecovery"):
        response = api.get(path)
        assert response.status_code == 405, path
        assert "GET" not in response.headers["Allow"] and "PUT" in response.headers["Allow"]
        assert response.get_json()["error"]["status"] == 405
    # the recovery route answers as documented, for an account whose number ends in /recovery too
    body = {"categories": [{"category": "photos", "state": "lost"}]}
    assert api.request("PUT", f"/incidents/{incident}/accounts/A1/recovery", json=body).status_code == 200
    done = api.request("PUT", f"/incidents/{incident}/accounts/A2%2Frecovery/recovery", json=body)
    assert done.status_code == 200 and done.get_json()["account_number"] == "A2/recovery"
    # accounts with a slash that do not end in /recovery are read as before
    api.post(f"/incidents/{incident}/affected-accounts", json={"accounts": [{"account_number": "B/2"}]})
    assert api.get(f"/incidents/{incident}/accounts/B%2F2").get_json()["account_number"] == "B/2"
    # the document says which account numbers the read route takes
    param = next(p for p in api.doc["paths"]["/incidents/{incident_id}/accounts/{account_number}"]["get"]["parameters"]
                 if p["name"] == "account_number")
    assert "/recovery" in param["description"]


def test_body_less_posts_document_the_media_type_size_and_key_answers(app, api, world):
    app.config["MAX_CONTENT_LENGTH"] = 100
    url = f"/offer-programs/{world['program']}/issue"
    assert api.post(url, data="x", content_type="text/plain").status_code == 415
    assert api.post(url, data="{}" + " " * 200, content_type="application/json",
                    headers={"Idempotency-Key": "big"}).status_code == 413
    assert api.post(url, headers={"Idempotency-Key": "k" * 256}).status_code == 400


def test_every_post_with_idempotency_documents_the_key_and_its_answers(app, api):
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/") or "POST" not in rule.methods:
            continue
        template = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)[len(PREFIX):]
        op = api.doc["paths"][template]["post"]
        keyed = {"$ref": "#/components/parameters/IdempotencyKey"} in op.get("parameters", [])
        transactional = getattr(app.view_functions[rule.endpoint], "api_transactional", False)
        assert keyed == transactional, template
        if keyed:
            assert {"400", "409", "413", "415", "422"} <= set(op["responses"]), template


def test_every_operation_lists_the_errors_its_parts_can_cause(api):
    for template, item in api.doc["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            if template == "/openapi.json":
                continue
            assert {"401", "403"} <= codes, (method, template)
            if "{" in template:
                assert "404" in codes, (method, template)
            if any(p.get("in") == "query" for p in op.get("parameters", [])):
                assert "422" in codes, (method, template)
            if "requestBody" in op:
                assert {"400", "413", "415", "422"} <= codes, (method, template)
            for param in op.get("parameters", []):
                schema = param.get("schema", {})
                if schema.get("type") == "integer":
                    assert schema.get("maximum", 2**63) <= 2**31 - 1, (method, template, param["name"])


def test_the_documents_unstorable_characters_are_the_servers():
    import core.text

    """The same characters, but for lone surrogates, which the document names in words (a pattern cannot)."""
    documented = re.compile(openapi.UNSTORABLE)
    for code in [*range(0xD800), *range(0xE000, 0x10000), 0x1F600, 0x10FFFF]:
        char = chr(code)
        assert bool(documented.search(char)) == bool(core.text.UNSTORABLE.search(char)), hex(code)
    assert "lone surrogates" in openapi.document()["info"]["description"]


def test_not_blank_means_what_the_server_strips():
    """A text is blank for the server when str.strip() leaves nothing; the document spells the same set out."""
    not_blank = re.compile(openapi.NOT_BLANK)
    for code in [*range(0xD800), *range(0xE000, 0x10000), 0x1F600, 0x10FFFF]:
        char = chr(code)
        assert bool(not_blank.search(char)) == (not char.isspace()), hex(code)
