"""The audit log: every operator write, with who, what, when and the record before and after."""
import getpass
import io
import json
import os
import re
import socket
from dataclasses import dataclass

import click
import sqlalchemy as sa

from core import csvout
from core.db import db, utcnow
from ops.models import AuditEntry, Operator


@dataclass(frozen=True)
class Actor:
    """Who is doing a write: an operator (web or API token), or the command line."""

    operator_id: int | None
    label: str
    ip: str | None = None

    @classmethod
    def cli(cls, what: str | None = None) -> "Actor":
        """The command line: labelled with the OS user and host who ran it ("cli root@db-1"), and the operator
        named by `--as EMAIL` (`as_option`) when given; or `what` for the machine's own work (the demo seed,
        tests)."""
        if what:
            return cls(operator_id=None, label=what)
        label = f"cli {_os_user()}@{socket.gethostname()}"
        context = click.get_current_context(silent=True)
        email = context.meta.get(AS_KEY) if context is not None else None
        if not email:
            return cls(operator_id=None, label=label)
        operator = db.session.scalar(sa.select(Operator).where(sa.func.lower(Operator.email) == email))
        if operator is None or not operator.active:
            raise click.UsageError(f"--as {email}: no active operator has this email (flask operators list).")
        return cls(operator_id=operator.id, label=f"{label} as {operator.email}")

    @classmethod
    def subscriber(cls, who: str) -> "Actor":
        """A subscriber acting on their own data: "subscriber SK100001" (the account) or "subscriber (sms:STOP)"
        (only the channel is known)."""
        return cls(operator_id=None, label=f"subscriber {who}"[:300])

    @classmethod
    def system(cls, what: str) -> "Actor":
        """Lifeboat itself: a scheduled task, a provider's report ("system twilio:21610")."""
        return cls(operator_id=None, label=f"system {what}"[:300])


AS_KEY = "lifeboat.as"  # click context meta: the operator a command acts as (--as EMAIL)


def _remember_as(ctx, _param, value):
    if value:
        ctx.meta[AS_KEY] = value.strip().lower()
    return value


def as_option(command):
    """Give a click command or group `--as EMAIL`: its audit entries name that operator beside the OS user."""
    command.params.append(click.Option(
        ["--as", "as_operator"], metavar="EMAIL", expose_value=False, callback=_remember_as, is_eager=True,
        help="Audit this command as done by this operator (an active operator's email), besides the OS user."))
    return command


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no password entry (a bare container)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def snapshot(obj, fields: tuple[str, ...]) -> dict:
    """A JSON-ready dict of an object's fields, for before/after records."""
    out = {}
    for f in fields:
        v = getattr(obj, f)
        if hasattr(v, "isoformat"):
            v = v.isoformat()
        elif isinstance(v, (list, tuple)):
            v = [getattr(x, "id", x) for x in v]
        out[f] = v
    return out


# The fields that name an entity, in the order they are looked for in its before/after record.
LABEL_FIELDS = ("name", "title", "account_number", "email", "key", "label", "code", "address", "url")


def label_of(before: dict | None, after: dict | None) -> str | None:
    """What the entity was called ("Sync service"), from its after or before record."""
    for snap in (after, before):
        for field in LABEL_FIELDS:
            if isinstance(snap, dict) and isinstance(snap.get(field), str) and snap[field].strip():
                return snap[field].strip()[:300]
    return None


def record(session, *, actor: Actor, action: str, entity_type: str, entity_id=None,
           before: dict | None = None, after: dict | None = None, label: str | None = None) -> AuditEntry:
    """Add an audit entry to the session (the caller commits it with the change). `label` names the entity
    (by default its name, account number, email, ... from `after` or `before`): ids can come back after a
    delete, so "component #8" alone could be three components."""
    entry = AuditEntry(
        at=utcnow(), operator_id=actor.operator_id, actor=actor.label, action=action,
        entity_type=entity_type, entity_id=None if entity_id is None else str(entity_id),
        before=before, after=after, ip=actor.ip,
    )
    if label := label or label_of(before, after):  # unset, the column stays out of the INSERT (older schemas)
        entry.entity_label = label
    session.add(entry)
    return entry


def list_entries(session, *, page: int = 1, per_page: int = 50, action: str | None = None,
                 operator_id: int | None = None):
    """The newest audit entries first, optionally filtered; returns (entries, total)."""
    q = sa.select(AuditEntry)
    if action:
        q = q.where(AuditEntry.action.like(f"{action}%"))
    if operator_id:
        q = q.where(AuditEntry.operator_id == operator_id)
    total = session.scalar(sa.select(sa.func.count()).select_from(q.subquery()))
    rows = session.scalars(
        q.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(per_page).offset((page - 1) * per_page)
    ).all()
    return rows, total


# ---- export -----------------------------------------------------------------------------------------

EXPORT_COLUMNS = ("id", "at", "actor", "operator_id", "action", "entity_type", "entity_id", "entity_label", "ip",
                  "before", "after")


def iter_entries(session, *, action: str | None = None, operator_id: int | None = None, batch: int = 1000):
    """Every entry matching the filters, oldest first, read in batches by id (memory stays flat however long
    the log is)."""
    table = AuditEntry.__table__  # Core rows: nothing is kept in the session's identity map
    after = 0
    while True:
        q = sa.select(table).where(table.c.id > after).order_by(table.c.id).limit(batch)
        if action:
            q = q.where(table.c.action.like(f"{action}%"))
        if operator_id:
            q = q.where(table.c.operator_id == operator_id)
        rows = session.execute(q).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].id


def csv_chunks(entries, *, chunk_rows: int = 500):
    """The audit log as CSV text, a header row then EXPORT_COLUMNS per entry (before/after as JSON), in chunks
    for a streamed download or a file; every cell through core.csvout (no formulas)."""
    buffer = io.StringIO()
    out = csvout.writer(buffer)
    out.writerow(EXPORT_COLUMNS)
    for n, e in enumerate(entries, 1):
        out.writerow([e.id, e.at.isoformat().replace("+00:00", "Z"), e.actor, e.operator_id, e.action,
                      e.entity_type, e.entity_id, e.entity_label, e.ip,
                      None if e.before is None else json.dumps(e.before, ensure_ascii=False, sort_keys=True),
                      None if e.after is None else json.dumps(e.after, ensure_ascii=False, sort_keys=True)])
        if n % chunk_rows == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def record_export(session, *, actor: Actor, via: str, action: str | None, operator_id: int | None) -> None:
    """The export itself is audited (the log holds personal data), with its filters."""
    record(session, actor=actor, action="audit.export", entity_type="audit_log",
           after={"via": via, "action": action, "operator_id": operator_id})


_CHANGED = re.compile(r"(?<![\d.])[1-9]\d*")  # a count above zero in a task's result text


def record_task(session, name: str, result: str) -> None:
    """A scheduled task's run in the audit log, as the system, when its result counts something it changed
    ("3 offers expired"); runs that found nothing to do ("0 message texts removed") are not."""
    if result and _CHANGED.search(result):
        record(session, actor=Actor.system(name), action="task.run", entity_type="task", entity_id=name,
               label=name, after={"result": result})
