"""Web plumbing: CSRF, error pages (HTML or JSON), template filters, security and cache headers, compression."""
import gzip
import hashlib
from datetime import datetime

import brotli
from flask import Request, Response, current_app, g, has_request_context, jsonify, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from markupsafe import Markup, escape
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.datastructures import ImmutableMultiDict, MultiDict
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import IntegerConverter, ValidationError

from core import i18n, markdown
from core.errors import ServiceError
from core.text import strip_unstorable

csrf = CSRFProtect()


class CleanParams(ImmutableMultiDict):
    """Query strings and form fields without the characters nothing here can store (see core.text)."""

    def __init__(self, mapping=None):
        if mapping is not None:
            if isinstance(mapping, MultiDict):
                items = mapping.items(multi=True)
            elif isinstance(mapping, dict):
                items = [(k, v) for k, vs in mapping.items() for v in (vs if isinstance(vs, (list, tuple)) else [vs])]
            else:
                items = mapping
            # A multipart part without a name arrives with the key None: no form field can want it.
            mapping = [(_clean(k), _clean(v)) for k, v in items if isinstance(k, str)]
        super().__init__(mapping)


def _clean(value):
    return strip_unstorable(value) if isinstance(value, str) else value  # file parts pass untouched


class SessionInterface(SecureCookieSessionInterface):
    """Signed cookie sessions, except on shared pages (stored renders, core.renders): one answer serves
    everyone there, so it must neither set a cookie (a CDN could hand one visitor's session to the next) nor
    say "Vary: Cookie" (Flask-Login reads the session on every request, and a CDN would then cache nothing)."""

    def save_session(self, app, session, response) -> None:
        if g.get("shared_page"):
            return
        super().save_session(app, session, response)


class CleanRequest(Request):
    parameter_storage_class = CleanParams


def wants_json() -> bool:
    """API and JSON routes answer errors in JSON; pages answer with an HTML page."""
    path = request.path
    return path.startswith("/api/") or path.endswith(".json") or path.startswith("/webhooks/")


