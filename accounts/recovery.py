"""Recovery status per affected account and category: the overall-state rule, and set-based apply.

Overall state of an affected account, from its categories (a category with no row yet is `unknown`):
  1. every category recovered                    -> recovered
  2. every category lost                         -> lost
  3. any category at_risk                        -> at_risk      (someone must act)
  4. any category recovering                     -> recovering
  5. any category unknown                        -> unknown
  6. otherwise (all settled, outcomes mixed)     -> partially_recovered
"""
from collections import Counter

import sqlalchemy as sa

from accounts.audiences import enqueue_recovery
from accounts.models import RecoveryState
from core.bulk import analyze, run

S = RecoveryState


def overall_state(states: list[RecoveryState], category_count: int) -> RecoveryState:
    """The overall state for an account whose known category states are `states` (rule in the module doc)."""
    counts = Counter(states)
    counts[S.UNKNOWN] += max(category_count - len(states), 0)
    n = max(category_count, len(states))
    if n == 0:
        return S.UNKNOWN
    if counts[S.RECOVERED] == n:
        return S.RECOVERED
    if counts[S.LOST] == n:
        return S.LOST
    for state in (S.AT_RISK, S.RECOVERING, S.UNKNOWN):
        if counts[state]:
            return state
    return S.PARTIALLY_RECOVERED


# The same rule in SQL, over per-account counts (n = categories of the incident).
_STATE_SQL = """
    CASE
      WHEN agg.rec = :n THEN 'recovered'
      WHEN agg.lost = :n THEN 'lost'
      WHEN agg.risk > 0 THEN 'at_risk'
      WHEN agg.recovering > 0 THEN 'recovering'
      WHEN agg.unknown + (:n - agg.total) > 0 THEN 'unknown'
      ELSE 'partially_recovered'
    END"""

_AGG_SQL = """
    SELECT r.affected_account_id AS aa_id, COUNT(*) AS total,
           SUM(CASE WHEN r.state = 'recovered' THEN 1 ELSE 0 END) AS rec,
           SUM(CASE WHEN r.state = 'lost' THEN 1 ELSE 0 END) AS lost,
           SUM(CASE WHEN r.state = 'at_risk' THEN 1 ELSE 0 END) AS risk,
           SUM(CASE WHEN r.state = 'recovering' THEN 1 ELSE 0 END) AS recovering,
           SUM(CASE WHEN r.state = 'unknown' THEN 1 ELSE 0 END) AS unknown
    FROM recovery_statuses r
    WHERE r.affected_account_id IN ({ids})
    GROUP BY r.affected_account_id"""


