"""Schemathesis against the live OpenAPI document of the ops API (/api/ops/v1/openapi.json), in process.

Every operation the document describes is called with generated requests (valid and invalid ones) through
the WSGI app, with a real admin API token, on a database seeded with an incident, components, affected
accounts, offers and a broadcast (tests/fuzz/seed.py). Three in four cases have their path ids replaced by
seeded ones, so GET/PATCH/PUT reach existing resources, not only 404s. Each response must:
- not be a server error (not_a_server_error),
- use a status code the document lists for the operation (status_code_conformance),
- match the response schema the document gives for that status (response_schema_conformance).

The schema is loaded at collection from the document the app serves (an app on an in-memory database:
serving the document reads no data); the requests go to `fuzz_app`, the suite's app on the real test
database. (schemathesis.pytest.from_fixture would load it per test, but does not run on pytest 9.2.)"""
import zlib

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup, ServerError
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.fuzz.apidoc import OPENAPI, doc_app
from tests.fuzz.findings import crash_site, exception_key
from tests.fuzz.seed import seed
from tests.fuzz.settings import examples

pytestmark = pytest.mark.fuzz

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
MAX_EXAMPLES = 20  # per operation in the fuzzing phase; the examples and coverage phases add their own cases

SUPPRESSED = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
              HealthCheck.large_base_example, HealthCheck.function_scoped_fixture]

# Real values of path parameters ({"incident_id": [1], ...}), filled by the fixture after seeding and read
# as each case is sent.
REAL: dict[str, list] = {}

CONFIG = schemathesis.Config.from_dict({
    "seed": 20091010,  # fixed, so the coverage phase picks the same cases every run
    "generation": {
        "mode": "all",  # valid requests and invalid ones
        "max-examples": examples(MAX_EXAMPLES),
        "deterministic": True,  # Hypothesis derandomize: CI runs the same inputs every time
        "database": "none",
        "allow-x00": True,  # NUL bytes in strings
    },
    # The coverage phase builds its cases when tests are collected, and its over-long strings for the document's
    # patterns (text without unstorable characters, up to 2,000 long) took minutes to draw: fuzzing covers them.
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": False}, "fuzzing": {"enabled": True},
               "stateful": {"enabled": False}},
})

schema = schemathesis.openapi.from_wsgi(OPENAPI, doc_app(), config=CONFIG)


def aim_at_real_ids(case) -> None:
    """Point three in four cases at seeded resources: a path parameter with seeded values is replaced by
    one of them, chosen by a hash of the whole generated case (so the same case maps the same way every run);
    the rest keep the generated value (unknown ids, out-of-range numbers, odd strings). This works for
    every phase, including the coverage cases schemathesis builds before the test runs."""
    body = case.body if isinstance(case.body, (dict, list, str, bytes, int, float, bool)) else None  # not NOT_SET's id
    for name, value in list((case.path_parameters or {}).items()):
        real = REAL.get(name)
        h = zlib.crc32(repr((name, value, case.query, body)).encode("utf-8", "surrogatepass"))
        if real and h % 4:
            case.path_parameters[name] = real[(h // 4) % len(real)]


@pytest.fixture
def api(fuzz_app, findings):
    seeded = seed()
    REAL.clear()
    REAL.update(seeded.ids)
    yield fuzz_app, {"Authorization": f"Bearer {seeded.token}"}, findings
    REAL.clear()


@schema.parametrize()
# The seeded database is shared by an operation's examples on purpose (ids stay real, writes pile up).
@settings(suppress_health_check=SUPPRESSED)
def test_ops_api_conforms_to_its_openapi_document(case, api):
    app, auth, findings = api
    app.fuzz_errors.clear()
    aim_at_real_ids(case)
    # The WSGI callable, not the Flask object: for a Flask app schemathesis re-raises a request's exception
    # instead of returning its 500, which would end this operation's run at its first crash.
    # Identity encoding: called as WSGI, nothing would undo the brotli or gzip a real client asks for.
    response = case.call(app=app.wsgi_app, headers={**auth, "Accept-Encoding": "identity"})
    try:
        case.validate_response(response, checks=CHECKS, headers=auth)
    except FailureGroup as group:
        failures = group.exceptions
    except Failure as failure:
        failures = [failure]
    else:
        return
    for failure in failures:
        key: tuple = (case.operation.label, failure.code, getattr(failure, "_unique_key", failure.title))
        detail = ""
        if isinstance(failure, ServerError):
            tb = app.fuzz_errors[-1] if app.fuzz_errors else ""
            key += (exception_key(tb),)
            exception, site = crash_site(tb)
            detail = f"{exception}\n    at {site}"
        else:
            detail = failure.message[:1500]
        findings.add(key, f"{case.operation.label}: {failure.code} {failure.title} "
                          f"[{response.status_code}]", case.as_curl_command(headers=auth), detail)
