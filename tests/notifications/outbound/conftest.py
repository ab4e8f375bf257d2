"""Fixtures of the outbound webhook tests: private targets allowed (the receiver is on loopback), a real HTTP
receiver that verifies signatures with standardwebhooks, and an admin's API client."""
import pytest

from tests.notifications.outbound.helpers import api_as
from tests.peers import webhook_receiver


@pytest.fixture
def private_ok(app):
    app.config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"] = True
    return app


@pytest.fixture
def receiver():
    r = webhook_receiver.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def admin(client):
    return api_as(client, "admin")
