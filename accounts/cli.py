"""`flask --app app accounts import|erase ...`, `recovery import ...`, `recovery categories ...`, `imports prune`,
`subscriptions import|counts`."""
import os
import sys

import click
from flask.cli import AppGroup

from accounts import service
from accounts.imports.account_import import AccountImport
from accounts.imports.service import ImportSpec, create_job, run_job
from accounts.models import ImportJob, ImportStatus
from core.db import db
from core.errors import ServiceError
from ops.audit import Actor, as_option

accounts_cli = as_option(AppGroup("accounts", help="Affected accounts."))
recovery_cli = as_option(AppGroup("recovery", help="Per-account recovery status."))
imports_cli = as_option(AppGroup("imports", help="Import files (uploads and rejected rows)."))
subscriptions_cli = as_option(AppGroup("subscriptions", help="People who follow the status page (not affected "
                                                             "accounts)."))


def _run_import(spec: ImportSpec, incident_id: int, path: str, skip_invalid: bool) -> None:
    from incidents.models import Incident

    if db.session.get(Incident, incident_id) is None:
        raise click.ClickException(f"No incident with id {incident_id}.")
    actor = Actor.cli()
    size = os.path.getsize(path)
    job = create_job(db.session, spec=spec, incident_id=incident_id, actor=actor, filename=os.path.basename(path),
                     skip_invalid=skip_invalid, size_bytes=size)
    db.session.commit()
    with open(path, "rb") as f, click.progressbar(length=size, label=f"Reading {os.path.basename(path)}",
                                                   show_pos=False, show_percent=True, file=sys.stderr) as bar:
        seen = {"bytes": 0}

        def progress(j: ImportJob) -> None:
            bar.update(j.bytes_read - seen["bytes"])
            seen["bytes"] = j.bytes_read

        job = run_job(spec=spec, job_id=job.id, stream=f, actor=actor, on_progress=progress)
        bar.update(size - seen["bytes"])
    _report(job)


def _report(job: ImportJob) -> None:
    click.echo(f"Import {job.id}: {job.status.value}. {job.message}")
    click.echo(f"  rows read: {job.rows_read}, invalid: {job.rows_invalid}, created: {job.rows_created}, "
               f"updated: {job.rows_updated}, unchanged: {job.rows_unchanged}"
               + (f", newly attached: {job.rows_attached}" if job.kind.value == "accounts" else
                  f", accounts whose overall state changed: {job.accounts_changed}"))
    for e in (job.errors or [])[:20]:
        click.echo(f"  line {e['line']}, {e['column'] or 'row'}: {e['reason']}", err=True)
    if job.errors and len(job.errors) > 20 or job.rows_invalid > 20:
        click.echo(f"  ... {job.rows_invalid} invalid rows in all.", err=True)
    if job.error_csv_path:
        click.echo(f"  Rejected rows written to {job.error_csv_path}", err=True)
    if job.status != ImportStatus.DONE:
        raise SystemExit(1)


@accounts_cli.command("import")
@click.argument("incident_id", type=int)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--skip-invalid", is_flag=True, help="Apply the valid rows; write rejected ones to an error CSV.")
def import_accounts(incident_id: int, file: str, skip_invalid: bool):
    """Attach the accounts in FILE (account_number,name,phone,email,locale) to an incident."""
    _run_import(AccountImport(), incident_id, file, skip_invalid)


@recovery_cli.command("import")
@click.argument("incident_id", type=int)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--skip-invalid", is_flag=True, help="Apply the valid rows; write rejected ones to an error CSV.")
def import_recovery(incident_id: int, file: str, skip_invalid: bool):
    """Set recovery states from FILE (account_number,category,state,items_total,items_recovered,note)."""
    from accounts.imports.recovery_import import RecoveryImport

    _run_import(RecoveryImport(), incident_id, file, skip_invalid)


@recovery_cli.command("categories")
@click.argument("incident_id", type=int)
@click.argument("keys", nargs=-1)
def categories(incident_id: int, keys: tuple[str, ...]):
    """Show, or set, the data categories tracked for an incident (e.g. contacts calendar photos)."""
    try:
        if keys:
            service.set_categories(db.session, actor=Actor.cli(), incident_id=incident_id, keys=list(keys))
            db.session.commit()
        cats = service.list_categories(db.session, incident_id=incident_id)
    except ServiceError as e:
        db.session.rollback()
        raise click.ClickException(e.message + "".join(f"\n  {k}: {v}" for k, v in e.fields.items()))
    click.echo(", ".join(c.key for c in cats) or "No categories yet.")


