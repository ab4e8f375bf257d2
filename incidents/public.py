"""The public status page: no sign-in, cacheable, readable without JavaScript."""
from flask import Blueprint

bp = Blueprint("public", __name__)
