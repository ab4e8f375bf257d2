"""Import affected accounts for an incident: account_number,name,phone,email,locale."""
from flask import current_app
from sqlalchemy.orm import Session

from accounts import webhook_events
from accounts.imports.csvio import RowError
from accounts.imports.rows import ACCOUNT_COLUMNS, validate_account
from accounts.imports.service import Context, ImportSpec
from accounts.models import Account, AffectedAccount, ImportKind
from accounts.recovery import take_snapshot
from core.bulk import analyze, is_postgres, run, unique_or_index
from core.i18n import languages

REBUILD_ABOVE = 50_000  # new accounts from which SQLite builds the lookup indexes once, after the load


def _secondary_indexes(conn, stage: str, total: int) -> list:
    """On SQLite, for a large load of new accounts: the non-unique indexes of accounts and affected_accounts
    (phone, email, account_id, incident+state), to drop before the inserts and build again after them, in the
    same transaction. A million phones and emails arrive in random order: one sort per index costs about half
    of a million single inserts into B-trees (9.8 s -> 5.0 s for the accounts table). Readers see the old
    snapshot, indexes and all, until the commit (WAL), and writers wait for the import's lock in any case.
    PostgreSQL: never (DROP INDEX would lock readers out of the table for the whole load)."""
    if is_postgres(conn):
        return []
    # At least `total` - (accounts there are) of the staged rows are new: enough to decide, most times,
    # without a million probes; otherwise count them.
    new = total - conn.exec_driver_sql("SELECT COUNT(*) FROM accounts").scalar()
    if new < REBUILD_ABOVE:
        new = conn.exec_driver_sql(
            f"SELECT COUNT(*) FROM {stage} s WHERE NOT EXISTS "
            f"(SELECT 1 FROM accounts a WHERE a.account_number = s.account_number)").scalar()
    if new < REBUILD_ABOVE:
        return []
    return [ix for table in (Account.__table__, AffectedAccount.__table__) for ix in sorted(
        table.indexes, key=lambda i: i.name) if not ix.unique]


