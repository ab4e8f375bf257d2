"""Affected accounts and recovery status: categories, single edits, summaries, lists, export.

Functions take the session (and an Actor for writes) and do not commit."""
import io
import re
from datetime import datetime, timezone
from typing import Iterator

import sqlalchemy as sa

from accounts.imports.rows import check_account_number
from accounts.models import (
    Account, AffectedAccount, RecoveryCategory, RecoveryEvent, RecoveryState, RecoveryStatus,
)
from accounts import summary, webhook_events
from accounts.recovery import apply_stage, rederive_states
from accounts.imports.recovery_import import STAGE_COLUMNS, categories_of, resolve_accounts
from accounts.imports.rows import validate_status
from core import csvout
from core.bulk import create_stage, drop_stage, load
from core.db import utcnow
from core.errors import NotFound, ValidationError
from incidents.models import Incident
from ops.audit import Actor, record

DEFAULT_CATEGORIES = ("contacts", "calendar", "photos", "notes", "tasks", "ringtones")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def _incident(session, incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"No incident with id {incident_id}.")
    return incident


def list_categories(session, *, incident_id: int) -> list[RecoveryCategory]:
    return session.scalars(sa.select(RecoveryCategory).where(RecoveryCategory.incident_id == incident_id)
                           .order_by(RecoveryCategory.position, RecoveryCategory.id)).all()


def set_categories(session, *, actor: Actor, incident_id: int, keys: list[str]) -> list[RecoveryCategory]:
    """Choose the incident's data categories (e.g. contacts, calendar, photos); a category that
    already has statuses cannot be removed."""
    _incident(session, incident_id)
    clean, seen = [], set()
    for raw in keys:
        key = raw.strip().lower().replace(" ", "_").replace("-", "_")
        if not key:
            continue
        if not _KEY.match(key):
            raise ValidationError("Please correct the categories.", {
                "categories": f"{raw!r}: use lower-case letters, digits and _ (at most 32), starting with a letter."})
        if key not in seen:
            seen.add(key)
            clean.append(key)
    if not clean:
        raise ValidationError("Please correct the categories.", {"categories": "Name at least one category."})
    existing = {c.key: c for c in list_categories(session, incident_id=incident_id)}
    removed = [c for k, c in existing.items() if k not in seen]
    in_use = [c.key for c in removed if session.scalar(
        sa.select(RecoveryStatus.id).where(RecoveryStatus.category_id == c.id).limit(1))]
    if in_use:
        raise ValidationError("Please correct the categories.", {
            "categories": f"Cannot remove {', '.join(in_use)}: accounts already have statuses in it."})
    for c in removed:
        session.delete(c)
    for position, key in enumerate(clean):
        if key in existing:
            existing[key].position = position
        else:
            session.add(RecoveryCategory(incident_id=incident_id, key=key,
                                         label=key.replace("_", " ").capitalize(), position=position))
    session.flush()
    rederive_states(session.connection(), incident_id=incident_id, category_count=len(clean), now=utcnow())
    record(session, actor=actor, action="recovery.categories", entity_type="incident", entity_id=incident_id,
           before={"categories": sorted(existing)}, after={"categories": clean})
    if list(existing) != clean:  # added, removed or reordered
        webhook_events.summary_changed(session, incident_id=incident_id)
    return list_categories(session, incident_id=incident_id)


def get_affected(session, *, incident_id: int, account_number: str) -> AffectedAccount:
    if check_account_number(account_number):  # no account has such a number (and a NUL breaks PostgreSQL)
        raise NotFound(f"Account {account_number!r} is not an affected account of incident {incident_id}.")
    affected = session.scalar(
        sa.select(AffectedAccount).join(Account)
        .where(AffectedAccount.incident_id == incident_id, Account.account_number == account_number))
    if affected is None:
        raise NotFound(f"Account {account_number!r} is not an affected account of incident {incident_id}.")
    return affected


