"""Statuspage-compatible public JSON (/api/v2/...)."""
from flask import Blueprint

bp = Blueprint("statuspage", __name__, url_prefix="/api/v2")
