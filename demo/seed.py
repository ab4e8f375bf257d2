"""`flask --app app demo`: seed a Sidekick-like outage so a fresh install shows a living product.

Everything goes through the real service functions (as the "demo" actor); afterwards the timeline is
backdated so the status page and its 90-day history bars look like a week into the 2009 Sidekick outage.
Each part of the demo is its own function, so later parts (accounts, recovery, offers) slot in beside them."""
import hashlib
import io
import os
import random
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from accounts import service as accounts_service
from accounts.imports.account_import import AccountImport
from accounts.imports.service import create_job, run_job
from accounts.imports.recovery_import import RecoveryImport
from demo import text
from core.db import db, utcnow
from incidents import service as incidents_service
from incidents.models import Component, Incident
from ops import service as ops_service
from ops.audit import Actor
from ops.auth import check_password
from ops.models import Operator

DEMO_EMAIL = "demo@lifeboat.example"
ACTOR = Actor.cli("demo")

# Component groups and their components, in display order.
GROUPS = {
    "Sync services": ["Contacts sync", "Calendar sync", "Photos", "Notes"],
    "Phone services": ["Data service", "Email", "Messaging"],
}
DESCRIPTIONS = {
    "Contacts sync": "Backs up your address book and restores it to a new or reset phone.",
    "Calendar sync": "Keeps your calendar and to-do list in step between the phone and the web.",
    "Photos": "Stores the photos you take and shows them on the web.",
    "Notes": "Keeps your notes safe off the phone.",
    "Data service": "Web browsing and apps on the mobile network.",
    "Email": "Sending and receiving email on the phone.",
    "Messaging": "Instant messaging and SMS.",
}


@dataclass
class Seeded:
    """What the demo created, for the printed summary (and for later parts to build on)."""

    components: dict = field(default_factory=dict)  # name -> Component
    incidents: list = field(default_factory=list)
    operator: object = None
    password: str = ""


# ---- the parts -----------------------------------------------------------------------------------

def seed_components(session, seeded: Seeded, now: datetime) -> None:
    """Component groups: the data services subscribers sync, and the phone services they use."""
    # Existing for the whole 90-day window, so the history bars have data from the first day.
    since = now - timedelta(days=90)
    for group_name, names in GROUPS.items():
        group = incidents_service.create_group(session, actor=ACTOR, data={"name": group_name})
        group.created_at = group.updated_at = since
        for position, name in enumerate(names, start=1):
            component = incidents_service.create_component(
                session, actor=ACTOR, data={"name": name, "group_id": group.id, "position": position,
                                            "description": DESCRIPTIONS.get(name, "")})
            component.created_at = component.updated_at = since
            seeded.components[name] = component


def seed_resolved_incidents(session, seeded: Seeded, now: datetime) -> None:
    """Two short, older outages (one with a postmortem) so the history bars show the past."""
    for story, days_ago in ((text.MESSAGING_DELAY, 71), (text.EMAIL_DELAY, 38)):
        seeded.incidents.append(_play(session, seeded, story, now - timedelta(days=days_ago)))


def seed_maintenance(session, seeded: Seeded, now: datetime) -> None:
    """A completed network maintenance three weeks ago and an upcoming storage migration."""
    done_start = (now - timedelta(days=21)).replace(hour=6, minute=0, second=0, microsecond=0)
    done = incidents_service.schedule_maintenance(session, actor=ACTOR, data={
        **text.DONE_MAINTENANCE["plan"], "scheduled_for": done_start,
        "scheduled_until": done_start + timedelta(hours=2),
        "component_ids": [seeded.components["Data service"].id]})
    _backdate(done.updates[-1], done_start - timedelta(days=7))
    for offset, data in text.DONE_MAINTENANCE["updates"]:
        update = incidents_service.post_update(session, actor=ACTOR, incident_id=done.id, data=data)
        _backdate(update, done_start + offset)
    _settle(done)
    seeded.incidents.append(done)

    soon = (now + timedelta(days=3)).replace(hour=6, minute=0, second=0, microsecond=0)
    upcoming = incidents_service.schedule_maintenance(session, actor=ACTOR, data={
        **text.UPCOMING_MAINTENANCE, "scheduled_for": soon, "scheduled_until": soon + timedelta(hours=4),
        "component_ids": [seeded.components[n].id for n in ("Contacts sync", "Calendar sync")]})
    _backdate(upcoming.updates[-1], now - timedelta(hours=5))
    _settle(upcoming)
    seeded.incidents.append(upcoming)


def seed_sidekick_incident(session, seeded: Seeded, now: datetime) -> None:
    """The open, critical incident: a storage failure took subscribers' personal data with it."""
    seeded.incidents.append(_play(session, seeded, text.SIDEKICK, now - timedelta(days=6, hours=3)))


