"""Operator sign-in: password hashing, sessions, roles, and who the current actor is."""
from functools import wraps

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, g, request
from flask_login import LoginManager, current_user

from core.db import db
from ops.audit import Actor
from ops.models import Operator, Role

login_manager = LoginManager()
login_manager.login_view = "ops.sign_in"
login_manager.login_message = "Please sign in to use the operator console."
login_manager.login_message_category = "info"
login_manager.session_protection = "strong"

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
# Verified against when the email is unknown, so both paths take the same time.
_DUMMY_HASH = _hasher.hash("lifeboat-timing-equaliser")

MIN_PASSWORD_LENGTH = 12


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(operator: Operator | None, password: str) -> bool:
    """True when the password matches; rehashes in place when the parameters have changed."""
    try:
        _hasher.verify(operator.password_hash if operator else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    if operator is None:
        return False
    if _hasher.check_needs_rehash(operator.password_hash):
        operator.password_hash = _hasher.hash(password)
    return True


@login_manager.user_loader
def _load_operator(user_id: str) -> Operator | None:
    """Sessions carry "id:session_version", so a password change or disable ends old sessions."""
    try:
        operator_id, version = (int(x) for x in user_id.split(":"))
    except ValueError:
        return None
    operator = db.session.get(Operator, operator_id)
    if operator is None or operator.session_version != version:
        return None
    return operator


def role_required(role: Role):
    """Route decorator: signed in, active, and at least `role` (403 otherwise)."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.can(role):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def client_ip() -> str:
    return request.remote_addr or "unknown"


def current_actor() -> Actor:
    """The Actor for audit records: the API token's operator, else the signed-in operator."""
    if getattr(g, "api_actor", None) is not None:
        return g.api_actor
    if current_user.is_authenticated:
        return Actor(operator_id=current_user.id, label=f"{current_user.email} (web)", ip=client_ip())
    return Actor(operator_id=None, label="anonymous", ip=client_ip())


def init_app(app) -> None:
    login_manager.init_app(app)

    @app.context_processor
    def roles():
        return {"Role": Role}