def update_recovery(session, *, actor: Actor, incident_id: int, account_number: str,
                    items: list[dict]) -> dict:
    """Set one account's status in some categories: items [{category, state, items_total,
    items_recovered, note}]. Same rules and history as the CSV import. Returns counts."""
    affected = get_affected(session, incident_id=incident_id, account_number=account_number)
    if not isinstance(items, list) or not items:
        raise ValidationError("Nothing to update.", {"categories": "Give at least one category with a state."})
    categories = categories_of(session, incident_id)
    rows, errors = [], {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors[f"categories[{i}]"] = "Must be an object with category and state."
            continue
        problems, clean = validate_status(categories, i, {**item, "account_number": account_number})
        for e in problems:
            errors[f"categories[{i}].{e.column}"] = e.reason
        if clean:
            rows.append(clean)
    if errors:
        raise ValidationError("Please correct the recovery status.", errors)
    before = _recovery_record(session, affected, account_number, categories, [r[2] for r in rows])
    conn = session.connection()
    stage = "stage_recovery_edit"
    create_stage(conn, stage, STAGE_COLUMNS)
    load(conn, stage, ("line", "account_number", "category_id", "state", "items_total", "items_recovered", "note"),
         rows)
    repeated = resolve_accounts(conn, stage, incident_id)
    if repeated:
        drop_stage(conn, stage)
        raise ValidationError("Please correct the recovery status.",
                              {f"categories[{e.line}].category": e.reason for e in repeated})
    counts = apply_stage(conn, stage=stage, incident_id=incident_id, category_count=len(categories),
                         actor=actor.label, import_id=None, now=utcnow(), snapshot_every=60)
    drop_stage(conn, stage)
    session.expire(affected)
    after = _recovery_record(session, affected, account_number, categories, [r[2] for r in rows])
    record(session, actor=actor, action="recovery.update", entity_type="affected_account",
           entity_id=affected.id, before=before, after={**after, **counts})
    if counts.get("rows_created") or counts.get("rows_updated"):
        webhook_events.summary_changed(session, incident_id=incident_id)
    return counts


def _recovery_record(session, affected, account_number: str, categories: dict[str, int],
                     category_ids: list[int]) -> dict:
    """The account's overall state and its status in the given categories, for the audit log's before/after
    (a category without a status row is "unknown")."""
    keys = {cid: key for key, cid in categories.items()}
    found = {r.category_id: r for r in session.execute(
        sa.select(RecoveryStatus.category_id, RecoveryStatus.state, RecoveryStatus.items_total,
                  RecoveryStatus.items_recovered, RecoveryStatus.note)
        .where(RecoveryStatus.affected_account_id == affected.id, RecoveryStatus.category_id.in_(category_ids)))}
    items = []
    for cid in category_ids:
        r = found.get(cid)
        items.append({"category": keys[cid], "state": getattr(r.state, "value", r.state) if r else "unknown",
                      "items_total": r.items_total if r else None, "items_recovered": r.items_recovered if r else None,
                      "note": r.note if r else ""})
    state = session.scalar(sa.select(AffectedAccount.state).where(AffectedAccount.id == affected.id))
    return {"account_number": account_number, "overall_state": getattr(state, "value", state), "items": items}


def recovery_summary(session, *, incident_id: int) -> dict:
    """Counts of affected accounts by overall state, and of categories by state (missing rows = unknown)."""
    _incident(session, incident_id)
    return summary.recovery_summary(session, incident_id=incident_id)


def list_affected(session, *, incident_id: int, state: str | None = None, category: str | None = None,
                  category_state: str | None = None, q: str | None = None, page: int = 1,
                  per_page: int = 50) -> tuple[list[AffectedAccount], int]:
    """A page of affected accounts, filtered by overall state, by a category's state, or by a search."""
    return list_affected_window(session, incident_id=incident_id, state=state, category=category,
                                category_state=category_state, q=q, limit=per_page, offset=(page - 1) * per_page)


def list_affected_window(session, *, incident_id: int, state: str | None = None, category: str | None = None,
                         category_state: str | None = None, q: str | None = None, limit: int = 50,
                         offset: int = 0) -> tuple[list[AffectedAccount], int]:
    """Like list_affected, by limit and offset (the ops API pages this way); returns (rows, total)."""
    query = sa.select(AffectedAccount).join(Account).where(AffectedAccount.incident_id == incident_id)
    if state:
        query = query.where(AffectedAccount.state == RecoveryState(state))
    if category and category_state:
        cat = sa.select(RecoveryCategory.id).where(RecoveryCategory.incident_id == incident_id,
                                                   RecoveryCategory.key == category).scalar_subquery()
        if category_state == RecoveryState.UNKNOWN:
            query = query.where(~sa.exists().where(
                RecoveryStatus.affected_account_id == AffectedAccount.id, RecoveryStatus.category_id == cat,
                RecoveryStatus.state != RecoveryState.UNKNOWN))
        else:
            query = query.where(sa.exists().where(
                RecoveryStatus.affected_account_id == AffectedAccount.id, RecoveryStatus.category_id == cat,
                RecoveryStatus.state == RecoveryState(category_state)))
    if q:
        query = query.where(account_search_clause(q))
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(AffectedAccount.id).limit(limit).offset(offset)).all()
    return rows, total


