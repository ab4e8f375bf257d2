"""`flask --app app operators ...`, `tokens ...`, `audit export` and `export DATASET` (ops.exports)."""
import sys

import click
from flask.cli import AppGroup, with_appcontext

from core.db import db
from core.errors import ServiceError
from ops import audit, exports, service
from ops.audit import Actor, as_option

operators_cli = as_option(AppGroup("operators", help="Manage operator accounts."))
audit_cli = as_option(AppGroup("audit", help="Export the audit log."))
tokens_cli = as_option(AppGroup("tokens", help="Manage API tokens for the ops API."))

ROLES = click.Choice(["admin", "operator", "viewer"])


def _fail(e: ServiceError):
    db.session.rollback()
    details = "".join(f"\n  {field}: {msg}" for field, msg in e.fields.items())
    raise click.ClickException(f"{e.message}{details}")


def _run(change):
    """Run one audited change and commit it; a refusal becomes a clear error and a non-zero exit."""
    try:
        result = change()
    except ServiceError as e:
        _fail(e)
    db.session.commit()
    return result


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


@operators_cli.command("create")
@click.argument("email")
@click.option("--role", type=ROLES, required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_operator(email: str, role: str, password_stdin: bool):
    """Create an operator; the password is asked for (or read from stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    operator = _run(lambda: service.create_operator(db.session, actor=Actor.cli(), email=email, role=role,
                                                    password=password))
    click.echo(f"Created {operator.role.value} {operator.email} (id {operator.id}).")


@operators_cli.command("list")
def list_operators():
    """List operators with their role and state."""
    for o in service.list_operators(db.session):
        state = "active" if o.active else "disabled"
        click.echo(f"{o.id}\t{o.email}\t{o.role.value}\t{state}\tlast sign-in {_when(o.last_sign_in_at)}")


@operators_cli.command("set-role")
@click.argument("email")
@click.argument("role", type=ROLES)
def set_role(email: str, role: str):
    """Give an operator another role."""
    operator = _run(lambda: service.set_role(
        db.session, actor=Actor.cli(), operator_id=service.require_operator_by_email(db.session, email).id,
        role=role))
    click.echo(f"{operator.email} is now {operator.role.value}.")


@operators_cli.command("disable")
@click.argument("email")
def disable_operator(email: str):
    """Disable an operator: their sessions end and their API tokens stop working."""
    operator = _run(lambda: service.set_active(
        db.session, actor=Actor.cli(), operator_id=service.require_operator_by_email(db.session, email).id,
        active=False))
    click.echo(f"{operator.email} is disabled.")


@operators_cli.command("enable")
@click.argument("email")
def enable_operator(email: str):
    """Enable a disabled operator again."""
    operator = _run(lambda: service.set_active(
        db.session, actor=Actor.cli(), operator_id=service.require_operator_by_email(db.session, email).id,
        active=True))
    click.echo(f"{operator.email} is enabled.")


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", default="", help="A label to recognise the token by.")
def create_token(email: str, name: str):
    """Create an API token for an operator and print it once."""
    _token, secret = _run(lambda: service.create_token(
        db.session, actor=Actor.cli(), operator_id=service.require_operator_by_email(db.session, email).id,
        name=name))
    click.echo(secret)
    click.echo("Store it now: it is shown only once and kept hashed.", err=True)


@tokens_cli.command("list")
def list_tokens():
    """List API tokens (prefix only; the secrets are not kept)."""
    for t in service.list_tokens(db.session):
        state = f"revoked {_when(t.revoked_at)}" if t.revoked_at else "live"
        click.echo(f"{t.id}\t{t.prefix}…\t{t.operator.email}\t{t.name or '-'}\tcreated {_when(t.created_at)}\t"
                   f"last used {_when(t.last_used_at)}\t{state}")


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
def revoke_token(token_id: int):
    """Revoke an API token by its id (see `tokens list`)."""
    token = _run(lambda: service.revoke_token(db.session, actor=Actor.cli(), token_id=token_id))
    click.echo(f"Token {token.id} ({token.prefix}…) of {token.operator.email} is revoked.")


@audit_cli.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default="-",
              help="Write the CSV here (default: standard output).")
@click.option("--action", default=None, help="Only actions starting with this (e.g. operator. or backup.).")
def export_audit(output: str, action: str | None):
    """The audit log as CSV, oldest first (the export is itself audited)."""
    audit.record_export(db.session, actor=Actor.cli(), via="cli", action=action, operator_id=None)
    db.session.commit()
    counted = [0]

    def entries():
        for entry in audit.iter_entries(db.session, action=action):
            counted[0] += 1
            yield entry

    with click.open_file(output, "w", encoding="utf-8") as out:
        for chunk in audit.csv_chunks(entries()):
            out.write(chunk)
    click.echo(f"Exported {counted[0]} audit entries{'' if output == '-' else f' to {output}'}.", err=True)


@as_option
@click.command("export")
@click.argument("dataset", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default="-",
              help="Write here (default: standard output).")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="CSV for spreadsheets, or JSON Lines (one object per record).")
@with_appcontext
def export_command(dataset: str | None, output: str, fmt: str):
    """Export DATASET (all its records, oldest first); without DATASET, list the datasets."""
    if not dataset:
        for d in exports.datasets():
            click.echo(f"{d.name:28} {d.description}")
        return
    try:
        chosen = exports.get(dataset)
    except ServiceError as e:
        raise click.ClickException(e.message)
    exports.audit_reading(db.session, chosen, actor=Actor.cli(), via=f"cli {fmt}")
    db.session.commit()
    chunks = exports.csv_chunks if fmt == "csv" else exports.jsonl_chunks
    with click.open_file(output, "w", encoding="utf-8") as out:
        for chunk in chunks(db.session, chosen):
            out.write(chunk)
    if output != "-":
        click.echo(f"Exported {chosen.name} to {output}.", err=True)


def init_app(app) -> None:
    app.cli.add_command(export_command)
    app.cli.add_command(operators_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(audit_cli)