DEMO_ACCOUNTS = 2000
DEMO_CATEGORIES = ["contacts", "calendar", "photos", "notes", "tasks", "ringtones"]


def seed_affected_accounts(incident_id: int, n: int = DEMO_ACCOUNTS) -> str:
    """Attach n subscribers to the Sidekick incident and record where their data stands, through the
    real CSV imports (so the console shows jobs, a dashboard and a progress chart). Runs after the
    first commit: imports are jobs that commit their own outcome."""
    accounts_service.set_categories(db.session, actor=ACTOR, incident_id=incident_id, keys=DEMO_CATEGORIES)
    rng = random.Random(2009)
    first = ["Ana", "Ben", "Chloé", "Dev", "Eun-ji", "Femi", "Gus", "Hana", "Iker", "Jo", "Kai", "Lucía"]
    last = ["Lee", "Díaz", "Okafor", "Nguyen", "Smith", "Kowalski", "Haddad", "Silva", "Tanaka", "Moreau"]
    rows = ["account_number,name,phone,email,locale"]
    for i in range(n):
        spanish = i % 5 == 0
        rows.append(f"SK{100000 + i},{rng.choice(first)} {rng.choice(last)},+1206555{i % 10000:04d},"
                    f"subscriber{i}@example.com,{'es' if spanish else 'en'}")
    recovery = ["account_number,category,state,items_total,items_recovered,note"]
    for i in range(n):
        for key in DEMO_CATEGORIES:
            roll = rng.random()
            total = rng.randint(5, 900) if key in ("contacts", "photos") else rng.randint(1, 120)
            if roll < 0.55:
                state, done = "recovered", total
            elif roll < 0.7:
                state, done = "recovering", rng.randint(0, total)
            elif roll < 0.8:
                state, done = "partially_recovered", rng.randint(1, total - 1) if total > 1 else 0
            elif roll < 0.88:
                state, done = "lost", 0
            elif roll < 0.93:
                state, done = "at_risk", 0
            else:
                continue  # not assessed yet: unknown
            recovery.append(f"SK{100000 + i},{key},{state},{total},{done},")
    db.session.commit()
    outcomes = []
    for spec, text_rows in ((AccountImport(), rows), (RecoveryImport(), recovery)):
        data = ("\n".join(text_rows) + "\n").encode()
        job = create_job(db.session, spec=spec, incident_id=incident_id, actor=ACTOR,
                         filename=f"demo-{spec.kind.value}.csv", skip_invalid=False, size_bytes=len(data))
        db.session.commit()
        job = run_job(spec=spec, job_id=job.id, stream=io.BytesIO(data), actor=ACTOR)
        outcomes.append(f"{spec.kind.value}: {job.status.value}, {job.rows_read} rows")
    return "; ".join(outcomes)


def seed_operator(session, seeded: Seeded, password: str) -> None:
    """An admin operator so the console can be used right away."""
    seeded.operator = ops_service.create_operator(session, actor=ACTOR, email=DEMO_EMAIL, role="admin",
                                              password=password)
    seeded.password = password


def seed(session, *, password: str, now: datetime | None = None) -> Seeded:
    """Seed every part of the demo into the session (the caller commits)."""
    now = now or utcnow()
    seeded = Seeded()
    seed_components(session, seeded, now)
    # Oldest first, so each component's status events are in time order and the current
    # statuses end where the open incident leaves them.
    seed_resolved_incidents(session, seeded, now)
    seed_maintenance(session, seeded, now)
    seed_sidekick_incident(session, seeded, now)
    seed_operator(session, seeded, password)
    session.flush()
    return seeded


# ---- playing a story through the services, then moving it back in time ------------------------------

def _play(session, seeded: Seeded, story: dict, started_at: datetime):
    """File an incident and post its updates; each update is (time after the start, data)."""
    def statuses(changes: dict) -> dict:
        return {str(seeded.components[name].id): status for name, status in changes.items()}

    first_offset, first = story["updates"][0]
    incident = incidents_service.create_incident(session, actor=ACTOR, data={
        "name": story["name"], "impact": story["impact"], "started_at": started_at,
        "component_ids": [seeded.components[n].id for n in story["components"]],
        "status": first["status"], "message": first["message"],
        "component_statuses": statuses(first.get("components", {}))})
    _backdate(incident.updates[-1], started_at + first_offset)
    for offset, data in story["updates"][1:]:
        update = incidents_service.post_update(session, actor=ACTOR, incident_id=incident.id,
                                     data={"status": data["status"], "message": data["message"],
                                           "component_statuses": statuses(data.get("components", {}))})
        _backdate(update, started_at + offset)
    _settle(incident)
    return incident


def _backdate(update, at: datetime) -> None:
    """Move an update, and the component changes it made, to `at`."""
    update.created_at = update.display_at = at
    for event in update.component_changes:
        event.at = at