@imports_cli.command("prune")
@click.option("--days", type=click.IntRange(0, 36500), default=None,
              help="Keep files of imports that ended within this many days (default IMPORT_RETENTION_DAYS, 30).")
def prune_imports(days: int | None):
    """Delete uploaded CSVs and rejected-row CSVs of imports that ended long ago (personal data)."""
    from accounts.imports import retention
    from core.db import utcnow

    actor = Actor.cli()
    pruned = retention.prune(db.session, actor=actor, now=utcnow(), days=days)
    db.session.commit()
    click.echo(f"Deleted {pruned.files} file(s) of {pruned.jobs} import(s) that ended more than "
               f"{retention.retention_days() if days is None else days} day(s) ago.")


@accounts_cli.command("erase")
@click.argument("account_number")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase_account(account_number: str, yes: bool):
    """Erase ACCOUNT_NUMBER's personal data everywhere it lives (a subscriber's request); counts, recovery
    statistics, offer liability and opt-outs stay right. Cannot be undone."""
    from accounts import erasure

    if not yes:
        click.confirm(f"Erase every personal detail of account {account_number}? This cannot be undone", abort=True)
    try:
        counts = erasure.erase(db.session, actor=Actor.cli(), account_number=account_number)
        db.session.commit()
    except ServiceError as e:
        db.session.rollback()
        raise click.ClickException(e.message)
    click.echo(f"Erased account {account_number}: {erasure.describe(counts)}.")


@subscriptions_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--consent", required=True, help="How these people agreed to get updates (kept with each and in "
                                                "the audit), e.g. \"Opted in on the 2026 sign-up form\".")
def import_subscriptions(file: str, consent: str):
    """Import subscribers from FILE (CSV: address[,channel][,components][,language]; an export of the
    subscriptions dataset works as it is). All or nothing; opted-out addresses are skipped, existing
    subscriptions kept; each new subscriber is told once, with the way out."""
    from accounts import subscriptions

    try:
        with open(file, "rb") as f:
            result = subscriptions.import_rows(db.session, f, actor=Actor.cli(), consent=consent,
                                               filename=os.path.basename(file))
    except ServiceError as e:
        db.session.rollback()
        raise click.ClickException("; ".join([e.message, *[v for v in e.fields.values() if v != e.message]]))
    if result.error_count:
        db.session.rollback()
        for err in result.errors[:50]:
            click.echo(f"line {err['line']}, {err['column'] or 'row'}: {err['reason']}", err=True)
        raise click.ClickException(f"{result.error_count} invalid row(s): nothing was imported.")
    db.session.commit()
    click.echo(f"Imported: {result.added} added, {result.confirmed} pending confirmed, {result.unchanged} already "
               f"subscribed, {result.opted_out} skipped (opted out).")


@subscriptions_cli.command("erase")
@click.argument("channel", type=click.Choice(["email", "sms"]))
@click.argument("address")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase_subscriber(channel: str, address: str, yes: bool):
    """Erase a status-page subscriber who has no account (they asked to be forgotten): the subscription, the
    messages to ADDRESS and its traces everywhere; its opt-out stays as a keyed hash. Cannot be undone."""
    from accounts import erasure

    if not yes:
        click.confirm(f"Erase everything Lifeboat holds for {address}? This cannot be undone", abort=True)
    try:
        counts = erasure.erase_subscriber(db.session, actor=Actor.cli(), channel=channel, address=address)
        db.session.commit()
    except ServiceError as e:
        db.session.rollback()
        raise click.ClickException(e.message)
    click.echo(f"Erased: {erasure.describe(counts)}.")


@subscriptions_cli.command("counts")
def subscription_counts():
    """Subscriptions by channel and state, and followers per component."""
    from accounts import subscriptions

    counts = subscriptions.counts(db.session)
    for channel, c in counts["channels"].items():
        click.echo(f"{channel}: {c['confirmed']} confirmed, {c['pending']} waiting for confirmation")
    for c in counts["components"]:
        click.echo(f"  {c['name']}: {c['followers']} followers")


def init_app(app) -> None:
    app.cli.add_command(subscriptions_cli)
    app.cli.add_command(accounts_cli)
    app.cli.add_command(recovery_cli)
    app.cli.add_command(imports_cli)
    from accounts import links; links.register_cli(accounts_cli)  # noqa: E702  `accounts link`, `revoke-links`
