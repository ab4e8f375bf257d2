"""`flask --app app offers issue|announce|remind|expire|export|fulfil`: the finance and support side of offers."""
import csv
import os
import sys

import click
from flask.cli import AppGroup

from core.db import db
from core.errors import ServiceError
from offers import grants, notify, service
from ops.audit import Actor

offers_cli = AppGroup("offers", help="Compensation offers.")


def _actor() -> Actor:
    return Actor.cli(f"cli ({os.environ.get('USER', 'unknown')})")


@offers_cli.command("issue")
@click.argument("program_id", type=int)
def issue_command(program_id: int):
    """Grant a program to every eligible account without one (idempotent, within budget)."""
    try:
        result = service.issue(db.session, actor=_actor(), program_id=program_id)
    except ServiceError as e:
        raise click.ClickException(e.message) from None
    db.session.commit()
    click.echo(f"Issued {result['issued']} grants; {result['not_issued']} eligible accounts not issued "
               f"(budget cap).")


@offers_cli.command("announce")
@click.argument("program_id", type=int)
def announce_command(program_id: int):
    """Text and email each offered grant not told yet (opt-outs and quiet hours respected by the notifier)."""
    try:
        n = notify.announce(db.session, actor=_actor(), program_id=program_id)
    except ServiceError as e:
        raise click.ClickException(e.message) from None
    db.session.commit()
    click.echo(f"Queued {n} messages.")


@offers_cli.command("remind")
@click.argument("program_id", type=int)
def remind_command(program_id: int):
    """Remind, once, every grant still unanswered (run it a few days before valid_until)."""
    try:
        n = notify.remind(db.session, actor=_actor(), program_id=program_id)
    except ServiceError as e:
        raise click.ClickException(e.message) from None
    db.session.commit()
    click.echo(f"Queued {n} reminders.")


@offers_cli.command("expire")
def expire_command():
    """Mark offered grants past their program's validity as expired."""
    n = grants.expire(db.session)
    db.session.commit()
    click.echo(f"Expired {n} grants.")


@offers_cli.command("export")
@click.argument("program_id", type=int)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write here instead of standard output.")
def export_command(program_id: int, output: str | None):
    """Write accepted, unfulfilled grants of a program as CSV for billing."""
    try:
        if output:
            with open(output, "w", newline="", encoding="utf-8") as f:
                n = grants.export_accepted(db.session, program_id, f)
            click.echo(f"Wrote {n} accepted grants to {output}.", err=True)
        else:
            grants.export_accepted(db.session, program_id, sys.stdout)
    except ServiceError as e:
        raise click.ClickException(e.message) from None


@offers_cli.command("fulfil")
@click.argument("program_id", type=int)
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def fulfil_command(program_id: int, path: str):
    """Mark fulfilled the accepted grants whose codes are in the `code` column of a CSV file."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if "code" not in (reader.fieldnames or []):
            raise click.ClickException("The CSV needs a `code` column.")
        codes = [row["code"] for row in reader]
    try:
        result = grants.mark_fulfilled(db.session, actor=_actor(), program_id=program_id, codes=codes)
    except ServiceError as e:
        raise click.ClickException(e.message) from None
    db.session.commit()
    click.echo(f"Fulfilled {result['fulfilled']}; not fulfilled: {len(result['not_fulfilled'])}.")
    for code, why in sorted(result["not_fulfilled"].items()):
        click.echo(f"  {code}: {why}", err=True)


def init_app(app) -> None:
    app.cli.add_command(offers_cli)