class AccountImport(ImportSpec):
    kind = ImportKind.ACCOUNTS
    columns = ACCOUNT_COLUMNS
    stage_columns = ("line INTEGER, account_number VARCHAR(64), name VARCHAR(200), phone VARCHAR(20), "
                     "email VARCHAR(254), language VARCHAR(16), time_zone VARCHAR(64)")
    stage_names = ("line", "account_number", "name", "phone", "email", "language", "time_zone")
    row_rules = staticmethod(validate_account)

    def prepare(self, ctx: Context) -> None:
        ctx.extra["region"] = current_app.config["PHONE_DEFAULT_REGION"]
        ctx.extra["languages"] = languages()  # once per import, not once per row

    def checks(self, ctx: Context) -> list[RowError]:
        s = ctx.stage
        unique = unique_or_index(ctx.conn, f"ix_{s}_number", s, "account_number")
        analyze(ctx.conn, s)
        if unique:
            return []
        repeated = ctx.conn.exec_driver_sql(
            f"SELECT s.line, s.account_number, d.first FROM {s} s JOIN "
            f"(SELECT account_number, MIN(line) AS first FROM {s} GROUP BY account_number HAVING COUNT(*) > 1) d "
            f"ON d.account_number = s.account_number WHERE s.line > d.first ORDER BY s.line")
        return [RowError(line, "account_number", f"{number!r} already appears on line {first}.")
                for line, number, first in repeated]

    def apply(self, ctx: Context) -> dict:
        s, conn = ctx.stage, ctx.conn
        p = {"now": ctx.now.replace(tzinfo=None), "src": f"import {ctx.job.id}", "inc": ctx.incident_id}
        total = conn.exec_driver_sql(f"SELECT COUNT(*) FROM {s}").scalar()
        # Accounts the file names that exist already: their history, changes and attachment. A first import
        # of a list finds none, and skips three passes over the stage (1,000,000 rows: 0.3 s on SQLite).
        updated = attached = 0
        existing = conn.exec_driver_sql(f"SELECT EXISTS (SELECT 1 FROM {s} s JOIN accounts a "
                                        f"ON a.account_number = s.account_number)").scalar()
        if existing:
            # The history first, while the old values are still there.
            changes = " UNION ALL ".join(
                f"SELECT a.id, '{col}', a.{col}, s.{col}, :src, :now FROM {s} s "
                f"JOIN accounts a ON a.account_number = s.account_number WHERE a.{col} IS DISTINCT FROM s.{col}"
                for col in ("name", "phone", "email", "language"))
            run(conn, "INSERT INTO account_changes (account_id, field, old_value, new_value, source, at) "
                      + changes, **p)
            updated = run(conn, f"""
                UPDATE accounts SET name = s.name, phone = s.phone, email = s.email, language = s.language,
                    time_zone = CASE WHEN accounts.phone IS DISTINCT FROM s.phone THEN s.time_zone
                                     ELSE accounts.time_zone END,
                    updated_at = :now
                FROM {s} s
                WHERE accounts.account_number = s.account_number
                  AND (accounts.name IS DISTINCT FROM s.name OR accounts.phone IS DISTINCT FROM s.phone
                       OR accounts.email IS DISTINCT FROM s.email OR accounts.language IS DISTINCT FROM s.language)
            """, **p)
            # Attached before the new accounts exist, so the join finds only these.
            attached = run(conn, f"""
                INSERT INTO affected_accounts (incident_id, account_id, state, added_at, updated_at)
                SELECT :inc, a.id, 'unknown', :now, :now
                FROM {s} s JOIN accounts a ON a.account_number = s.account_number
                WHERE NOT EXISTS (SELECT 1 FROM affected_accounts x
                                  WHERE x.incident_id = :inc AND x.account_id = a.id)
                ORDER BY s.line
            """, **p)
        rebuild = _secondary_indexes(conn, s, total)
        for index in rebuild:
            index.drop(conn)
        # New accounts, and their attachment without a join back through a million account numbers (a new
        # account cannot be attached yet): PostgreSQL in one statement, the INSERT's RETURNING feeding the
        # second; SQLite, which has no INSERT in WITH, by id: its rowids are max + 1 onwards, and no other
        # writer can add an account while this transaction holds the write lock (taken before the apply began:
        # service.run_job). Only the staged accounts that do not exist are inserted; when none existed at all,
        # SQLite needs no probe per row, as none can have appeared since it looked (1,000,000 new accounts:
        # 0.5 s less). PostgreSQL keeps the probe, a hash anti-join: another transaction may commit an account
        # between that look and this statement.
        new_only = "" if not existing and not is_postgres(conn) else \
            "WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.account_number = s.account_number)"
        new_accounts = f"""
            INSERT INTO accounts (account_number, name, phone, email, language, time_zone,
                                  sms_opt_out, email_opt_out, created_at, updated_at)
            SELECT s.account_number, s.name, s.phone, s.email, s.language, s.time_zone, FALSE, FALSE, :now, :now
            FROM {s} s {new_only}
            ORDER BY s.line"""
        attach_new = "INSERT INTO affected_accounts (incident_id, account_id, state, added_at, updated_at) " \
                     "SELECT :inc, id, 'unknown', :now, :now FROM {source} ORDER BY id"
        if is_postgres(conn):
            created = run(conn, f"WITH new AS ({new_accounts} RETURNING id) "
                                + attach_new.format(source="new"), **p)
        else:
            before = conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM accounts").scalar()
            created = run(conn, new_accounts, **p)
            if created:
                run(conn, attach_new.format(source="accounts WHERE id > :before"), before=before, **p)
        attached += created
        for index in rebuild:
            index.create(conn)
        if attached:
            take_snapshot(conn, incident_id=ctx.incident_id, now=ctx.now)
            with Session(bind=conn) as session:  # recovery.summary_changed: more affected accounts
                webhook_events.summary_changed(session, incident_id=ctx.incident_id)
                session.flush()
        return {"rows_created": created, "rows_updated": updated,
                "rows_unchanged": total - created - updated, "rows_attached": attached}
