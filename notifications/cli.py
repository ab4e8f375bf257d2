"""`flask --app app notifier run [--concurrency N] [--once]`."""
import logging
import signal

import click
from flask import current_app
from flask.cli import AppGroup

from notifications import worker

notifier_cli = AppGroup("notifier", help="Send queued notifications.")


@notifier_cli.command("run")
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=None,
              help="Sends in flight at once (default 4, or NOTIFIER_CONCURRENCY).")
@click.option("--interval", type=float, default=None, help="Seconds between polls when idle (default 1).")
def run(once: bool, concurrency: int | None, interval: float | None):
    """Send due messages from the outbox until stopped; SIGTERM / Ctrl-C finish the sends in flight, then exit."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s notifier %(levelname)s %(message)s")
        logging.getLogger("twilio").setLevel(logging.WARNING)  # it logs every request's headers at INFO
    try:
        notifier = worker.build(current_app._get_current_object(), concurrency=concurrency, poll_interval=interval)
    except ValueError as e:  # e.g. a malformed QUIET_HOURS
        raise click.UsageError(str(e))

    def drain(signum, frame):  # no printing or locks in a signal handler: the worker logs that it stops
        notifier.request_stop()

    previous = {sig: signal.signal(sig, drain) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        s = notifier.settings
        click.echo(f"Notifier running: concurrency {s.concurrency}, SMS {s.sms_rate:g} segments/s, email "
                   f"{s.email_rate:g}/s in any {1 + s.pacing_margin:g} s, quiet hours {_window(s.quiet)} (accounts without a known time zone: "
                   f"{s.fallback_zone}).", err=True)
        attempted = notifier.run(once=once)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(f"Attempted {attempted} message(s)." if once else f"Notifier stopped after {attempted} message(s).")


def _window(window) -> str:
    return f"{window.start:%H:%M}-{window.end:%H:%M}" if window else "off"


def init_app(app) -> None:
    app.cli.add_command(notifier_cli)
