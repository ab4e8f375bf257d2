"""Hostile JSON bodies for every ops API operation that takes one: never a server error.

Schemathesis (test_api_schemathesis.py) writes bodies with an ordinary JSON encoder from ordinary
Unicode text. These go further: a fixed corpus (each string field of a full body set to a lone surrogate, NUL, a
duplicate non-ASCII name, a formula...), then values shaped like the operation's request schema (so most pass the
schema check and reach the service and the database) but holding lone surrogates, NUL, controls,
formula prefixes, confusable names that collide when case is ignored, 64-bit-overflowing integers and
out-of-range dates; and raw bodies no encoder writes (5,000-deep nesting, 5,000-digit numbers, NaN,
invalid UTF-8, BOMs, duplicate keys). Path ids are the seeded ones, so the body is what gets judged."""
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.apidoc import BASE, json_body_operations
from tests.fuzz.findings import crash_site, exception_key
from tests.fuzz.seed import seed
from tests.fuzz.settings import fuzz_settings
from tests.fuzz import strategies as hs

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = 60
OPERATIONS = json_body_operations()
CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "application/json; charset=latin-1",
                 "application/merge-patch+json"]


def body_and_type(schema: dict):
    encoded = hs.from_schema(schema).map(lambda v: json.dumps(v).encode())  # lone surrogates become \ud800
    return st.tuples(st.one_of(encoded, encoded, encoded, hs.raw_json_bodies()),
                     st.one_of(st.just(CONTENT_TYPES[0]), st.sampled_from(CONTENT_TYPES)))


@pytest.mark.parametrize("method,path,schema,params", OPERATIONS, ids=[f"{m} {p}" for m, p, _s, _p in OPERATIONS])
def test_hostile_json_bodies_never_cause_a_server_error(fuzz_app, findings, method, path, schema, params):
    seeded = seed()
    url = BASE + re.sub(r"\{(\w+)\}", lambda m: str(seeded.ids[m.group(1)][0]), path)
    client = fuzz_app.test_client()
    auth = {"Authorization": f"Bearer {seeded.token}"}

    @fuzz_settings(MAX_EXAMPLES)
    @given(body_and_type(schema), st.sampled_from([None, "fuzz-key"]))
    def send(body_type, idempotency_key):
        body, content_type = body_type
        headers = dict(auth)
        if idempotency_key and method == "POST":
            headers["Idempotency-Key"] = f"{idempotency_key}-{len(body)}"
        fuzz_app.fuzz_errors.clear()
        response = client.open(url, method=method, data=body, headers=headers, content_type=content_type)
        if response.status_code >= 500:
            tb = fuzz_app.fuzz_errors[-1] if fuzz_app.fuzz_errors else ""
            exception, site = crash_site(tb)
            shown = body if len(body) <= 300 else body[:120] + b"...(%d bytes)" % len(body)
            findings.add((method, path, response.status_code, exception_key(tb)),
                         f"{method} {path}: {response.status_code}",
                         f"{method} {url} Content-Type: {content_type} body={shown!r}",
                         f"{exception}\n    at {site}")

    for body in hs.corpus_bodies(schema):  # the fixed corpus first, the same on every run
        send.hypothesis.inner_test((body, CONTENT_TYPES[0]), None)
    send()
