"""A stand-in for Twilio's REST API on loopback.

Every request is checked against Twilio's own OpenAPI description with openapi-core; a request that breaks it
answers 400/401/404 with Twilio-shaped error JSON *and* lands in `invalid_requests`, so tests fail on it. Valid
message requests answer Twilio-shaped JSON; tests script errors, throttling, 5xx, slowness and hangs."""
import base64
import collections
import email.utils
import functools
import json
import os
import re
import secrets
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.validation.request.exceptions import SecurityValidationError
from twilio.request_validator import RequestValidator
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

# Twilio's own description (MIT, from twilio/twilio-oai), vendored beside this file so a clean clone has it.
SPEC_PATH = Path(os.environ.get(
    "TWILIO_OAI_SPEC", Path(__file__).resolve().parent / "twilio-oai" / "twilio_api_v2010.json"))
MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
MESSAGE = "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"
MESSAGES_RE = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Messages\.json$")
MESSAGE_RE = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Messages/(\w+)\.json$")

ACCOUNT_SID = "AC" + "5ca1ab1e" * 4
AUTH_TOKEN = "0123456789abcdef" * 2
FROM_NUMBER = "+15005550006"
MESSAGING_SERVICE_SID = "MG" + "5e1f1e55" * 4

ERRORS = {  # Twilio's wording for the codes tests script most
    20003: "Authenticate", 20404: "The requested resource was not found", 20429: "Too Many Requests",
    20500: "An internal server error has occurred", 20503: "Service is unavailable. Please try again",
    21000: "Invalid request", 21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
    21602: "Message body is required.", 21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.", 21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
}
GSM7 = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
        "¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXT = "^{}\\[~]|€\f"


@functools.lru_cache(maxsize=1)
def twilio_document() -> dict:
    """Twilio's 2010 API description as a dict, read once per process."""
    if not SPEC_PATH.is_file():
        raise FileNotFoundError(f"Twilio's API description is missing at {SPEC_PATH} (set TWILIO_OAI_SPEC)")
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def twilio_openapi() -> OpenAPI:
    """The parsed description, built once per process (seconds of work: the document is ~2 MB)."""
    # The document is Twilio's own and known-good: skipping the meta-validation saves most of the load time.
    return OpenAPI.from_dict(twilio_document(), config=Config(spec_validator_cls=None))


def _form_fields(path: str, method: str) -> set[str]:
    body = twilio_document()["paths"][path][method].get("requestBody", {})
    schema = body.get("content", {}).get("application/x-www-form-urlencoded", {}).get("schema", {})
    return set(schema.get("properties", {}))


@functools.lru_cache(maxsize=None)
def _free_text_fields(path: str, method: str) -> frozenset[str]:
    """Form fields whose validity cannot depend on their text: plain strings, no pattern, length, enum or format
    that openapi-core checks ("phone-number" is Twilio's own and unchecked)."""
    body = twilio_document()["paths"][path][method].get("requestBody", {})
    schema = body.get("content", {}).get("application/x-www-form-urlencoded", {}).get("schema", {})
    return frozenset(name for name, prop in schema.get("properties", {}).items()
                     if prop.get("type") == "string" and prop.get("format") in (None, "phone-number")
                     and not set(prop) - {"type", "format", "description"})


def _message_fields() -> list[str]:
    return list(twilio_document()["components"]["schemas"]["api.v2010.account.message"]["properties"])


