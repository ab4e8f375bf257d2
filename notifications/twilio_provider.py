"""SMS through Twilio's official library, with every failure sorted into retry, give up, opt out or ambiguous."""
import threading

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from notifications.models import Notification
from notifications.providers import OPT_OUT_CODES, NotSent, ProviderError, Sent

STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
DEFAULT_TIMEOUT_SECONDS = 10.0

# Twilio error codes (https://www.twilio.com/docs/api/errors) that a later attempt may get past.
RETRYABLE_CODES = {20429, 30001, 30003}  # too many requests, queue overflow, unreachable handset
# Our own configuration is wrong (bad credentials): every message fails the same way until someone fixes
# the settings, so these are retried with backoff instead of failing the whole backlog for good.
CONFIGURATION_CODES = {20003}


class TwilioProvider:
    """Sends SMS through one Twilio account, from a Messaging Service or a phone number."""

    name = "twilio"
    paces_requests = True  # send(message, pace=...) calls pace() as the HTTP request leaves

    def __init__(self, *, account_sid: str, auth_token: str, status_callback: str | None,
                 messaging_service_sid: str | None = None, from_number: str | None = None,
                 api_base_url: str | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        if not (messaging_service_sid or from_number):
            raise ValueError("Twilio needs TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER")
        if not timeout or timeout <= 0:
            raise ValueError("a Twilio request timeout must be a positive number of seconds")
        self.account_sid, self.auth_token = account_sid, auth_token
        self.messaging_service_sid, self.from_number = messaging_service_sid or None, from_number or None
        self.status_callback, self.api_base_url, self.timeout = status_callback, api_base_url or None, timeout
        # TwilioHttpClient keeps one requests.Session plus per-call state on itself, and requests does not
        # promise a Session is thread-safe: so one client per worker thread, reused for all its sends.
        self._local = threading.local()

    @classmethod
    def from_config(cls, config) -> "TwilioProvider":
        """Build from TWILIO_* settings; the status callback points at PUBLIC_BASE_URL."""
        base = (config.get("PUBLIC_BASE_URL") or "").rstrip("/")
        return cls(account_sid=config["TWILIO_ACCOUNT_SID"], auth_token=config["TWILIO_AUTH_TOKEN"],
                   messaging_service_sid=config.get("TWILIO_MESSAGING_SERVICE_SID"),
                   from_number=config.get("TWILIO_FROM_NUMBER"),
                   api_base_url=config.get("TWILIO_API_BASE_URL"),
                   timeout=float(config.get("TWILIO_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT_SECONDS),
                   status_callback=base + STATUS_CALLBACK_PATH if base else None)

    @property
    def client(self) -> Client:
        """This thread's Twilio client (created on first use, then reused: its connections stay open)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = Client(self.account_sid, self.auth_token,
                            http_client=PacedHttpClient(self._local, timeout=self.timeout))
            if self.api_base_url:
                client.api.base_url = self.api_base_url.rstrip("/")
            self._local.client = client
        return client

    def warm_up(self) -> None:
        """Load what the first send would load lazily (the twilio library imports its API modules on first
        use: tens of milliseconds during which every sending thread waits, and sends bunch up behind)."""
        self.client.messages  # noqa: B018 — the attribute access is the import

    def send(self, message: Notification, pace=None) -> Sent:
        """Create the message at Twilio; returns its SID, or raises a classified ProviderError.

        `pace`, when given, is called once as the twilio library makes the HTTP request (PacedHttpClient), after
        it has built the message's parameters: the rate limiter then counts the moment Twilio sees, give or take
        the network. It may raise NotSent to give the message back unsent."""
        if not message.body:
            raise ProviderError("empty", "the message has no text to send", retryable=False)
        kwargs = {"to": message.recipient, "body": message.body}
        if self.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.messaging_service_sid
        else:
            kwargs["from_"] = self.from_number
        if self.status_callback:
            kwargs["status_callback"] = self.status_callback
        self._local.pace = pace
        try:
            created = self.client.messages.create(**kwargs)
        except NotSent:
            raise
        except Exception as e:  # noqa: BLE001 — every failure becomes a classified ProviderError
            raise classify(e) from e
        finally:
            self._local.pace = None
        segments = int(created.num_segments) if str(created.num_segments or "").isdigit() else None
        return Sent(provider_id=created.sid, segments=segments, raw=answer_of(created))


class PacedHttpClient(TwilioHttpClient):
    """Twilio's HTTP client (the library's supported hook for custom transports) that first runs this thread's
    pending `pace` callback, once, right as the library makes its request: the rate limiter then counts the
    moment Twilio sees, give or take the network."""

    def __init__(self, local: threading.local, **kwargs):
        super().__init__(**kwargs)
        self._local = local

    def request(self, *args, **kwargs):
        pace = getattr(self._local, "pace", None)
        if pace is not None:
            self._local.pace = None
            pace()
        return super().request(*args, **kwargs)


# Twilio's message resource, as it answered, minus what the message itself holds (text, addresses).
_NOT_KEPT = frozenset({"body", "to", "from_"})


def answer_of(created) -> dict:
    """The message resource Twilio answered with, as JSON-ready values, for the status history."""
    out = {}
    for key, value in vars(created).items():
        if key.startswith("_") or key in _NOT_KEPT or callable(value):
            continue
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        elif not isinstance(value, (str, int, float, bool, type(None), list, dict)):
            value = str(value)
        out[key] = value
    return out


def classify(error: Exception) -> ProviderError:
    """Sort a failure from the Twilio library into permanent, retryable, opt-out or ambiguous."""
    classified = _classify(error)
    if isinstance(error, (TwilioRestException, TwilioServiceException)):
        classified.raw = {k: getattr(error, k, None) for k in ("status", "code", "msg", "method", "uri", "details")
                          if getattr(error, k, None) is not None}
        classified.raw = {k: v if isinstance(v, (str, int, float, bool, list, dict)) else str(v)
                          for k, v in classified.raw.items()}
    elif not isinstance(error, ProviderError):
        classified.raw = {"error": f"{type(error).__name__}: {error}"[:500]}
    return classified


def _classify(error: Exception) -> ProviderError:
    if isinstance(error, (TwilioRestException, TwilioServiceException)):
        status = int(getattr(error, "status", 0) or 0)
        code = int(getattr(error, "code", 0) or status)
        text = getattr(error, "msg", None) or getattr(error, "title", None) or str(error)
        if str(code) in OPT_OUT_CODES:
            return ProviderError(str(code), text, retryable=False, opt_out=True)
        if status == 429 or status >= 500 or code in RETRYABLE_CODES or code in CONFIGURATION_CODES:
            return ProviderError(str(code), text, retryable=True)
        # 21211 invalid number, 21614 not a mobile, 30005 unknown, 30006 landline, and any other 4xx.
        return ProviderError(str(code), text, retryable=False)
    if isinstance(error, requests.ConnectTimeout) or (
            isinstance(error, requests.ConnectionError) and _never_connected(error)):
        return ProviderError("connection", f"could not reach Twilio: {error}", retryable=True)
    if isinstance(error, (requests.Timeout, requests.ConnectionError)):
        # The request went out and no answer came back (read timeout, connection dropped mid-answer):
        # Twilio may have queued the SMS. Resending could text the person twice, so this is left to a human.
        code = "timeout" if isinstance(error, requests.Timeout) else "connection_lost"
        return ProviderError(code, f"no answer from Twilio after sending: {error}", retryable=False, ambiguous=True)
    if isinstance(error, TwilioException):
        return ProviderError("twilio", str(error), retryable=False)
    return ProviderError("error", f"{type(error).__name__}: {error}", retryable=False)


def _never_connected(error: requests.ConnectionError) -> bool:
    """True when the connection was never made (refused, DNS, connect timeout): nothing reached Twilio."""
    seen, cause = set(), error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, (NewConnectionError, ConnectTimeoutError, NameResolutionError, ConnectionRefusedError)):
            return True
        cause = getattr(cause, "reason", None) or cause.__cause__ or cause.__context__ or (
            cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None)
    return False
