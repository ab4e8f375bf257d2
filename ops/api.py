"""The operator JSON API (/api/ops/v1): bearer-token auth, JSON errors, Idempotency-Key."""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/ops/v1")
