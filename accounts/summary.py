"""An incident's recovery summary: affected accounts by overall state, categories by state, item counts. Read by
the ops API and console (through accounts.service, which checks the incident exists) and by the
recovery.summary_changed webhook event (accounts.webhook_events), which the imports emit too."""
import sqlalchemy as sa

from accounts.models import AffectedAccount, RecoveryCategory, RecoveryState, RecoveryStatus


def recovery_summary(session, *, incident_id: int) -> dict:
    """Counts of affected accounts by overall state, and of categories by state (missing rows = unknown)."""
    by_state = dict(session.execute(
        sa.select(AffectedAccount.state, sa.func.count()).where(AffectedAccount.incident_id == incident_id)
        .group_by(AffectedAccount.state)).all())
    total = sum(by_state.values())
    categories = session.scalars(sa.select(RecoveryCategory).where(RecoveryCategory.incident_id == incident_id)
                                 .order_by(RecoveryCategory.position, RecoveryCategory.id)).all()
    per_cat = session.execute(
        sa.select(RecoveryStatus.category_id, RecoveryStatus.state, sa.func.count(),
                  sa.func.sum(RecoveryStatus.items_total), sa.func.sum(RecoveryStatus.items_recovered))
        .join(RecoveryCategory).where(RecoveryCategory.incident_id == incident_id)
        .group_by(RecoveryStatus.category_id, RecoveryStatus.state)).all()
    cats = {c.id: {"key": c.key, "label": c.label, "states": {s.value: 0 for s in RecoveryState},
                   "items_total": 0, "items_recovered": 0} for c in categories}
    for cat_id, state, n, items_total, items_recovered in per_cat:
        cats[cat_id]["states"][RecoveryState(state).value] += n
        cats[cat_id]["items_total"] += items_total or 0
        cats[cat_id]["items_recovered"] += items_recovered or 0
    for c in cats.values():
        c["states"]["unknown"] += total - sum(c["states"].values())
    return {
        "incident_id": incident_id,
        "affected_accounts": total,
        "states": {s.value: by_state.get(s, 0) for s in RecoveryState},
        "categories": list(cats.values()),
    }
