"""Small factories for account tests."""
import io
from pathlib import Path

import sqlalchemy as sa

from accounts.imports.account_import import AccountImport
from accounts.imports.service import create_job, run_job
from accounts.imports.recovery_import import RecoveryImport
from core.db import db
from incidents import service as incidents
from ops.audit import Actor

ACTOR = Actor.cli("test")
HEADER = "account_number,name,phone,email,locale\n"
RECOVERY_HEADER = "account_number,category,state,items_total,items_recovered,note\n"


def make_incident(name: str = "Sidekick data loss", categories=("contacts", "calendar", "photos")):
    from accounts import service as accounts

    incident = incidents.create_incident(db.session, actor=ACTOR, data={
        "name": name, "impact": "critical", "message": "We are investigating."})
    db.session.flush()
    if categories:
        accounts.set_categories(db.session, actor=ACTOR, incident_id=incident.id, keys=list(categories))
    db.session.commit()
    return incident


def run_import(incident_id: int, text: str | bytes | Path, *, kind: str = "accounts", skip_invalid: bool = False):
    """Import text, or the file at a path (which a large enough import reads in worker processes)."""
    spec = AccountImport() if kind == "accounts" else RecoveryImport()
    if isinstance(text, Path):
        stream = open(text, "rb")
    else:
        stream = io.BytesIO(text.encode("utf-8") if isinstance(text, str) else text)
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    job = create_job(db.session, spec=spec, incident_id=incident_id, actor=ACTOR, filename=f"{kind}.csv",
                     skip_invalid=skip_invalid, size_bytes=size)
    db.session.commit()
    with stream:
        return run_job(spec=spec, job_id=job.id, stream=stream, actor=ACTOR)


def attach(incident_id: int, *numbers: str):
    rows = "".join(f"{n},Name {n},+1206555{i:04d},{n.lower()}@example.com,en\n" for i, n in enumerate(numbers))
    job = run_import(incident_id, HEADER + rows)
    assert job.status.value == "done", (job.message, job.errors)
    return job


def count_rows(model, *where) -> int:
    """Rows of `model` matching `where`."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def recover(incident_id: int, rows: str) -> None:
    """Import recovery rows (after RECOVERY_HEADER) for the incident; they must all apply."""
    job = run_import(incident_id, RECOVERY_HEADER + rows, kind="recovery")
    assert job.status.value == "done", job.errors


def open_personal_page(client, affected_account_id: int) -> str:
    """Open the personal page the way a subscriber's personal link does; returns its HTML."""
    from accounts import links

    token = links.issue_link(db.session, affected_account_id)
    db.session.commit()
    assert client.get(f"/m/{token}").status_code == 303
    page = client.get("/my/account")
    assert page.status_code == 200
    return page.get_data(as_text=True)