def _settle(incident) -> None:
    """Derive the incident's own timestamps from its (backdated) timeline."""
    timeline = sorted(incident.updates, key=lambda u: u.display_at)
    incident.created_at = min(incident.started_at, timeline[0].created_at)
    incident.updated_at = timeline[-1].display_at
    firsts: dict = {}
    for update in timeline:
        firsts.setdefault(update.status.value, update.display_at)
    if incident.monitoring_at is not None:
        incident.monitoring_at = firsts.get("monitoring", incident.monitoring_at)
    if incident.resolved_at is not None:
        incident.resolved_at = min(firsts.get(s, incident.updated_at) for s in ("resolved", "completed", "postmortem"))
    if incident.postmortem_published_at is not None:
        incident.postmortem_published_at = firsts["postmortem"]
    if incident.kind.value == "maintenance" and "in_progress" in firsts:
        incident.started_at = firsts["in_progress"]
    for update in timeline:  # stories are seeded oldest first, so the last change wins
        for event in update.component_changes:
            event.component.updated_at = event.at


# ---- the command --------------------------------------------------------------------------------

def database_has_data(session) -> bool:
    """True when incidents, components or operators exist: the demo never mixes with real data."""
    return any(session.scalar(sa.select(model.id).limit(1)) is not None
               for model in (Incident, Operator, Component))


def credentials_path() -> Path:
    """Where the demo password is kept (0600) so `make run` can print the sign-in each time."""
    configured = current_app.config.get("DEMO_CREDENTIALS_FILE") or os.environ.get("DEMO_CREDENTIALS_FILE")
    if configured:
        return Path(configured)
    instance = Path(current_app.instance_path)
    url = str(current_app.config["SQLALCHEMY_DATABASE_URI"])
    if url == f"sqlite:///{instance / 'lifeboat.db'}":
        return instance / "demo-credentials.txt"
    # Another database (DATABASE_URL) gets its own file, so seeding it never clobbers the main demo's sign-in.
    return instance / f"demo-credentials-{hashlib.sha256(url.encode()).hexdigest()[:8]}.txt"


def _save_credentials(email: str, password: str) -> None:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 from the start, so the password is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"email: {email}\npassword: {password}\n")
    path.chmod(0o600)


def current_sign_in(session) -> tuple[str, str] | None:
    """(email, password) of the demo operator, only while that operator exists, is active and still
    has that password; otherwise None, so nothing misleading is printed."""
    try:
        lines = dict(line.split(": ", 1) for line in credentials_path().read_text().splitlines() if ": " in line)
    except OSError:
        return None
    email, password = lines.get("email", ""), lines.get("password", "")
    operator = ops_service.get_operator_by_email(session, email) if email else None
    if operator is None or not operator.active or not check_password(operator, password):
        return None
    return email, password


def _echo_sign_in(email: str, password: str) -> None:
    # No host here: `make run` may serve on another PORT; the console is always at /ops/sign-in.
    click.echo(f"Demo operator sign-in (console /ops/sign-in): email {email}  password {password}")


@click.command("demo")
@click.option("--if-empty", is_flag=True, help="Do nothing (but print the demo sign-in) when data exists.")
@with_appcontext
def demo_command(if_empty: bool) -> None:
    """Seed a Sidekick-like outage: components, incidents, maintenance and an admin operator."""
    session = db.session
    if database_has_data(session):
        if not if_empty:
            raise click.ClickException(
                "The database already holds incidents, components or operators; the demo is only seeded into "
                "an empty database, so nothing was added. (Use --if-empty to skip quietly.)")
        click.echo("The database already holds data; the demo was not seeded.")
        if sign_in := current_sign_in(session):
            _echo_sign_in(*sign_in)
        return
    password = secrets.token_urlsafe(12)
    seeded = seed(session, password=password)
    session.commit()
    sidekick = next(i for i in seeded.incidents if i.kind.value == "incident" and i.is_open)
    imported = seed_affected_accounts(sidekick.id)
    _save_credentials(DEMO_EMAIL, password)
    click.echo(f"Seeded the demo: {len(seeded.components)} components in {len(GROUPS)} groups, "
               f"{len(seeded.incidents)} incidents and maintenance windows:")
    for incident in seeded.incidents:
        click.echo(f"  #{incident.id} {incident.kind.value:<11} {incident.status.value:<13} {incident.name}")
    click.echo(f"Affected accounts of #{sidekick.id} ({DEMO_ACCOUNTS} subscribers, {len(DEMO_CATEGORIES)} data "
               f"categories) imported: {imported}.")
    click.echo(f"The password is kept in {credentials_path()} (readable only by you).")
    _echo_sign_in(DEMO_EMAIL, password)


def init_app(app) -> None:
    app.cli.add_command(demo_command)