def apply_stage(conn, *, stage: str, incident_id: int, category_count: int, actor: str,
                import_id: int | None, now, snapshot_every: int = 0) -> dict:
    """Apply a staged set of recovery rows (columns line, aa_id, category_id, state, items_total,
    items_recovered, note, changed): history rows for real changes, upsert current statuses,
    re-derive the touched accounts' overall state. Returns counts."""
    p = {"now": now.replace(tzinfo=None), "actor": actor, "import_id": import_id, "n": category_count,
         "inc": incident_id}
    total = conn.exec_driver_sql(f"SELECT COUNT(*) FROM {stage}").scalar()
    # Staged rows start as changed (STAGE_COLUMNS) and only the rows equal to the current status are
    # marked, so a first import rewrites none of its staged rows (on PostgreSQL an UPDATE writes a new
    # version of every row it touches).
    unchanged = run(conn, f"""
        UPDATE {stage} SET changed = 0
        WHERE EXISTS (
            SELECT 1 FROM recovery_statuses r
            WHERE r.affected_account_id = {stage}.aa_id AND r.category_id = {stage}.category_id
              AND r.state = {stage}.state
              AND r.items_total IS NOT DISTINCT FROM {stage}.items_total
              AND r.items_recovered IS NOT DISTINCT FROM {stage}.items_recovered
              AND r.note = {stage}.note)
    """)
    changed = total - unchanged
    if unchanged:
        analyze(conn, stage)  # the planner must see how many rows are left to apply
    if not changed:
        return {"rows_created": 0, "rows_updated": 0, "rows_unchanged": total, "accounts_changed": 0}
    enqueue_recovery(conn, stage=stage, now=now)  # notifier: one personal message per changed account
    run(conn, f"""
        INSERT INTO recovery_events (affected_account_id, category_id, old_state, new_state, items_total,
                                     items_recovered, note, actor, import_id, at)
        SELECT s.aa_id, s.category_id, r.state, s.state, s.items_total, s.items_recovered, s.note,
               :actor, :import_id, :now
        FROM {stage} s LEFT JOIN recovery_statuses r
          ON r.affected_account_id = s.aa_id AND r.category_id = s.category_id
        WHERE s.changed = 1
        ORDER BY s.line
    """, **p)
    created = conn.exec_driver_sql(f"""
        SELECT COUNT(*) FROM {stage} s WHERE s.changed = 1 AND NOT EXISTS (
            SELECT 1 FROM recovery_statuses r WHERE r.affected_account_id = s.aa_id AND r.category_id = s.category_id)
    """).scalar()
    run(conn, f"""
        INSERT INTO recovery_statuses (affected_account_id, category_id, state, items_total, items_recovered,
                                       note, updated_by, updated_at)
        SELECT s.aa_id, s.category_id, s.state, s.items_total, s.items_recovered, s.note, :actor, :now
        FROM {stage} s WHERE s.changed = 1
        ON CONFLICT (affected_account_id, category_id) DO UPDATE SET
            state = excluded.state, items_total = excluded.items_total,
            items_recovered = excluded.items_recovered, note = excluded.note,
            updated_by = excluded.updated_by, updated_at = excluded.updated_at
    """, **p)
    touched = f"SELECT DISTINCT aa_id FROM {stage} WHERE changed = 1"
    accounts_changed = run(conn, f"""
        UPDATE affected_accounts SET state = {_STATE_SQL}, updated_at = :now
        FROM ({_AGG_SQL.format(ids=touched)}) agg
        WHERE affected_accounts.id = agg.aa_id AND affected_accounts.state <> {_STATE_SQL}
    """, **p)
    if accounts_changed:
        take_snapshot(conn, incident_id=incident_id, now=now, min_interval_seconds=snapshot_every)
    return {"rows_created": created, "rows_updated": changed - created, "rows_unchanged": total - changed,
            "accounts_changed": accounts_changed}


def rederive_states(conn, *, incident_id: int, category_count: int, now) -> int:
    """Re-derive every affected account's overall state of an incident (after its categories change)."""
    p = {"now": now.replace(tzinfo=None), "n": category_count, "inc": incident_id}
    ids = "SELECT id FROM affected_accounts WHERE incident_id = :inc"
    n = run(conn, f"""
        UPDATE affected_accounts SET state = {_STATE_SQL}, updated_at = :now
        FROM ({_AGG_SQL.format(ids=ids)}) agg
        WHERE affected_accounts.id = agg.aa_id AND affected_accounts.state <> {_STATE_SQL}
    """, **p)
    # Accounts without any status row are unknown (or nothing to derive when there are no categories).
    n += run(conn, """
        UPDATE affected_accounts SET state = 'unknown', updated_at = :now
        WHERE incident_id = :inc AND state <> 'unknown'
          AND NOT EXISTS (SELECT 1 FROM recovery_statuses r WHERE r.affected_account_id = affected_accounts.id)
    """, **p)
    if n:
        take_snapshot(conn, incident_id=incident_id, now=now)
    return n


def take_snapshot(conn, *, incident_id: int, now, min_interval_seconds: int = 0) -> bool:
    """Record how many affected accounts are in each overall state now (for the progress chart).

    One GROUP BY over the (incident_id, state) index. Single edits pass min_interval_seconds so a busy
    console writes at most one snapshot a minute; imports always write one."""
    from accounts.models import RecoverySnapshot

    naive = now.replace(tzinfo=None)
    if min_interval_seconds:
        last = conn.execute(sa.select(sa.func.max(RecoverySnapshot.at))
                            .where(RecoverySnapshot.incident_id == incident_id)).scalar()
        if last is not None and (now - last).total_seconds() < min_interval_seconds:
            return False
    conn.execute(sa.text("""
        INSERT INTO recovery_snapshots (incident_id, at, state, count)
        SELECT :inc, :now, state, COUNT(*) FROM affected_accounts WHERE incident_id = :inc GROUP BY state
    """), {"inc": incident_id, "now": naive})
    return True
