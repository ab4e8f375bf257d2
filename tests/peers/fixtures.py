"""Pytest fixtures for the real test peers: `twilio_standin`, `smtp_server` (and `smtp_server_auth`).

Use them from tests/conftest.py with `pytest_plugins = ["tests.peers.fixtures"]`, or import them by name."""
import json

import pytest

from tests.peers.smtp_server import SmtpServer
from tests.peers.twilio_standin import TwilioStandin, twilio_openapi


@pytest.fixture(scope="session")
def twilio_spec():
    """Twilio's parsed API description, loaded once per test session (it takes seconds)."""
    return twilio_openapi()


@pytest.fixture
def twilio_standin(twilio_spec):
    """A fresh Twilio stand-in per test; the test fails if any request broke Twilio's API description.

    A test that sends invalid requests on purpose reads them with `twilio_standin.take_invalid()`."""
    with TwilioStandin() as standin:
        yield standin
    if standin.invalid_requests:
        pytest.fail("requests to the Twilio stand-in broke Twilio's API description:\n"
                    + json.dumps(standin.invalid_requests, indent=2, default=str), pytrace=False)


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback, without AUTH."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def smtp_server_auth():
    """A real SMTP server on loopback that requires AUTH (username/password in `.env()`), plain text."""
    with SmtpServer(auth=True) as server:
        yield server
