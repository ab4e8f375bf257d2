"""`flask --app app operators ...` and `flask --app app tokens ...`."""
import sys

import click
from flask.cli import AppGroup

from core.db import db
from core.errors import ServiceError
from ops import service
from ops.audit import Actor

operators_cli = AppGroup("operators", help="Manage operator accounts.")
tokens_cli = AppGroup("tokens", help="Manage API tokens for the ops API.")


def _fail(e: ServiceError):
    db.session.rollback()
    details = "".join(f"\n  {field}: {msg}" for field, msg in e.fields.items())
    raise click.ClickException(f"{e.message}{details}")


@operators_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "operator", "viewer"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_operator(email: str, role: str, password_stdin: bool):
    """Create an operator; the password is asked for (or read from stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        operator = service.create_operator(db.session, actor=Actor.cli(), email=email, role=role, password=password)
    except ServiceError as e:
        _fail(e)
    db.session.commit()
    click.echo(f"Created {operator.role.value} {operator.email} (id {operator.id}).")


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", default="", help="A label to recognise the token by.")
def create_token(email: str, name: str):
    """Create an API token for an operator and print it once."""
    operator = service.get_operator_by_email(db.session, email)
    if operator is None:
        raise click.ClickException(f"No operator with email {email}.")
    _token, secret = service.create_token(db.session, actor=Actor.cli(), operator_id=operator.id, name=name)
    db.session.commit()
    click.echo(secret)
    click.echo("Store it now: it is shown only once and kept hashed.", err=True)


def init_app(app) -> None:
    app.cli.add_command(operators_cli)
    app.cli.add_command(tokens_cli)
