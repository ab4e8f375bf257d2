"""`ApiClient`, which every ops API test uses: it calls the API with a bearer token and checks every answer
against the OpenAPI document (the status must be documented for that operation and the body must validate
against its schema); `CsvAwareClient` also accepts documented CSV answers; `api_operations` lists the API's routes. The `api` fixture is in tests/conftest.py."""
import re
from urllib.parse import unquote

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


PREFIX = "/api/ops/v1"
DOC_URI = "urn:lifeboat:ops-openapi"
WRITE_OR_READ = {"GET", "POST", "PATCH", "PUT", "DELETE"}


def route_template(rule: str) -> str:
    """"/api/ops/v1/incidents/<int:incident_id>" -> "/incidents/{incident_id}"."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)[len(PREFIX):]


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


class ApiClient:
    """Calls the ops API with a bearer token and checks each answer against the OpenAPI document."""

    def __init__(self, client, secret: str | None):
        self.client = client
        self.secret = secret
        self.doc = client.get(f"{PREFIX}/openapi.json").get_json()
        self.registry = Registry().with_resource(
            DOC_URI, Resource.from_contents(self.doc, default_specification=DRAFT202012))
        self.seen: set[tuple[str, str]] = set()

    def request(self, method: str, path: str, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if self.secret:
            headers.setdefault("Authorization", f"Bearer {self.secret}")
        response = self.client.open(PREFIX + path, method=method, headers=headers, **kwargs)
        self.check(method, path.split("?")[0], response)
        return response

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def check(self, method: str, path: str, response) -> None:
        """Assert the answer is documented for this operation and matches its schema.

        The operation is found the way an OpenAPI client finds it, in the document: a path parameter is one
        path segment (a "/" inside a value travels as %2F). An address no path describes must answer 404, a
        method its path does not describe 405, both with the JSON error; a documented operation must answer
        a status it documents (405 is allowed too when a path parameter breaks its documented schema: the
        URL then belongs to another route, as GET .../accounts/A1%2Frecovery does)."""
        template = self.template(path)
        if template is None or method.lower() not in self.doc["paths"][template]:
            assert response.status_code == (404 if template is None else 405), (method, path, response.status_code)
            self._validate(response.get_json(), _pointer("components", "schemas", "Error"))
            return
        operation = self.doc["paths"][template][method.lower()]
        status = str(response.status_code)
        if status == "405" and not self.path_params_fit(template, path):
            self._validate(response.get_json(), _pointer("components", "schemas", "Error"))
            return
        assert status in operation["responses"], f"{method} {template} answered {status}, which is not documented"
        self.seen.add((template, method.lower()))
        answer = operation["responses"][status]
        pointer = _pointer("paths", template, method.lower(), "responses", status)
        if "$ref" in answer:
            name = answer["$ref"].rsplit("/", 1)[1]
            answer, pointer = self.doc["components"]["responses"][name], _pointer("components", "responses", name)
        if "content" not in answer:
            assert response.get_data() == b""
            return
        assert response.mimetype == "application/json"
        self._validate(response.get_json(), pointer + _pointer("content", "application/json", "schema"))

    def template(self, path: str) -> str | None:
        """The documented path template that `path` (as sent, percent-encoded) matches, literal ones first."""
        matches = [t for t in self.doc["paths"] if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(t)), path)]
        return min(matches, key=lambda t: t.count("{"), default=None)

    def path_params_fit(self, template: str, path: str) -> bool:
        """Whether each path parameter's value (decoded) fits the schema the document gives it."""
        names = re.findall(r"\{([^}]+)\}", template)
        values = re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template)), path).groups()
        params = {p["name"]: p["schema"] for item in self.doc["paths"][template].values()
                  for p in item.get("parameters", []) if p.get("in") == "path"}
        for name, raw in zip(names, values):
            value = unquote(raw)
            if params[name].get("type") == "integer":
                if not re.fullmatch(r"-?[0-9]+", value):
                    return False
                value = int(value)
            if not Draft202012Validator(params[name]).is_valid(value):
                return False
        return True

    def _validate(self, body, pointer: str) -> None:
        validator = Draft202012Validator({"$ref": DOC_URI + "#" + pointer}, registry=self.registry,
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, errors


def api_operations(app) -> set[tuple[str, str]]:
    """(template, method) for every route of the ops API."""
    return {(route_template(rule.rule), method.lower())
            for rule in app.url_map.iter_rules() if rule.rule.startswith(PREFIX + "/")
            for method in rule.methods & WRITE_OR_READ}


class CsvAwareClient(ApiClient):
    """ApiClient that also accepts a text/csv answer its operation documents (the test reads the CSV itself)."""

    def check(self, method, path, response):
        if response.mimetype != "text/csv":
            return super().check(method, path, response)
        adapter = self.client.application.url_map.bind("localhost")
        rule, _args = adapter.match(PREFIX + path, method=method, return_rule=True)
        template = route_template(rule.rule)
        answer = self.doc["paths"][template][method.lower()]["responses"][str(response.status_code)]
        assert "text/csv" in answer["content"], f"{method} {template} answered CSV, which is not documented"
        self.seen.add((template, method.lower()))
