"""Incident, component and maintenance routes of the ops JSON API."""
from ops.api import bp  # noqa: F401
