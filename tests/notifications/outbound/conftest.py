"""Fixtures of the outbound webhook tests: private targets allowed (the receiver is on loopback), and an admin's API
client (the real HTTP receiver that verifies signatures with standardwebhooks is tests/conftest.py's)."""
import pytest

from tests.notifications.outbound.helpers import api_as


@pytest.fixture
def private_ok(app):
    app.config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"] = True
    return app


@pytest.fixture
def admin(client):
    return api_as(client, "admin")
