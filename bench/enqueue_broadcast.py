"""Benchmark: enqueue a broadcast to N affected accounts (default 1,000,000) on SMS, beside two floors.

- Bare floor (the ratio that counts): what anybody could do without us. One raw INSERT ... SELECT of the same
  rows (affected_accounts JOIN accounts, no opt-out or address checks) into a minimal outbox (`bare_outbox`:
  integer primary key, unique dedupe key, channel, recipient, data, created_at).
- Schema floor (second line): the same INSERT ... SELECT into our notifications table, every index.
Both run before and after ours; the faster run of each counts. Ours stages the rows (notifications.staging:
what the request writes); the workers' move of them into the outbox is timed after it, on its own line.
Usage: .venv/bin/python bench/enqueue_broadcast.py [N] [--postgres]"""
import time

import sqlalchemy as sa

from common import load_affected_accounts, run_in_fresh_database, time_bare_outbox

SELECT = """
    FROM affected_accounts aa JOIN accounts a ON a.id = aa.account_id
    WHERE aa.incident_id = 1
"""
FLOOR = """
    INSERT INTO notifications (dedupe_key, channel, recipient, account_id, broadcast_id, template, language, data,
                               subject, segments, urgent, status, attempts, next_attempt_at, created_at, updated_at)
    SELECT 'floor:sms:' || a.id, 'sms', a.phone, a.id, NULL, 'broadcast', a.language, {data}, '', 1, FALSE,
           'queued', 0, {now}, {now}, {now}""" + SELECT
BARE = """
    INSERT INTO bare_outbox (dedupe_key, channel, recipient, data, created_at)
    SELECT 'a' || a.id, 'sms', a.phone, {data}, {now}""" + SELECT


def main() -> None:
    run_in_fresh_database(run)


def run(url: str, n: int, kind: str) -> None:
    from accounts.audiences import broadcast_to_incident
    from app import create_app
    from core.db import db
    from incidents import service
    from notifications import staging
    from ops.audit import Actor
    from sqlalchemy.orm import sessionmaker

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        service.create_incident(db.session, actor=Actor.cli("bench"), data={
            "name": "Sidekick data loss", "impact": "critical", "message": "We are restoring your data."})
        db.session.commit()
        with db.engine.begin() as conn:
            load_affected_accounts(conn, n)
        pg = kind == "postgres"
        data = "json_build_object('aa', aa.id)" if pg else "json_object('aa', aa.id)"
        now = "now()" if pg else "CURRENT_TIMESTAMP"
        floor_sql = FLOOR.format(data=data, now=now)
        bare_sql = BARE.format(data=data + ("::text" if pg else ""), now=now)

        def run_bare() -> tuple[float, int]:
            return time_bare_outbox(db.engine, bare_sql)

        def run_floor() -> tuple[float, int]:
            t = time.perf_counter()
            with db.engine.begin() as conn:
                rows = conn.execute(sa.text(floor_sql)).rowcount
            took = time.perf_counter() - t
            with db.engine.begin() as conn:
                conn.execute(sa.text("DELETE FROM notifications"))
            return took, rows

        # The floors run before and after ours, and the faster run of each counts: the cache is warm for at
        # least one of them, as it is for ours.
        bare, bare_rows = run_bare()
        floor, floor_rows = run_floor()
        t = time.perf_counter()
        broadcast = broadcast_to_incident(db.session, actor=Actor.cli("bench"), incident_id=1, data={
            "message": "Your data is being restored. Reply STATUS for your own status.", "channels": ["sms"],
            "audience": "all", "urgent": False})
        db.session.commit()
        ours = time.perf_counter() - t
        recipients = broadcast.recipients
        t = time.perf_counter()
        moved = staging.Expander(sessionmaker(bind=db.engine, expire_on_commit=False)).drain()
        move = time.perf_counter() - t
        with db.engine.begin() as conn:
            in_outbox = conn.execute(sa.text("SELECT count(*) FROM notifications")).scalar()
            conn.execute(sa.text("DELETE FROM notifications"))
        bare = min(bare, run_bare()[0])
        floor = min(floor, run_floor()[0])
        assert recipients == bare_rows == floor_rows == moved == in_outbox == n, \
            (recipients, bare_rows, floor_rows, moved, in_outbox, n)
    print(f"broadcast enqueue, {n:,} SMS recipients on {kind}")
    print(f"  bare floor (raw INSERT ... SELECT of the same rows into a minimal outbox with a unique dedupe key, "
          f"faster of two runs): {bare:.2f} s, {n / bare:,.0f} rows/s")
    print(f"  schema floor (the same into our notifications table, every index; faster of two runs): {floor:.2f} s "
          f"({floor / bare:.2f}x the bare floor)")
    print(f"  lifeboat broadcast (audience, opt-outs, dedupe, audit): {ours:.2f} s, {n / ours:,.0f} rows/s")
    print(f"  then moved into the outbox by the workers (batches of {staging.BATCH:,}): {move:.2f} s, "
          f"{n / move:,.0f} rows/s")
    print(f"  ratio lifeboat/bare floor: {ours / bare:.2f}x (goal <= 2x); lifeboat/schema floor: {ours / floor:.2f}x")


if __name__ == "__main__":
    main()
