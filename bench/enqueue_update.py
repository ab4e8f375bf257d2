"""Benchmark: an incident update posted with notify, to N affected accounts (default 1,000,000) and N/5
confirmed email self-subscribers, N/20 of whom use an address an affected account of the incident has: those
get only their personal message, so the update queues N + N/5 - N/20 rows (1,150,000 for N = 1,000,000).

The accounts have an email and no phone, so every row counted is an email: the update goes out on both
channels, and its SMS pass finds nobody. A quarter of the subscribers follow chosen components (one of the
incident's, some also one it does not affect) instead of all; N/100 more are pending and N/100 follow only
the unaffected component, and must get nothing.

- Floor (the ratio that counts): what anybody could do without us. One raw INSERT ... SELECT of the same rows
  into a minimal outbox (`bare_outbox`: integer primary key, unique dedupe key, channel, recipient, data,
  created_at), from the same tables: affected accounts joined to accounts, UNION ALL the confirmed subscribers
  following the incident that no affected account has at that address (a plain NOT EXISTS).
- Our schema raw (second line): the same INSERT ... SELECT into our notifications table, every index: what
  the schema costs, apart from what our code costs.
Both run before and after ours; the faster run of each counts.
- Ours: `post_update` with notify, committed. Its rows are staged (notifications.staging: narrow rows, what the
  request writes); the workers' move of them into the outbox, batch by batch, is timed after it, on its own
  line, and every count is checked once they are all there.
Usage: .venv/bin/python bench/enqueue_update.py [N] [--postgres]"""
import time

import sqlalchemy as sa

from common import load_affected_accounts, run_in_fresh_database, time_bare_outbox

SUBSCRIBERS = """
    INSERT INTO subscriptions (channel, address, language, follows_all, confirmed_at, created_at, updated_at)
    SELECT 'email', CASE WHEN i <= :overlap THEN 'user' || (i * :step) || '@example.com'
                         ELSE 'sub' || i || '@example.net' END,
           CASE WHEN i % 5 = 0 THEN 'es' ELSE 'en' END, i % 4 <> 0, {now}, {now}, {now}
    FROM ({series}) g
    UNION ALL
    SELECT 'email', 'pending' || i || '@example.net', 'en', TRUE, NULL, {now}, {now}
    FROM ({series}) g WHERE i <= :extra
    UNION ALL
    SELECT 'email', 'other' || i || '@example.net', 'en', FALSE, {now}, {now}, {now}
    FROM ({series}) g WHERE i <= :extra
"""
# Subscribers not following all: every 8th one follows Sync, the other 4th ones Web (both the incident's);
# every 8th also follows Billing (not the incident's); the "other" ones follow Billing only.
FOLLOWS = """
    INSERT INTO subscription_components (subscription_id, component_id)
    SELECT s.id, c.id FROM subscriptions s JOIN components c
      ON (s.address LIKE 'other%' AND c.name = 'Billing')
      OR (s.address NOT LIKE 'other%' AND NOT s.follows_all
          AND c.name = CASE WHEN s.id % 8 = 0 THEN 'Sync' ELSE 'Web' END)
      OR (s.address NOT LIKE 'other%' AND NOT s.follows_all AND s.id % 8 = 0 AND c.name = 'Billing')
"""

SELECT_ROWS = """
    SELECT {key_a}, 'email', a.email, {data_a}, {extra_a}
    FROM affected_accounts aa JOIN accounts a ON a.id = aa.account_id
    WHERE aa.incident_id = 1
    UNION ALL
    SELECT {key_s}, 'email', s.address, {data_s}, {extra_s}
    FROM subscriptions s
    WHERE s.channel = 'email' AND s.confirmed_at IS NOT NULL
      AND (s.follows_all OR EXISTS (
           SELECT 1 FROM subscription_components sc
           JOIN incident_components ic ON ic.component_id = sc.component_id
           WHERE sc.subscription_id = s.id AND ic.incident_id = 1))
      AND NOT EXISTS (
           SELECT 1 FROM accounts a2 WHERE a2.email = s.address AND EXISTS (
               SELECT 1 FROM affected_accounts aa2 WHERE aa2.account_id = a2.id AND aa2.incident_id = 1))
"""
# (The NOT EXISTS nested, accounts outside: written as one join, SQLite without statistics walks all the
# incident's accounts for each subscriber, as accounts.subscriptions.personal_reaches did.)
BARE = "INSERT INTO bare_outbox (dedupe_key, channel, recipient, data, created_at)" + SELECT_ROWS
OUR_SCHEMA = """
    INSERT INTO notifications (dedupe_key, channel, recipient, data, account_id, language, broadcast_id, template,
                               subject, segments, urgent, status, attempts, next_attempt_at, created_at, updated_at,
                               priority, fair_key)""" + SELECT_ROWS
COMMON = ("{broadcast}, 'broadcast', '', 1, FALSE, 'queued', 0, {now}, {now}, {now}, 3, 0")


def main() -> None:
    run_in_fresh_database(run)


