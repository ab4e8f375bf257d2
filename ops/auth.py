"""Operator sign-in: password hashing, sessions, roles, and who the current actor is."""
from datetime import datetime, timedelta
from functools import wraps

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, current_app, g, request
from flask_login import LoginManager, current_user

from core.db import db, utcnow
from core.errors import ServiceError
from ops.audit import Actor, record
from ops.models import Operator, Role, SignInFailure

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


# ---- sign-in and its throttle -------------------------------------------------------------------

BAD_CREDENTIALS = "That email and password do not match an active operator."


class SignInRefused(ServiceError):
    """Wrong email, wrong password or disabled operator: one message for all, so accounts cannot be probed."""

    status = 400

    def __init__(self):
        super().__init__(BAD_CREDENTIALS)


class SignInThrottled(ServiceError):
    """Too many recent failures for this email or this IP; `until` says when to try again."""

    status = 429

    def __init__(self, until: datetime):
        minutes = max(1, -(-int((until - utcnow()).total_seconds()) // 60))  # rounded up
        super().__init__(f"Too many failed sign-in attempts. Try again after {until:%H:%M} UTC "
                         f"(in about {minutes} minute{'s' if minutes != 1 else ''}).")
        self.until = until


def _locked_until(session, column, value: str, limit: int, window: timedelta) -> datetime | None:
    """When the limit-th newest failure leaves the window, fewer than `limit` remain: that is the unlock time."""
    nth_newest = session.scalar(
        sa.select(SignInFailure.at).where(column == value, SignInFailure.at > utcnow() - window)
        .order_by(SignInFailure.at.desc()).offset(max(limit, 1) - 1).limit(1)
    )
    return None if nth_newest is None else nth_newest + window


def throttled_until(session, *, email: str, ip: str) -> datetime | None:
    """The time sign-in opens again for this email and IP, or None when it is open now."""
    cfg = current_app.config
    window = timedelta(seconds=cfg["SIGNIN_WINDOW_SECONDS"])
    times = [t for t in (
        _locked_until(session, SignInFailure.email, email, cfg["SIGNIN_MAX_FAILURES_PER_ACCOUNT"], window),
        _locked_until(session, SignInFailure.ip, ip, cfg["SIGNIN_MAX_FAILURES_PER_IP"], window),
    ) if t is not None]
    return max(times) if times else None


def authenticate(session, *, email: str, password: str, ip: str) -> Operator:
    """Check a sign-in attempt: returns the operator, or raises SignInThrottled / SignInRefused.

    Failures are counted (per email and per IP) and audited; a success clears the email's failures.
    The caller commits, also when an exception is raised, so that failures are kept.
    """
    email = (email or "").strip().lower()[:254]
    ip = (ip or "unknown")[:64]
    operator = session.scalar(sa.select(Operator).where(Operator.email == email))
    actor = Actor(operator_id=operator.id if operator else None, label=f"{email} (sign-in)", ip=ip)

    def fail(reason: str):
        record(session, actor=actor, action="operator.sign_in_failed", entity_type="operator",
               entity_id=operator.id if operator else None, after={"email": email, "reason": reason})

    until = throttled_until(session, email=email, ip=ip)
    if until is not None:
        # Not counted as a new failure, so a locked-out owner is not kept out longer by an attacker.
        fail("throttled")
        raise SignInThrottled(until)
    # check_password verifies against a dummy hash for unknown emails, so timing does not tell them apart.
    if not check_password(operator, password) or not operator.active:
        # Failures older than the window no longer count: prune them so the table stays small under attack.
        window = timedelta(seconds=current_app.config["SIGNIN_WINDOW_SECONDS"])
        session.execute(sa.delete(SignInFailure).where(SignInFailure.at < utcnow() - window))
        session.add(SignInFailure(email=email, ip=ip, at=utcnow()))
        fail("bad_credentials" if operator is None or operator.active else "disabled")
        raise SignInRefused()
    session.execute(sa.delete(SignInFailure).where(SignInFailure.email == email))
    operator.last_sign_in_at = utcnow()
    record(session, actor=actor, action="operator.sign_in", entity_type="operator", entity_id=operator.id,
           after={"email": email})
    return operator


def init_app(app) -> None:
    login_manager.init_app(app)

    @app.context_processor
    def roles():
        return {"Role": Role}
