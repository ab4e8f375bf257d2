"""Provider clients behind one small interface, with typed retryable, permanent and ambiguous errors."""
import logging
from dataclasses import dataclass
from typing import Protocol

from notifications.models import Notification

# The one definition of the error codes that mean "opted out", as stored in Notification.error_code.
TWILIO_OPT_OUT = "21610"  # Twilio: "Attempt to send to unsubscribed recipient" (they replied STOP)
OPT_OUT_CODES = frozenset({TWILIO_OPT_OUT})  # provider codes: the recipient opted out at the provider
SUPPRESSED_CODE = "opt_out"  # ours: not sent, the address was on our opt-out list

log = logging.getLogger("lifeboat.notifier")


@dataclass
class Sent:
    provider_id: str
    segments: int | None = None  # SMS parts the provider billed, when it says
    raw: dict | None = None  # the provider's answer, without the text or addresses (the status history keeps it)


class ProviderError(Exception):
    """A send that failed.

    `retryable`: trying again later may work. `ambiguous`: the provider may have accepted the message (a
    timeout after the request went out), so the worker must not resend blindly. `opt_out`: the recipient
    unsubscribed at the provider (Twilio 21610) and must be recorded as opted out."""

    def __init__(self, code: str, message: str, *, retryable: bool, ambiguous: bool = False,
                 opt_out: bool = False, raw: dict | None = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retryable = code, message, retryable
        self.ambiguous, self.opt_out, self.raw = ambiguous, opt_out, raw


class NotSent(Exception):
    """Raised by a `pace` callback to give a message back before any byte of it went to the provider."""


class Provider(Protocol):
    """`send` hands one message over and raises ProviderError. A provider with `paces_requests = True`
    takes `send(message, pace=callable)` and calls `pace` right before its request goes on the wire, so the
    rate limiter counts the moment the provider will see, not the moment the send began."""

    name: str

    def send(self, message: Notification) -> Sent:
        """Hand one message to the provider; raises ProviderError."""


class LogProvider:
    """Sends nothing: the message is logged and stays readable in the console's message log.

    Used when no Twilio or SMTP settings are configured, so the product runs offline."""

    name = "log"

    def send(self, message: Notification) -> Sent:
        log.info("log provider: %s to %s: %s", message.channel.value, message.recipient, (message.body or "")[:200])
        return Sent(provider_id=f"log-{message.id}")


def flag(value) -> bool:
    """A setting read as a yes/no: True, "1", "true", "yes", "on" (environment variables are strings)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def from_config(config) -> dict[str, Provider]:
    """Channel -> provider: Twilio for "sms" and SMTP for "email" when configured, else the log provider."""
    providers: dict[str, Provider] = {"sms": LogProvider(), "email": LogProvider()}
    sender = config.get("TWILIO_MESSAGING_SERVICE_SID") or config.get("TWILIO_FROM_NUMBER")
    if config.get("TWILIO_ACCOUNT_SID") and config.get("TWILIO_AUTH_TOKEN") and sender:
        from notifications.twilio_provider import TwilioProvider
        providers["sms"] = TwilioProvider.from_config(config)
    elif config.get("TWILIO_ACCOUNT_SID"):
        log.warning("TWILIO_ACCOUNT_SID is set without TWILIO_AUTH_TOKEN and a sender: SMS go to the log")
    if config.get("SMTP_HOST"):
        from notifications.smtp_provider import SmtpProvider
        providers["email"] = SmtpProvider.from_config(config)
    return providers
