"""`flask --app app offers issue|announce|remind|expire|export|fulfil|edit|close`: the finance and support
side of offers."""
import csv
import sys
from datetime import datetime

import click
from flask.cli import AppGroup

from core.db import db
from core.errors import ServiceError
from offers import grants, notify, service
from ops.audit import Actor, as_option

offers_cli = as_option(AppGroup("offers", help="Compensation offers."))


def _actor() -> Actor:
    return Actor.cli()


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
            n = grants.export_accepted(db.session, program_id, sys.stdout)
    except ServiceError as e:
        raise click.ClickException(e.message) from None
    grants.record_export(db.session, actor=_actor(), program_id=program_id, via="cli", rows=n)
    db.session.commit()


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


def _fail(e: ServiceError):
    details = "; ".join(f"{k}: {v}" for k, v in e.fields.items())
    return click.ClickException(f"{e.message} {details}".strip())


@offers_cli.command("edit")
@click.argument("program_id", type=int)
@click.option("--name")
@click.option("--description")
@click.option("--valid-until", help="ISO 8601 with a zone, e.g. 2027-01-31T23:59:00Z (extend only, once granted).")
@click.option("--budget-cap", help='Major units, e.g. 5000.00; "none" removes the cap.')
@click.option("--remind-days-before", help='0 to 90; "none": no automatic reminder.')
def edit_command(program_id: int, name, description, valid_until, budget_cap, remind_days_before):
    """Change a program's name, description, validity, budget cap or reminder (same rules as the console)."""
    data: dict = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
    try:
        if valid_until is not None:
            data["valid_until"] = datetime.fromisoformat(valid_until)
        if budget_cap is not None:
            data["budget_cap"] = None if budget_cap.lower() == "none" else budget_cap
        if remind_days_before is not None:
            data["remind_days_before"] = None if remind_days_before.lower() == "none" else int(remind_days_before)
    except ValueError:
        raise click.ClickException("--valid-until needs an ISO 8601 date-time; --remind-days-before a whole "
                                   "number or none.") from None
    if not data:
        raise click.ClickException("Nothing to change: give at least one option (see --help).")
    try:
        service.update_program(db.session, actor=_actor(), program_id=program_id, data=data)
    except ServiceError as e:
        raise _fail(e) from None
    db.session.commit()
    click.echo(f"Program {program_id} saved.")


@offers_cli.command("close")
@click.argument("program_id", type=int)
@click.option("--reason", required=True, help="Why (kept in the audit log and shown on the program).")
@click.option("--expire-open", is_flag=True, help="Also end offers still unanswered now (accepted ones stay).")
def close_command(program_id: int, reason: str, expire_open: bool):
    """Close a program: no more grants, announcements or reminders; open offers stay valid unless --expire-open."""
    try:
        r = service.close_program(db.session, actor=_actor(), program_id=program_id, reason=reason,
                                  expire_open=expire_open)
    except ServiceError as e:
        raise _fail(e) from None
    db.session.commit()
    ended = f" {r['expired']:,} open offer{'s' if r['expired'] != 1 else ''} ended now." if r["expired"] else ""
    click.echo(("Program was already closed; nothing else changed." if r["already_closed"]
                else f"Program {program_id} closed.") + ended)


def init_app(app) -> None:
    app.cli.add_command(offers_cli)
