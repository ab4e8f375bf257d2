"""The OpenAPI document the app serves, read at collection time from an app on an in-memory database
(serving the document reads no data), so the fuzz tests can be parametrized by its operations."""
from functools import lru_cache

from app import create_app

OPENAPI = "/api/ops/v1/openapi.json"
BASE = "/api/ops/v1"


@lru_cache(maxsize=1)
def doc_app():
    return create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "fuzz-openapi", "TESTING": True})


@lru_cache(maxsize=1)
def document() -> dict:
    response = doc_app().test_client().get(OPENAPI)
    assert response.status_code == 200, response.status_code
    return response.get_json()


def json_body_operations() -> list[tuple[str, str, dict, list[str]]]:
    """(METHOD, path template, request body schema, path parameter names) of every operation with a JSON body."""
    doc = document()
    out = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            schema = content["application/json"]["schema"]
            if "$ref" in schema:
                schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
            params = [p["name"] for p in op.get("parameters", []) if p.get("in") == "path"]
            out.append((method.upper(), path, schema, params))
    return out
