"""Operators and API tokens: create, change, revoke. Callers commit."""
import hashlib
import secrets

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email

from core.db import utcnow
from core.errors import NotFound, ValidationError
from ops.audit import Actor, record, snapshot
from ops.auth import MIN_PASSWORD_LENGTH, hash_password
from ops.models import ApiToken, Operator, Role

TOKEN_PREFIX = "lb_"
OPERATOR_FIELDS = ("email", "role", "active")


def normalise_email(errors: dict, value: str) -> str:
    try:
        return validate_email((value or "").strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as e:
        errors["email"] = str(e)
        return ""


def get_operator_by_email(session, email: str) -> Operator | None:
    return session.scalar(sa.select(Operator).where(Operator.email == (email or "").strip().lower()))


def create_operator(session, *, actor: Actor, email: str, role: str, password: str) -> Operator:
    """Add an operator with a role and a password of at least MIN_PASSWORD_LENGTH characters."""
    errors: dict = {}
    email = normalise_email(errors, email)
    try:
        role = Role(role)
    except ValueError:
        errors["role"] = "Choose one of: viewer, operator, admin."
    if len(password or "") < MIN_PASSWORD_LENGTH:
        errors["password"] = f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if email and get_operator_by_email(session, email):
        errors["email"] = "An operator with this email already exists."
    if errors:
        raise ValidationError("Please correct the highlighted fields.", errors)
    operator = Operator(email=email, role=role, password_hash=hash_password(password))
    session.add(operator)
    session.flush()
    record(session, actor=actor, action="operator.create", entity_type="operator", entity_id=operator.id,
           after=snapshot(operator, OPERATOR_FIELDS))
    return operator


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session, *, actor: Actor, operator_id: int, name: str = "") -> tuple[ApiToken, str]:
    """Make an API token; returns the row and the secret, which is shown once and stored hashed."""
    operator = session.get(Operator, operator_id)
    if operator is None:
        raise NotFound(f"No operator with id {operator_id}.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(operator=operator, name=(name or "").strip()[:100], prefix=secret[:10],
                     token_hash=hash_token(secret))
    session.add(token)
    session.flush()
    record(session, actor=actor, action="token.create", entity_type="api_token", entity_id=token.id,
           after={"operator": operator.email, "name": token.name, "prefix": token.prefix})
    return token, secret


def revoke_token(session, *, actor: Actor, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"No API token with id {token_id}.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record(session, actor=actor, action="token.revoke", entity_type="api_token", entity_id=token.id,
               before={"revoked_at": None}, after={"revoked_at": token.revoked_at.isoformat()})
    return token


def token_for_secret(session, secret: str) -> ApiToken | None:
    """The live token matching a bearer secret, or None (unknown, revoked, or operator disabled)."""
    token = session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))
    if token is None or token.revoked_at is not None or not token.operator.active:
        return None
    return token
