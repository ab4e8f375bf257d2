"""Provider clients behind one small interface, with typed retryable and permanent errors."""
import logging
from dataclasses import dataclass
from typing import Protocol

from notifications.models import Notification

log = logging.getLogger("lifeboat.notifier")


@dataclass
class Sent:
    provider_id: str


class ProviderError(Exception):
    """A send that failed; `retryable` says whether trying again later may work."""

    def __init__(self, code: str, message: str, *, retryable: bool):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retryable = code, message, retryable


class Provider(Protocol):
    name: str

    def send(self, message: Notification) -> Sent:
        """Hand one message to the provider; raises ProviderError."""


class LogProvider:
    """Sends nothing: the message is logged and stays readable in the console's message log.

    Used when no Twilio or SMTP settings are configured, so the product runs offline."""

    name = "log"

    def send(self, message: Notification) -> Sent:
        log.info("log provider: %s to %s: %s", message.channel.value, message.recipient, message.body[:200])
        return Sent(provider_id=f"log-{message.id}")
