"""Shared set-up for the broadcast tests: an incident with affected accounts in known states."""
import sqlalchemy as sa

from accounts.models import Account, AffectedAccount, RecoveryCategory, RecoveryState, RecoveryStatus
from core.db import db
from incidents.models import Impact, Incident, IncidentKind, IncidentStatus
from notifications.models import Notification


def make_incident(name="Sync outage") -> Incident:
    incident = Incident(kind=IncidentKind.INCIDENT, name=name, impact=Impact.MAJOR,
                        status=IncidentStatus.INVESTIGATING)
    db.session.add(incident)
    db.session.flush()
    for i, key in enumerate(("photos", "contacts", "calendar")):
        db.session.add(RecoveryCategory(incident_id=incident.id, key=key, label=key.capitalize(), position=i))
    db.session.flush()
    return incident


def add_accounts(incident, n: int, *, state=RecoveryState.UNKNOWN, start: int = 0, phone=True, email=True,
                 language="en", categories: dict | None = None, **flags) -> list[AffectedAccount]:
    """n accounts attached to the incident; `categories` {key: state} gives each of them status rows."""
    cats = {c.key: c.id for c in db.session.scalars(
        sa.select(RecoveryCategory).where(RecoveryCategory.incident_id == incident.id))}
    out = []
    for i in range(start, start + n):
        account = Account(account_number=f"N{i}", name=f"Person {i}", language=language,
                          phone=f"+1206555{i:04d}" if phone else None,
                          email=f"p{i}@example.com" if email else None, **flags)
        db.session.add(account)
        db.session.flush()
        aa = AffectedAccount(incident_id=incident.id, account_id=account.id, state=state)
        db.session.add(aa)
        db.session.flush()
        for key, s in (categories or {}).items():
            db.session.add(RecoveryStatus(affected_account_id=aa.id, category_id=cats[key], state=s))
        out.append(aa)
    db.session.flush()
    return out


def rows(**where) -> list[Notification]:
    q = sa.select(Notification).order_by(Notification.id)
    for k, v in where.items():
        q = q.where(getattr(Notification, k) == v)
    return db.session.scalars(q).all()