def segments(body: str) -> int:
    """SMS segments Twilio bills for `body`: 160 GSM-7 (153 per part) or 70 UCS-2 (67 per part)."""
    if all(c in GSM7 or c in GSM7_EXT for c in body):
        length, single, part = sum(2 if c in GSM7_EXT else 1 for c in body), 160, 153
    else:
        length, single, part = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if length <= single else -(-length // part)


def sign(url: str, params: dict, auth_token: str = AUTH_TOKEN) -> str:
    """The X-Twilio-Signature Twilio would send with a webhook POST of `params` to `url`."""
    return RequestValidator(auth_token).compute_signature(url, params)


def _rfc2822(moment: datetime | None) -> str | None:
    return email.utils.format_datetime(moment) if moment else None


class _AsTwilio(WerkzeugOpenAPIRequest):
    """A loopback request presented as one to api.twilio.com, the only server the description lists."""

    @property
    def host_url(self) -> str:
        return twilio_document()["servers"][0]["url"] + "/"


class _QuietHandler(WSGIRequestHandler):
    def log(self, *args, **kwargs):  # one line per request would drown test output
        pass


class _Refusal(Exception):
    def __init__(self, status: int, code: int, message: str | None = None, *, invalid: list[str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.invalid = status, code, message or ERRORS.get(code, ""), invalid


class TwilioStandin:
    """Threaded HTTP server on 127.0.0.1 speaking Twilio's Messages API; use as a context manager."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN):
        self.account_sid, self.auth_token = account_sid, auth_token
        self.latency = 0.0  # seconds slept before every answer
        self.messages: list[dict] = []  # accepted messages, oldest first
        self.requests: list[dict] = []  # every request with the status it got
        self.invalid_requests: list[dict] = []  # requests that broke Twilio's API description
        self.accepted_at: list[float] = []  # time.monotonic() each accepted message arrived: the rate meter
        self._script: collections.deque = collections.deque()  # outcomes for the next message requests
        self._refuse_to: dict[str, tuple[int, int, str | None]] = {}
        self._verdicts: dict[tuple, object] = {}  # validation results by request shape, see _unmarshal
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = self._thread = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> "TwilioStandin":
        """Bind a free port and serve in a daemon thread."""
        twilio_openapi()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="twilio-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging answers and shut the server down."""
        self._stopping.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)

    def __enter__(self) -> "TwilioStandin":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def env(self) -> dict[str, str]:
        """Settings that point the product at this stand-in."""
        return {"TWILIO_ACCOUNT_SID": self.account_sid, "TWILIO_AUTH_TOKEN": self.auth_token,
                "TWILIO_API_BASE_URL": self.base_url, "TWILIO_FROM_NUMBER": FROM_NUMBER}

    def client(self, timeout: float | None = None, account_sid: str | None = None, auth_token: str | None = None):
        """A real twilio.rest.Client aimed at this stand-in, configured the way the product should do it."""
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        client = Client(account_sid or self.account_sid, auth_token or self.auth_token,
                        http_client=TwilioHttpClient(timeout=timeout))
        client.api.base_url = self.base_url
        return client

    # -- scripting (each call queues outcomes for the next message-create requests, in order) ---------------
    def fail_next(self, n: int = 1, code: int = 21211, status: int = 400, message: str | None = None) -> None:
        """The next `n` message requests get Twilio error `code` with HTTP `status`."""
        self._queue(n, ("fail", status, code, message))

    def throttle(self, n: int = 1) -> None:
        """The next `n` message requests get 429 with code 20429."""
        self._queue(n, ("fail", 429, 20429, None))

    def server_error(self, n: int = 1, status: int = 503) -> None:
        """The next `n` message requests get a 5xx answer."""
        self._queue(n, ("fail", status, 20503 if status == 503 else 20500, None))

    def hang_after_receive(self, seconds: float, n: int = 1) -> None:
        """The next `n` messages are accepted and recorded, then the answer waits `seconds` (a client timeout)."""
        self._queue(n, ("hang", seconds))

    def fail_for(self, to: str, code: int = 21610, status: int = 400, message: str | None = None) -> None:
        """Every message to `to` gets Twilio error `code` until `clear_failures()`."""
        with self._lock:
            self._refuse_to[to] = (status, code, message)

    def clear_failures(self) -> None:
        """Forget scripted outcomes and per-recipient failures."""
        with self._lock:
            self._script.clear()
            self._refuse_to.clear()

    def _queue(self, n: int, outcome: tuple) -> None:
        with self._lock:
            self._script.extend([outcome] * n)

    # -- reading what happened -------------------------------------------------------------------------------
    def take_invalid(self) -> list[dict]:
        """Return and forget the invalid requests (a test that sends them on purpose calls this)."""
        with self._lock:
            taken, self.invalid_requests[:] = list(self.invalid_requests), []
        return taken

    def rate(self) -> float:
        """Accepted messages per second between the first and the last one."""
        with self._lock:
            times = list(self.accepted_at)
        return 0.0 if len(times) < 2 or times[-1] == times[0] else (len(times) - 1) / (times[-1] - times[0])

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> dict:
        """Move a message on (e.g. "delivered", or "undelivered" with 30003), as Twilio would."""
        with self._lock:
            message = next(m for m in self.messages if m["sid"] == sid)
            message.update(status=status, error_code=error_code)
        return message

    def status_callback(self, sid: str) -> tuple[str, dict, dict]:
        """(url, form params, headers) of the signed status callback Twilio would POST for message `sid`."""
        m = next(m for m in self.messages if m["sid"] == sid)
        params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": self.account_sid, "From": m["from"] or "",
                  "To": m["to"], "MessageStatus": m["status"], "SmsStatus": m["status"], "ApiVersion": "2010-04-01"}
        if m["error_code"]:
            params["ErrorCode"] = str(m["error_code"])
        url = m["status_callback"]
        return url, params, {"X-Twilio-Signature": sign(url, params, self.auth_token)}

    # -- serving ---------------------------------------------------------------------------------------------
    def _wsgi(self, environ, start_response):
        arrived = time.monotonic()  # the rate meter's clock: when the request reached us, before any parsing
        request = Request(environ)
        request.get_data(cache=True)  # read the body first: openapi-core reads it, and the form is parsed from it
        form = request.form.to_dict(flat=False)
        try:
            status, payload = self._answer(request, form, arrived)
        except _Refusal as refusal:
            status = refusal.status
            payload = {"code": refusal.code, "message": refusal.message, "status": refusal.status,
                       "more_info": f"https://www.twilio.com/docs/errors/{refusal.code}"}
            if refusal.invalid:
                with self._lock:
                    self.invalid_requests.append({"method": request.method, "path": request.path, "form": form,
                                                  "errors": refusal.invalid, "status": status})
        with self._lock:
            self.requests.append({"method": request.method, "path": request.path, "form": form, "status": status,
                                  "code": payload.get("code") if status >= 400 else None, "time": time.time()})
        if self.latency:
            self._stopping.wait(self.latency)
        response = Response(json.dumps(payload), status=status, content_type="application/json")
        return response(environ, start_response)

    def _answer(self, request: Request, form: dict, arrived: float) -> tuple[int, dict]:
        self._validate(request, form)
        if request.method == "POST" and (match := MESSAGES_RE.match(request.path)):
            return 201, self._create(match.group(1), form, arrived)
        if request.method == "GET" and (match := MESSAGE_RE.match(request.path)):
            with self._lock:
                found = [m for m in self.messages if m["sid"] == match.group(2)]
            if not found:
                raise _Refusal(404, 20404, f"The requested resource {request.path} was not found")
            return 200, self._message_json(found[0])
        raise _Refusal(501, 20500, "Valid for Twilio but not implemented by the stand-in",
                       invalid=[f"{request.method} {request.path} is not implemented by the stand-in"])

    def _validate(self, request: Request, form: dict) -> None:
        """Refuse what breaks Twilio's description (recorded as invalid), then wrong credentials (401)."""
        result = self._unmarshal(request, form)
        for error in result.errors:
            detail = [str(getattr(e, "message", e)) for e in getattr(error.__cause__, "schema_errors", ())]
            detail = detail or [str(error.__cause__ or error)]
            if isinstance(error, SecurityValidationError):
                raise _Refusal(401, 20003, invalid=["no HTTP Basic credentials"])
            if isinstance(error, PathNotFound):
                raise _Refusal(404, 20404, f"The requested resource {request.path} was not found", invalid=detail)
            if isinstance(error, OperationNotFound):
                raise _Refusal(405, 20004, "Method not allowed", invalid=detail)
            code = 21604 if "'To' is a required property" in detail else 21000
            raise _Refusal(400, code, f"{ERRORS[code].rstrip('.')}: {'; '.join(detail)}", invalid=detail)
        # The form decoder silently drops names the description does not know: a misspelt field is a bug here.
        if request.method == "POST" and MESSAGES_RE.match(request.path):
            unknown = sorted(set(form) - _form_fields(MESSAGES, "post"))
            if unknown:
                raise _Refusal(400, 21000, f"Unknown parameters: {', '.join(unknown)}",
                               invalid=[f"unknown parameter {name}" for name in unknown])
        try:
            user, _, password = base64.b64decode(result.security["accountSid_authToken"]).decode().partition(":")
        except ValueError:  # not base64, or not text: Twilio answers the same as for a wrong token
            raise _Refusal(401, 20003) from None
        if (user, password) != (self.account_sid, self.auth_token) or result.parameters.path["AccountSid"] != user:
            raise _Refusal(401, 20003)

    def _unmarshal(self, request: Request, form: dict):
        """openapi-core's verdict on `request`, reused for requests that differ only in free-text values.

        Full validation costs ~20-40 ms (the form decoder walks all 25 message fields), which would cap a
        benchmark near 40 messages/s; a free-text value (Body, To, From) cannot change the verdict, its count can."""
        free = _free_text_fields(MESSAGES, "post") if MESSAGES_RE.match(request.path) else frozenset()
        shape = tuple(sorted((name, len(values) if name in free else tuple(values)) for name, values in form.items()))
        key = (request.method, request.path, request.query_string, request.content_type,
               request.headers.get("Authorization"), shape)
        with self._lock:
            result = self._verdicts.get(key)
        if result is None:
            result = twilio_openapi().unmarshal_request(_AsTwilio(request))
            with self._lock:
                if len(self._verdicts) > 10_000:
                    self._verdicts.clear()
                self._verdicts[key] = result
        return result

    def _create(self, account_sid: str, form: dict, arrived: float) -> dict:
        value = {name: values[-1] for name, values in form.items()}
        body, to = value.get("Body", ""), value.get("To")
        # Twilio's own rules beyond the description: the product must never break these either.
        if not to:
            raise _Refusal(400, 21604, invalid=["no To"])
        if not value.get("From") and not value.get("MessagingServiceSid"):
            raise _Refusal(400, 21603, invalid=["neither From nor MessagingServiceSid"])
        if not body and not form.get("MediaUrl") and not value.get("ContentSid"):
            raise _Refusal(400, 21602, invalid=["no Body, MediaUrl or ContentSid"])
        if len(body) > 1600:
            raise _Refusal(400, 21617, invalid=[f"Body is {len(body)} characters"])
        with self._lock:
            outcome = self._script.popleft() if self._script else None
            refusal = self._refuse_to.get(to)
        if outcome and outcome[0] == "fail":
            raise _Refusal(*outcome[1:])
        if refusal:
            raise _Refusal(*refusal)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        message = {"sid": "SM" + secrets.token_hex(16), "account_sid": account_sid, "to": to,
                   "from": value.get("From"), "messaging_service_sid": value.get("MessagingServiceSid"),
                   "body": body, "status": "queued", "status_callback": value.get("StatusCallback"),
                   "media_url": form.get("MediaUrl", []), "num_segments": segments(body), "error_code": None,
                   "date_created": now, "time": time.time(), "form": form}
        with self._lock:
            self.messages.append(message)
            self.accepted_at.append(arrived)
        if outcome and outcome[0] == "hang":
            self._stopping.wait(outcome[1])
        return self._message_json(message)

    def _message_json(self, m: dict) -> dict:
        uri = f"/2010-04-01/Accounts/{m['account_sid']}/Messages/{m['sid']}"
        fields = {
            "account_sid": m["account_sid"], "api_version": "2010-04-01", "body": m["body"],
            "date_created": _rfc2822(m["date_created"]), "date_updated": _rfc2822(m["date_created"]),
            "date_sent": None, "direction": "outbound-api", "error_code": m["error_code"], "error_message": None,
            "from": m["from"], "messaging_service_sid": m["messaging_service_sid"],
            "num_media": str(len(m["media_url"])), "num_segments": str(m["num_segments"]), "price": None,
            "price_unit": "USD", "sid": m["sid"], "status": m["status"],
            "subresource_uris": {"media": f"{uri}/Media.json"}, "to": m["to"], "uri": f"{uri}.json",
        }
        # Shape follows the description's schema: every documented property, nothing else.
        return {name: fields.get(name) for name in _message_fields()}