def json_error(status: int, message: str, fields: dict | None = None) -> Response:
    body = {"error": {"status": status, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    response = jsonify(body)
    response.status_code = status
    return response


def _http_error(e: HTTPException):
    message = {
        400: "The request could not be understood. Check what was sent and try again.",
        404: "There is nothing here. Check the address.",
        405: f"This address does not accept {request.method} requests.",
        413: "What was sent is too large.",
    }.get(e.code, e.description)
    if isinstance(e, CSRFError):
        message = "Your form session expired or the form was not sent from this site. Reload the page and submit again."
    if wants_json():
        response = json_error(e.code or 500, message)
    else:
        response = Response(render_template("errors/error.html", code=e.code, title=e.name, message=message),
                            status=e.code)
    if e.code == 405 and hasattr(e, "valid_methods") and e.valid_methods:
        response.headers["Allow"] = ", ".join(e.valid_methods)
    return response


def _server_error(e: Exception):
    # Unhandled errors are logged with their traceback by Flask; the user sees a calm page.
    if wants_json():
        return json_error(500, "Something went wrong on our side. It has been logged; please try again.")
    return render_template("errors/error.html", code=500, title="Something went wrong",
                           message="Something went wrong on our side. It has been logged; please try again."), 500


def _refused_by_the_database(status: int, title: str, message: str, what: str):
    """An error handler for a database error the request caused: roll back (nothing applied), log it so the gap
    gets closed, and answer `status` with `message`, as a page or as JSON."""
    def handler(e: Exception):
        from core.db import db

        db.session.rollback()
        current_app.logger.warning("%s on %s %s: %s", what, request.method, request.path, e)
        if wants_json():
            return json_error(status, message)
        return render_template("errors/error.html", code=status, title=title, message=message), status
    return handler


# A value that slipped past validation but does not fit its column (a 30-digit id, a huge page number): the
# request is at fault, so a 400, never a 500.
_out_of_range = _refused_by_the_database(
    400, "Bad request", "A number or value in the request is out of range. Check what was sent and try again.",
    "Out-of-range input")
# Another request changed or deleted the same rows between our read and our write (a PATCH racing a DELETE, two
# creates of one name): the request cannot apply as asked. 409, never a 500.
_concurrent_change = _refused_by_the_database(
    409, "Changed meanwhile", "Someone else changed or deleted this at the same moment. Reload the page and try again.",
    "Concurrent change")


COMPRESSIBLE = {"text/html", "text/plain", "text/csv", "text/css", "application/json", "application/javascript",
                "application/atom+xml", "image/svg+xml"}
MIN_COMPRESS_BYTES = 500


def compress(response: Response) -> Response:
    """Text answers made per request, in brotli or gzip as the client accepts (public pages are stored
    compressed by core.renders and pass through untouched). Files and streams are left as they are."""
    if (response.direct_passthrough or response.is_streamed or "Content-Encoding" in response.headers
            or not 200 <= response.status_code < 300 or response.mimetype not in COMPRESSIBLE):
        return response
    response.vary.add("Accept-Encoding")
    encoding = negotiate_encoding()
    body = response.get_data()
    if encoding is None or len(body) < MIN_COMPRESS_BYTES:
        return response
    response.set_data(brotli.compress(body, quality=4) if encoding == "br" else gzip.compress(body, 6))
    response.headers["Content-Encoding"] = encoding
    etag, weak = response.get_etag()
    if etag:
        response.set_etag(f"{etag}-{encoding}", weak)
    return response


def negotiate_encoding() -> str | None:
    """"br" or "gzip" when the client accepts it (brotli first at equal quality), else None (identity);
    werkzeug parses the header, so "q=0" means "not this one"."""
    accepted = request.accept_encodings
    br, gz = accepted.quality("br"), accepted.quality("gzip")
    if br > 0 and br >= gz:
        return "br"
    return "gzip" if gz > 0 else None


class IdConverter(IntegerConverter):
    """`<int:...>` in routes: ids beyond a database integer are simply not found (404), not a crash.

    Not found whatever the method: a value refused here ends the match, and Werkzeug would otherwise
    answer 405 when another method's rule for the same path was tried first. ASCII digits only."""

    regex = r"[0-9]+"

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)

    def to_python(self, value: str) -> int:
        try:
            return super().to_python(value)
        except ValidationError:
            raise NotFound() from None


def _service_error(e: ServiceError):
    if wants_json():
        return json_error(e.status, e.message, e.fields)
    return render_template("errors/error.html", code=e.status, title="Not possible", message=e.message), e.status


def duration(seconds: float) -> str:
    """How long, for an operator: 'under a second', '45 s', '3 min 20 s', '2 h 5 min', '3 d 4 h'."""
    s = max(0, int(round(seconds)))
    if s == 0:
        return "under a second"
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    if d:
        return f"{d} d {h} h" if h else f"{d} d"
    if h:
        return f"{h} h {m} min" if m else f"{h} h"
    if m:
        return f"{m} min {sec} s" if sec else f"{m} min"
    return f"{sec} s"


def local_time(value: datetime | None, fmt: str = "%b %d, %Y %H:%M UTC") -> Markup:
    """A <time> element: UTC text for no-JS readers; static/app.js rewrites it to the viewer's zone."""
    if value is None:
        return Markup("")
    iso = value.isoformat().replace("+00:00", "Z")
    # A subscriber's page (core.i18n.use) says it in their language's CLDR form; the console keeps its own.
    text = i18n.medium(value, g.lang) if has_request_context() and g.get("lang") else value.strftime(fmt)
    return Markup(f'<time datetime="{iso}" title="{escape(value.strftime("%Y-%m-%d %H:%M:%S UTC"))}">'
                  f"{escape(text)}</time>")


def cached(response: Response, max_age: int, last_modified: datetime | None = None) -> Response:
    """Public caching: ETag from the body, optional Last-Modified, short max-age; answers 304 when fresh."""
    response.cache_control.public = True
    response.cache_control.max_age = max_age
    if last_modified is not None:
        response.last_modified = last_modified
    response.set_etag(hashlib.sha256(response.get_data()).hexdigest()[:32])
    return response.make_conditional(request)


PRIVATE_PREFIXES = ("/ops", "/api/ops/")


def init_app(app) -> None:
    app.request_class = CleanRequest
    app.session_interface = SessionInterface()
    app.after_request(compress)
    # Before any blueprint is registered, so every `<int:...>` route uses it.
    app.url_map.converters["int"] = IdConverter
    csrf.init_app(app)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(500, _server_error)
    app.register_error_handler(OverflowError, _out_of_range)  # SQLite: int too large for INTEGER
    app.register_error_handler(DataError, _out_of_range)  # PostgreSQL: integer out of range, etc.
    app.register_error_handler(StaleDataError, _concurrent_change)  # the row was deleted under an update
    app.register_error_handler(IntegrityError, _concurrent_change)  # a unique row committed meanwhile
    app.jinja_env.filters["markdown"] = markdown.render
    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.filters["duration"] = duration
    # Lets the console menu show only the pages that exist in this build.
    app.jinja_env.globals["has_endpoint"] = lambda endpoint: endpoint in app.view_functions

    @app.after_request
    def security_headers(response: Response) -> Response:
        if request.is_secure:  # https, directly or as the proxies report it (PROXY_FIX_HOPS)
            response.headers.setdefault("Strict-Transport-Security",
                                        f"max-age={app.config['HSTS_SECONDS']}; includeSubDomains")
        if request.path.startswith(PRIVATE_PREFIXES) and not response.cache_control.public:
            # Signed-in pages, API answers and exports show personal data: never kept by a browser's back
            # button, a shared machine's disk cache or a proxy.
            response.headers["Cache-Control"] = "no-store"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'",
        )
        return response
