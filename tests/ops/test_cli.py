"""The operators and tokens commands; each change is audited as the OS user and host who ran it."""
import getpass
import hashlib
import socket

import sqlalchemy as sa

from core.db import db
from ops.models import ApiToken, AuditEntry, Operator, Role
from tests.conftest import PASSWORD, make_operator

CLI = f"cli {getpass.getuser()}@{socket.gethostname()}"  # who ran the command, as the audit log names them


def operator(email: str) -> Operator:
    db.session.expire_all()
    return db.session.scalar(sa.select(Operator).where(Operator.email == email))


def test_operators_create_reads_the_password_from_stdin(runner):
    result = runner.invoke(args=["operators", "create", "Ana@Example.com", "--role", "admin", "--password-stdin"],
                           input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "Created admin ana@example.com" in result.output
    created = operator("ana@example.com")
    assert created.role == Role.ADMIN and created.password_hash.startswith("$argon2id$")
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "operator.create"))
    assert entry.actor == CLI and entry.operator_id is None and entry.after["email"] == "ana@example.com"


def test_operators_create_prompts_for_the_password_twice(runner):
    result = runner.invoke(args=["operators", "create", "bo@example.com", "--role", "viewer"],
                           input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden input
    assert operator("bo@example.com").role == Role.VIEWER


def test_operators_create_refuses_bad_input_with_a_message_not_a_traceback(runner):
    make_operator("admin")
    duplicate = runner.invoke(args=["operators", "create", "admin@example.com", "--role", "viewer",
                                    "--password-stdin"], input=PASSWORD + "\n")
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    assert "Traceback" not in duplicate.output
    short = runner.invoke(args=["operators", "create", "x@example.com", "--role", "viewer", "--password-stdin"],
                          input="short\n")
    assert short.exit_code == 1 and "password: Use at least 12 characters" in short.output
    bad_role = runner.invoke(args=["operators", "create", "x@example.com", "--role", "root", "--password-stdin"],
                             input=PASSWORD + "\n")
    assert bad_role.exit_code == 2 and "'root' is not one of" in bad_role.output


def test_operators_list_shows_role_and_state(runner):
    make_operator("admin")
    make_operator("viewer").active = False
    db.session.commit()
    result = runner.invoke(args=["operators", "list"])
    assert result.exit_code == 0
    assert "admin@example.com\tadmin\tactive" in result.output
    assert "viewer@example.com\tviewer\tdisabled" in result.output


def test_operators_set_role_and_disable_are_audited(runner):
    make_operator("admin")
    make_operator("viewer")
    result = runner.invoke(args=["operators", "set-role", "viewer@example.com", "operator"])
    assert result.exit_code == 0 and "viewer@example.com is now operator" in result.output
    assert operator("viewer@example.com").role == Role.OPERATOR
    version = operator("viewer@example.com").session_version
    result = runner.invoke(args=["operators", "disable", "viewer@example.com"])
    assert result.exit_code == 0, result.output
    disabled = operator("viewer@example.com")
    assert not disabled.active and disabled.session_version == version + 1
    actions = db.session.scalars(sa.select(AuditEntry.action).where(AuditEntry.actor == CLI)).all()
    assert "operator.set_role" in actions and "operator.disable" in actions
    assert runner.invoke(args=["operators", "enable", "viewer@example.com"]).exit_code == 0
    assert operator("viewer@example.com").active


def test_operator_commands_explain_what_went_wrong(runner):
    make_operator("admin")
    unknown = runner.invoke(args=["operators", "disable", "nobody@example.com"])
    assert unknown.exit_code == 1 and "No operator with email nobody@example.com" in unknown.output
    last = runner.invoke(args=["operators", "set-role", "admin@example.com", "viewer"])
    assert last.exit_code == 1 and "last active admin" in last.output
    assert runner.invoke(args=["operators", "disable", "admin@example.com"]).exit_code == 1
    assert operator("admin@example.com").active and operator("admin@example.com").role == Role.ADMIN


def test_tokens_create_prints_the_secret_once_and_stores_its_hash(runner):
    make_operator("operator")
    result = runner.invoke(args=["tokens", "create", "operator@example.com", "--name", "grafana"])
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert secret.startswith("lb_")
    token = db.session.scalar(sa.select(ApiToken))
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest() and token.name == "grafana"

    listing = runner.invoke(args=["tokens", "list"])
    assert listing.exit_code == 0 and token.prefix in listing.output and "grafana" in listing.output
    assert secret not in listing.output


def test_tokens_revoke_by_id(runner):
    make_operator("operator")
    runner.invoke(args=["tokens", "create", "operator@example.com"])
    token = db.session.scalar(sa.select(ApiToken))
    result = runner.invoke(args=["tokens", "revoke", str(token.id)])
    assert result.exit_code == 0 and "is revoked" in result.output
    db.session.expire_all()
    assert db.session.get(ApiToken, token.id).revoked_at is not None
    assert "revoked" in runner.invoke(args=["tokens", "list"]).output
    assert db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "token.revoke")).actor == CLI


def test_token_commands_explain_what_went_wrong(runner):
    unknown_owner = runner.invoke(args=["tokens", "create", "nobody@example.com"])
    assert unknown_owner.exit_code == 1 and "No operator with email nobody@example.com" in unknown_owner.output
    unknown_token = runner.invoke(args=["tokens", "revoke", "999"])
    assert unknown_token.exit_code == 1 and "No API token with id 999" in unknown_token.output
    not_a_number = runner.invoke(args=["tokens", "revoke", "abc"])
    assert not_a_number.exit_code == 2 and "Traceback" not in not_a_number.output
