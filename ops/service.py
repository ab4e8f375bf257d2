"""Operators and API tokens: create, change, revoke. Callers commit."""
import hashlib
import secrets

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import joinedload

from core.db import utcnow
from core.errors import Conflict, NotFound, ValidationError
from ops.audit import Actor, record, snapshot
from ops.auth import MIN_PASSWORD_LENGTH, check_password, hash_password
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
    """The operator with this email (case-insensitive), or None."""
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


def list_operators(session) -> list[Operator]:
    """All operators, by email."""
    return list(session.scalars(sa.select(Operator).order_by(Operator.email)))


def get_operator(session, operator_id: int) -> Operator:
    """The operator with this id, or NotFound."""
    operator = session.get(Operator, operator_id)
    if operator is None:
        raise NotFound(f"No operator with id {operator_id}.")
    return operator


def require_operator_by_email(session, email: str) -> Operator:
    """The operator with this email, or NotFound."""
    operator = get_operator_by_email(session, email)
    if operator is None:
        raise NotFound(f"No operator with email {email}.")
    return operator


def _check_password_rule(password: str, field: str = "password") -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationError("Please correct the highlighted fields.",
                              {field: f"Use at least {MIN_PASSWORD_LENGTH} characters."})


def _keep_an_admin(session, operator: Operator) -> None:
    """Refuse to remove the last active admin, or nobody could manage operators any more."""
    if not (operator.active and operator.role == Role.ADMIN):
        return
    admins = session.scalar(sa.select(sa.func.count()).select_from(Operator)
                            .where(Operator.role == Role.ADMIN, Operator.active.is_(True)))
    if admins <= 1:
        raise Conflict(f"{operator.email} is the last active admin. Make another operator an admin first.")


def set_role(session, *, actor: Actor, operator_id: int, role: str) -> Operator:
    """Change an operator's role (never demoting the last active admin)."""
    operator = get_operator(session, operator_id)
    try:
        role = Role(role)
    except ValueError:
        raise ValidationError("Please choose a role.", {"role": "Choose one of: viewer, operator, admin."}) from None
    if role == operator.role:
        return operator
    if role != Role.ADMIN:
        _keep_an_admin(session, operator)
    before = snapshot(operator, OPERATOR_FIELDS)
    operator.role = role
    record(session, actor=actor, action="operator.set_role", entity_type="operator", entity_id=operator.id,
           before=before, after=snapshot(operator, OPERATOR_FIELDS))
    return operator


def set_active(session, *, actor: Actor, operator_id: int, active: bool) -> Operator:
    """Disable (ending every session of) or enable an operator; never the last active admin."""
    operator = get_operator(session, operator_id)
    if operator.active == active:
        return operator
    if not active:
        _keep_an_admin(session, operator)
        operator.session_version += 1  # the session loader refuses the old version: sessions end now
    before = snapshot(operator, OPERATOR_FIELDS)
    operator.active = active
    record(session, actor=actor, action="operator.enable" if active else "operator.disable",
           entity_type="operator", entity_id=operator.id, before=before, after=snapshot(operator, OPERATOR_FIELDS))
    return operator


def sign_out(session, *, actor: Actor, operator: Operator) -> None:
    """Sign an operator out everywhere: the new session version voids every session and remember-me cookie."""
    operator.session_version += 1
    record(session, actor=actor, action="operator.sign_out", entity_type="operator", entity_id=operator.id,
           after={"session_version": operator.session_version})


def reset_password(session, *, actor: Actor, operator_id: int, password: str) -> Operator:
    """Set a new password for an operator (by an admin); ends the operator's sessions."""
    operator = get_operator(session, operator_id)
    _check_password_rule(password)
    _set_password(session, actor=actor, operator=operator, password=password, action="operator.reset_password")
    return operator


def change_own_password(session, *, actor: Actor, operator: Operator, current: str, new: str) -> Operator:
    """An operator changes their own password; the current one is required."""
    if not check_password(operator, current or ""):
        raise ValidationError("Please correct the highlighted fields.",
                              {"current_password": "This is not your current password."})
    _check_password_rule(new, "new_password")
    _set_password(session, actor=actor, operator=operator, password=new, action="operator.change_password")
    return operator


def _set_password(session, *, actor: Actor, operator: Operator, password: str, action: str) -> None:
    # The hash itself never goes into the audit log; the session version shows that sessions ended.
    before = {"session_version": operator.session_version}
    operator.password_hash = hash_password(password)
    operator.session_version += 1
    record(session, actor=actor, action=action, entity_type="operator", entity_id=operator.id, before=before,
           after={"session_version": operator.session_version, "password": "changed"})


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session, *, actor: Actor, operator_id: int, name: str = "") -> tuple[ApiToken, str]:
    """Make an API token; returns the row and the secret, which is shown once and stored hashed."""
    operator = get_operator(session, operator_id)
    if not operator.active:
        raise ValidationError("This operator is disabled.", {"operator_id": "Choose an active operator."})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(operator=operator, name=(name or "").strip()[:100], prefix=secret[:10],
                     token_hash=hash_token(secret))
    session.add(token)
    session.flush()
    record(session, actor=actor, action="token.create", entity_type="api_token", entity_id=token.id,
           after={"operator": operator.email, "name": token.name, "prefix": token.prefix})
    return token, secret


def list_tokens(session) -> list[ApiToken]:
    """All API tokens, newest first, with their owners loaded."""
    return list(session.scalars(sa.select(ApiToken).options(joinedload(ApiToken.operator))
                                .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def get_token(session, token_id: int) -> ApiToken:
    """The API token with this id, or NotFound."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"No API token with id {token_id}.")
    return token


def revoke_token(session, *, actor: Actor, token_id: int) -> ApiToken:
    """Revoke a token (once; revoking again changes nothing)."""
    token = get_token(session, token_id)
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
