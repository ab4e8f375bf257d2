"""Fixtures for the accounts tests (the app, clients and `api` are in tests/conftest.py)."""
import pytest

from tests.accounts.factories import make_incident


@pytest.fixture
def incident(app):
    """A new incident with no accounts yet."""
    return make_incident()