def account_search_clause(q: str):
    """Match an account by exact number, phone (any format) or email."""
    from accounts.contact import ContactError, normalise_phone
    from flask import current_app

    q = q.strip()
    clauses = [Account.account_number == q, Account.email == q.lower()]
    try:
        if phone := normalise_phone(q, current_app.config["PHONE_DEFAULT_REGION"]):
            clauses.append(Account.phone == phone)
    except ContactError:
        pass
    return sa.or_(*clauses)


def search_accounts(session, *, q: str, limit: int = 50) -> list[Account]:
    return session.scalars(sa.select(Account).where(account_search_clause(q)).limit(limit)).all()


def statuses_of(session, *, affected_id: int) -> dict[int, RecoveryStatus]:
    rows = session.scalars(sa.select(RecoveryStatus).where(RecoveryStatus.affected_account_id == affected_id))
    return {r.category_id: r for r in rows}


def history_of(session, *, affected_id: int, limit: int = 200) -> list[RecoveryEvent]:
    return session.scalars(sa.select(RecoveryEvent).where(RecoveryEvent.affected_account_id == affected_id)
                           .order_by(RecoveryEvent.at.desc(), RecoveryEvent.id.desc()).limit(limit)).all()


EXPORT_BATCH = 5000


def export_rows(session, *, incident_id: int) -> Iterator[str]:
    """Stream CSV text of every affected account with its overall and per-category state, in batches."""
    categories = list_categories(session, incident_id=incident_id)
    out = io.StringIO()
    w = csvout.writer(out)
    # The import's columns first (the file can be imported again), then what else is known about the account.
    header = ["account_number", "name", "phone", "email", "locale", "overall_state", "time_zone", "sms_opt_out",
              "email_opt_out", "added_at", "updated_at"]
    for c in categories:
        header += [f"{c.key}_state", f"{c.key}_items_total", f"{c.key}_items_recovered", f"{c.key}_note"]
    w.writerow(header)
    last_id = 0
    while True:
        chunk = session.execute(
            sa.select(AffectedAccount.id, Account.account_number, Account.name, Account.phone, Account.email,
                      Account.language, AffectedAccount.state, Account.time_zone, Account.sms_opt_out,
                      Account.email_opt_out, AffectedAccount.added_at, AffectedAccount.updated_at)
            .join(Account).where(AffectedAccount.incident_id == incident_id, AffectedAccount.id > last_id)
            .order_by(AffectedAccount.id).limit(EXPORT_BATCH)).all()
        if not chunk:
            break
        ids = [r[0] for r in chunk]
        statuses: dict[tuple[int, int], tuple] = {}
        for aa_id, cat_id, st, tot, rec, note in session.execute(
                sa.select(RecoveryStatus.affected_account_id, RecoveryStatus.category_id, RecoveryStatus.state,
                          RecoveryStatus.items_total, RecoveryStatus.items_recovered, RecoveryStatus.note)
                .where(RecoveryStatus.affected_account_id.in_(ids))):
            statuses[(aa_id, cat_id)] = (RecoveryState(st).value, tot, rec, note)
        for aa_id, number, name, phone, email, lang, state, zone, sms_out, email_out, added, updated in chunk:
            row = [number, name, phone or "", email or "", lang, RecoveryState(state).value, zone or "",
                   "true" if sms_out else "false", "true" if email_out else "false", _utc(added), _utc(updated)]
            for c in categories:
                st, tot, rec, note = statuses.get((aa_id, c.id), ("unknown", None, None, ""))
                row += [st, "" if tot is None else tot, "" if rec is None else rec, note or ""]
            w.writerow(row)
        last_id = ids[-1]
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    if out.tell():  # only the header: no affected accounts yet
        yield out.getvalue()


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# ---- recovery progress over time (console chart) ---------------------------------------------------

PROGRESS_STATES = ("recovered", "partially_recovered", "lost", "recovering", "at_risk", "unknown")
MAX_BUCKETS = 400