def run(url: str, n: int, kind: str) -> None:
    from app import create_app
    from core.db import db
    from incidents import service
    from sqlalchemy.orm import sessionmaker

    from notifications import staging
    from notifications.models import Broadcast, StagedMessage
    from ops.audit import Actor

    pg = kind == "postgres"
    now = "now()" if pg else "CURRENT_TIMESTAMP"
    series = ("SELECT generate_series(1, :m) AS i" if pg else
              "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :m) SELECT i FROM s")
    subscribers, overlap, extra = n // 5, n // 20, n // 100
    expected = n + subscribers - overlap

    def obj(key, col):
        return f"json_build_object('{key}', {col})" if pg else f"json_object('{key}', {col})"

    bare_sql = BARE.format(key_a="'a' || a.id", data_a=obj("aa", "aa.id") + ("::text" if pg else ""),
                           extra_a=now, key_s="'s' || s.id",
                           data_s=obj("sub", "s.id") + ("::text" if pg else ""), extra_s=now)
    common = COMMON.format(now=now, broadcast="{broadcast}")
    schema_sql = OUR_SCHEMA.format(key_a="'floor:email:' || a.id", data_a=obj("aa", "aa.id"),
                                   extra_a="a.id, a.language, " + common, key_s="'floor:email:s' || s.id",
                                   data_s=obj("sub", "s.id"), extra_s="CAST(NULL AS INTEGER), s.language, " + common)

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        bench = Actor.cli("bench")
        ids = [service.create_component(db.session, actor=bench, data={"name": name}).id
               for name in ("Sync", "Web", "Billing")]
        service.create_incident(db.session, actor=bench, data={
            "name": "Sidekick data loss", "impact": "critical", "message": "We are restoring your data.",
            "component_ids": ids[:2]})
        # The schema floor's rows belong to a broadcast too, so they pay its foreign-key check as ours do.
        floor_broadcast = Broadcast(cause="incident:1", kind="update", message="floor", channels=["email"],
                                    audience="all")
        db.session.add(floor_broadcast)
        db.session.commit()
        schema_sql = schema_sql.replace("{broadcast}", str(floor_broadcast.id))
        with db.engine.begin() as conn:
            load_affected_accounts(conn, n, phones=False, statuses=False)
            conn.execute(sa.text(SUBSCRIBERS.format(now=now, series=series)),
                         {"m": subscribers, "overlap": overlap, "step": n // overlap, "extra": extra})
            conn.execute(sa.text(FOLLOWS))
        if pg:  # autovacuum's statistics for the fresh tables, now (on SQLite nothing runs ANALYZE in production)
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")

        def empty_outbox() -> None:
            with db.engine.begin() as conn:
                conn.execute(sa.text("DELETE FROM notifications"))
            if pg:  # ours and the schema floor each start from a table without a million dead rows
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("VACUUM notifications")

        def run_bare() -> tuple[float, int]:
            return time_bare_outbox(db.engine, bare_sql)

        def run_schema() -> tuple[float, int]:
            t = time.perf_counter()
            with db.engine.begin() as conn:
                rows = conn.execute(sa.text(schema_sql)).rowcount
            took = time.perf_counter() - t
            empty_outbox()
            return took, rows

        # Floors before and after ours; the faster run of each counts (the cache is warm for at least one
        # of them, as it is for ours).
        bare, bare_rows = run_bare()
        schema, schema_rows = run_schema()
        t = time.perf_counter()
        update = service.post_update(db.session, actor=bench, incident_id=1, data={
            "message": "Your data is being restored; see your personal page for your own status.", "notify": True})
        db.session.commit()
        ours = time.perf_counter() - t
        queued = update.messages_queued
        staged = db.session.scalar(sa.select(sa.func.count()).select_from(StagedMessage))
        # Then what the workers do beside their sends: move the staged rows into the outbox, batch by batch.
        t = time.perf_counter()
        moved = staging.Expander(sessionmaker(bind=db.engine, expire_on_commit=False)).drain()
        move = time.perf_counter() - t
        with db.engine.connect() as conn:
            stored, people = conn.execute(sa.text(
                "SELECT count(*), count(DISTINCT recipient) FROM notifications WHERE channel = 'email'")).one()
            sms = conn.execute(sa.text("SELECT count(*) FROM notifications WHERE channel = 'sms'")).scalar()
        empty_outbox()
        bare = min(bare, run_bare()[0])
        schema = min(schema, run_schema()[0])
        # One message per person: a wrong dedupe (or a missing filter) changes a count and fails here.
        assert queued == staged == moved == stored == people == bare_rows == schema_rows == expected and sms == 0, \
            (queued, staged, moved, stored, people, bare_rows, schema_rows, expected, sms)
    print(f"update enqueue on {kind}: {n:,} affected accounts (email only, no phone) + {subscribers:,} confirmed "
          f"email subscribers, {overlap:,} of them at an affected account's address "
          f"(+{2 * extra:,} pending or following only an unaffected component)")
    print(f"  rows counted: {n:,} account emails + {subscribers - overlap:,} subscriber emails = {expected:,} "
          f"(the update's SMS pass finds no phone and queues none)")
    print(f"  floor (raw INSERT ... SELECT of the same rows into a minimal outbox with a unique dedupe key, "
          f"duplicates left out with NOT EXISTS; faster of two runs): {bare:.2f} s, {expected / bare:,.0f} rows/s")
    print(f"  our schema raw (the same INSERT ... SELECT into our notifications table, every index and foreign "
          f"key; faster of two runs): {schema:.2f} s, {expected / schema:,.0f} rows/s ({schema / bare:.2f}x the floor)")
    print(f"  lifeboat update with notify (post_update: broadcast on SMS and email, subscribers, opt-outs, "
          f"one message per person, fair order, audit): {ours:.2f} s, {expected / ours:,.0f} rows/s")
    print(f"  then moved into the outbox by the workers (notifications.staging, batches of {staging.BATCH:,}, "
          f"beside the sends): {move:.2f} s, {expected / move:,.0f} rows/s ({move / schema:.2f}x our schema raw)")
    print(f"  ratio lifeboat/floor: {ours / bare:.2f}x (goal <= 2x); lifeboat/our schema raw: {ours / schema:.2f}x")


if __name__ == "__main__":
    main()
