"""Benchmark: issue an offer program's grants to N eligible accounts (default 1,000,000), beside the floor.

The floor is a raw INSERT ... SELECT of the same grants (same eligibility, codes made in SQL from md5,
which are neither unguessable nor free of ambiguous characters) into offer_grants, in the same database.
Usage: .venv/bin/python bench/issue_offers.py [N] [--postgres]"""
import time
from datetime import timedelta

import sqlalchemy as sa

from common import load_affected_accounts, run_in_fresh_database

RAW = """
    INSERT INTO offer_grants (program_id, affected_account_id, account_id, code, state, offered_at)
    SELECT :p, aa.id, aa.account_id, upper(substr({md5}, 1, 10)), 'offered', {now}
    FROM affected_accounts aa WHERE aa.incident_id = 1 AND EXISTS (
        SELECT 1 FROM recovery_statuses rs WHERE rs.affected_account_id = aa.id AND rs.state IN ('lost'))
    ON CONFLICT DO NOTHING
"""


def main() -> None:
    run_in_fresh_database(run)


def run(url: str, n: int, kind: str) -> None:
    from app import create_app
    from core.db import db, utcnow
    from incidents import service as incidents
    from offers import service
    from ops.audit import Actor

    actor = Actor.cli("bench")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        incidents.create_incident(db.session, actor=actor, data={
            "name": "Sidekick data loss", "impact": "critical", "message": "We are restoring your data."})
        db.session.commit()
        with db.engine.begin() as conn:
            load_affected_accounts(conn, n)  # every account has 'lost' in one category: all eligible

        def program(name: str):
            p = service.create_program(db.session, actor=actor, incident_id=1, data={
                "name": name, "kind": "gift_card", "value": 100, "currency": "USD", "eligible_states": ["lost"],
                "valid_until": utcnow() + timedelta(days=30)})
            db.session.commit()
            return p.id

        raw_program, ours_program = program("Raw"), program("Gift card")
        pg = kind == "postgres"
        raw_sql = RAW.format(md5="md5(random()::text || aa.id)" if pg else "hex(randomblob(8))",
                             now="now()" if pg else "CURRENT_TIMESTAMP")
        t = time.perf_counter()
        with db.engine.begin() as conn:
            raw_rows = conn.execute(sa.text(raw_sql), {"p": raw_program}).rowcount
        floor = time.perf_counter() - t
        t = time.perf_counter()
        result = service.issue(db.session, actor=actor, program_id=ours_program)
        db.session.commit()
        ours = time.perf_counter() - t
        t = time.perf_counter()
        again = service.issue(db.session, actor=actor, program_id=ours_program)
        db.session.commit()
        rerun = time.perf_counter() - t
    print(f"offer grants to {n:,} eligible accounts on {kind}")
    print(f"  floor (raw INSERT ... SELECT, codes from SQL): {raw_rows:,} rows in {floor:.2f} s")
    print(f"  lifeboat issue (eligibility, safe unique codes, budget, audit): {result} in {ours:.2f} s")
    print(f"  ratio lifeboat/floor: {ours / floor:.2f}x (goal <= 2x); re-running issue: {again} in {rerun:.2f} s")


if __name__ == "__main__":
    main()