def recovery_progress(session, *, incident_id: int, unit: str | None = None,
                      live_states: dict | None = None) -> dict:
    """Affected accounts by overall state at the end of each day (or hour), from the snapshots written
    after every change (accounts.recovery.take_snapshot), with the live counts as the last point.

    Returns {"unit", "buckets": [datetime...], "series": {state: [count per bucket]}}."""
    from datetime import datetime, timedelta

    from accounts.models import RecoverySnapshot

    _incident(session, incident_id)
    rows = session.execute(sa.select(RecoverySnapshot.at, RecoverySnapshot.state, RecoverySnapshot.count)
                           .where(RecoverySnapshot.incident_id == incident_id)
                           .order_by(RecoverySnapshot.at)).all()
    if live_states is None:
        live_states = recovery_summary(session, incident_id=incident_id)["states"]
    live = {RecoveryState(k).value: v for k, v in live_states.items()}
    now = utcnow()
    if not rows and not any(live.values()):
        return {"unit": unit or "day", "buckets": [], "series": {s: [] for s in PROGRESS_STATES}}
    snapshots: dict[datetime, dict[str, int]] = {}
    for at, state, count in rows:
        snapshots.setdefault(at, {})[RecoveryState(state).value] = count
    snapshots[now] = live
    start = min(snapshots)
    if unit not in ("day", "hour"):
        # By calendar days (UTC), so the choice does not depend on the time of day: a story that touches
        # four or more dates goes day by day, a shorter one hour by hour.
        unit = "hour" if (now.date() - start.date()).days < 3 else "day"
    step = timedelta(days=1) if unit == "day" else timedelta(hours=1)

    def bucket(t: datetime) -> datetime:
        return t.replace(minute=0, second=0, microsecond=0, **({"hour": 0} if unit == "day" else {}))

    last_of_bucket: dict[datetime, dict[str, int]] = {}
    for at in sorted(snapshots):  # the last snapshot in a bucket is where that bucket ended
        last_of_bucket[bucket(at)] = snapshots[at]
    first, last = min(last_of_bucket), max(last_of_bucket)
    first = max(first, last - step * (MAX_BUCKETS - 1))
    buckets, series = [], {s: [] for s in PROGRESS_STATES}
    current = {s: 0 for s in PROGRESS_STATES}
    for b in sorted(k for k in last_of_bucket if k < first):
        current = last_of_bucket[b]
    t = first
    while t <= last:
        current = last_of_bucket.get(t, current)  # a bucket without changes carries the previous counts
        buckets.append(t)
        for s in PROGRESS_STATES:
            series[s].append(current.get(s, 0))
        t += step
    return {"unit": unit, "buckets": buckets, "series": series}


# ---- console helpers --------------------------------------------------------------------------------

def list_import_jobs(session, *, incident_id: int, limit: int = 50) -> list:
    """An incident's import jobs, newest first."""
    from accounts.models import ImportJob

    return session.scalars(sa.select(ImportJob).where(ImportJob.incident_id == incident_id)
                           .order_by(ImportJob.id.desc()).limit(limit)).all()


def get_import_job(session, *, job_id: int):
    """One import job, or NotFound."""
    from accounts.models import ImportJob

    job = session.get(ImportJob, job_id)
    if job is None:
        raise NotFound(f"No import with id {job_id}.")
    return job


def incidents_of_accounts(session, *, account_ids: list[int]) -> dict[int, list[tuple[Incident, AffectedAccount]]]:
    """For each account id, the incidents it is attached to (newest first) with its affected row."""
    out: dict[int, list] = {i: [] for i in account_ids}
    if not account_ids:
        return out
    rows = session.execute(sa.select(AffectedAccount, Incident)
                           .join(Incident, Incident.id == AffectedAccount.incident_id)
                           .where(AffectedAccount.account_id.in_(account_ids))
                           .order_by(Incident.started_at.desc(), Incident.id.desc())).all()
    for affected, incident in rows:
        out[affected.account_id].append((incident, affected))
    return out


def states_of_many(session, *, affected_ids: list[int]) -> dict[tuple[int, int], str]:
    """{(affected account id, category id): state} for a page of affected accounts (absent = unknown)."""
    if not affected_ids:
        return {}
    rows = session.execute(sa.select(RecoveryStatus.affected_account_id, RecoveryStatus.category_id,
                                     RecoveryStatus.state).where(RecoveryStatus.affected_account_id.in_(affected_ids)))
    return {(aa_id, cat_id): RecoveryState(state).value for aa_id, cat_id, state in rows}
