"""`flask --app app periodic run [--once] [--interval N]` and `periodic status`: the scheduled tasks of
core.periodic, for running them without the notifier worker and for seeing where they stand."""
import logging
import signal
import time

import click
from flask.cli import AppGroup

from core import periodic
from core.db import db, utcnow

periodic_cli = AppGroup("periodic", help="Scheduled tasks (offer expiry and reminders, prunes, retention).")


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


@periodic_cli.command("run")
@click.option("--once", is_flag=True, help="Run the tasks that are due now, then exit.")
@click.option("--interval", type=click.FloatRange(1, 3600), default=60, show_default=True,
              help="Seconds between passes when looping.")
def run(once: bool, interval: float):
    """Run due tasks; each due run happens once even with several workers. Loops until Ctrl-C / SIGTERM."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s periodic %(levelname)s %(message)s")
    if once:
        _echo(periodic.run_due())
        return
    # The handler only flips a flag: a signal handler that sets an Event the main thread is waiting on can
    # deadlock on the Event's own lock. The loop sleeps in short steps and looks at the flag.
    stopping = []
    previous = {sig: signal.signal(sig, lambda signum, frame: stopping.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    click.echo(f"Running scheduled tasks every {interval:g} s; Ctrl-C stops.", err=True)
    try:
        while not stopping:
            _echo(periodic.run_due())
            db.session.remove()  # no session held between passes
            deadline = time.monotonic() + interval
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("Stopped.", err=True)


def _echo(results: dict[str, str]) -> None:
    if not results:
        click.echo("No task was due.")
    for name, result in results.items():
        click.echo(f"{name}: {result}")


@periodic_cli.command("status")
def status():
    """Each task: how often, next run, and its last result or error."""
    rows = periodic.status(db.session, now=utcnow())
    table = [("Task", "Every", "Next run", "Last finished", "Last result")]
    for r in rows:
        if r["running"]:
            last = f"running (lease until {_when(r['lease_until'])})"
        elif r["last_error"]:
            last = f"ERROR {r['last_error']}"
        else:
            last = r["last_result"] or "never ran"
        table.append((r["name"], periodic.every(r["every_seconds"]),
                      _when(r["next_run_at"]) if r["every_seconds"] else "off", _when(r["last_finished_at"]), last))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4])


def init_app(app) -> None:
    app.cli.add_command(periodic_cli)
