"""`flask --app app notifier run [--once]`."""
import time

import click
from flask.cli import AppGroup

from core.db import db
from notifications import worker

notifier_cli = AppGroup("notifier", help="Send queued notifications.")


@notifier_cli.command("run")
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between polls when idle.")
def run(once: bool, interval: float):
    """Send due messages from the outbox, until stopped (Ctrl-C / SIGTERM)."""
    try:
        while True:
            sent = worker.run_once(db.session)
            if once:
                click.echo(f"Attempted {sent} message(s).")
                return
            if not sent:
                time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("Notifier stopped.")


def init_app(app) -> None:
    app.cli.add_command(notifier_cli)
