"""Code requests fair to a carrier NAT (issue 10): a thousand subscribers behind one address get their codes,
while one attacker behind the same address is still stopped, by per-number limits, a resend cooldown and a
global budget."""
import re

import sqlalchemy as sa

from accounts.models import VerificationCode
from core import ratelimit
from core.db import db
from notifications.models import Notification, NotificationStatus
from tests.accounts.factories import HEADER, make_incident, run_import
from tests.conftest import csrf_from

NAT = "100.64.0.1"  # one carrier-grade NAT address for everyone


def subscribers(n: int) -> None:
    incident = make_incident()
    rows = "".join(f"S{i},Subscriber {i},+1206{5550000 + i:07d},,en\n" for i in range(n))
    job = run_import(incident.id, HEADER + rows)
    assert job.status.value == "done", (job.message, job.errors)


def ask(client, identifier: str):
    token = csrf_from(client.get("/my").get_data(as_text=True))
    return client.post("/my", data={"identifier": identifier, "csrf_token": token}, environ_base={"REMOTE_ADDR": NAT})


def guess(client, code: str):
    token = csrf_from(client.get("/my/verify").get_data(as_text=True))
    return client.post("/my/verify", data={"code": code, "csrf_token": token}, environ_base={"REMOTE_ADDR": NAT})


def test_a_thousand_subscribers_behind_one_address_get_their_codes_while_an_attacker_is_stopped(app):
    app.config["MY_CODE_RESEND_SECONDS"] = 60  # the production cooldown
    subscribers(1000)
    attacker = app.test_client()
    assert ask(attacker, "S0").status_code == 303  # the victim's first code goes out ...
    refused = []
    for i in range(1000):
        crowd = app.test_client()
        assert ask(crowd, f"S{i}" if i else "+12065550000").status_code in (303, 429)
        if i % 100 == 50:  # ... and the attacker keeps asking for more, between the crowd's requests
            refused.append(ask(attacker, "S0").status_code)
    assert refused and set(refused) == {429}
    sent = db.session.scalar(sa.select(sa.func.count(sa.distinct(Notification.account_id)))
                             .where(Notification.status == NotificationStatus.QUEUED))
    assert sent == 1000  # every subscriber got a code (S0 the one the attacker asked for)
    victim_codes = db.session.scalar(sa.select(sa.func.count()).select_from(VerificationCode)
                                     .join(Notification, Notification.dedupe_key == "verify:" + VerificationCode.challenge_hash)
                                     .where(Notification.recipient == "+12065550000"))
    assert victim_codes == 1  # the cooldown held against the attacker and the crowd member of the same number


def test_the_cooldown_answers_in_words_and_says_when_to_come_back(app, client):
    app.config["MY_CODE_RESEND_SECONDS"] = 60
    subscribers(1)
    assert ask(client, "S0").status_code == 303
    again = ask(client, "S0")
    assert again.status_code == 429 and again.headers["Retry-After"] == "60"
    assert "A code was sent moments ago. Please wait 1 minute" in again.get_data(as_text=True)
    other = ask(client, "NOPE-1")  # an unknown input has its own cooldown, the same way
    assert other.status_code == 303
    assert ask(client, "NOPE-1").get_data(as_text=True).count("moments ago") == 1


def test_guessing_a_code_behind_the_shared_address_is_stopped_by_the_code_itself(app):
    subscribers(1)
    attacker = app.test_client()
    ask(attacker, "S0")
    answers = [guess(attacker, f"{n:06d}").status_code for n in range(6)]
    assert answers[:5] == [422] * 5
    body = db.session.scalars(sa.select(Notification.body).where(Notification.account_id.is_not(None))).one()
    right = re.search(r"\b(\d{6})\b", body).group(1)
    assert "Too many wrong codes" in guess(attacker, right).get_data(as_text=True)


def test_the_global_budget_stops_a_walk_through_many_numbers_the_same_way_for_known_and_unknown(app):
    app.config["MY_CODE_REQUESTS_GLOBAL"] = (5, 3600)
    subscribers(10)
    answers = [ask(app.test_client(), f"S{i}").status_code for i in range(5)]
    assert answers == [303] * 5
    assert ask(app.test_client(), "S7").status_code == 429
    assert ask(app.test_client(), "NOPE-7").status_code == 429


def test_a_rate_limit_check_is_two_statements_whatever_the_number_of_hits(app):
    statements: list[str] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    for hits in (1, 5000):
        for _ in range(hits - 1):
            ratelimit.record(db.session, f"b{hits}", window_seconds=3600)
        sa.event.listen(db.engine, "before_cursor_execute", keep)
        try:
            assert ratelimit.hit(db.session, f"b{hits}", limit=10_000, window_seconds=3600)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", keep)
        assert len(statements) == 2, statements
        statements.clear()
        assert ratelimit.used(db.session, f"b{hits}", window_seconds=3600) >= hits
    db.session.rollback()


def test_the_previous_window_counts_in_proportion_to_what_the_sliding_window_still_covers(app):
    from datetime import timedelta

    from core.db import utcnow

    start, _ = ratelimit._window(utcnow(), 3600)
    db.session.add(ratelimit.RateLimitCounter(bucket="x", window_start=start - timedelta(hours=1), count=100))
    db.session.flush()
    quarter = start + timedelta(minutes=15)
    assert ratelimit.used(db.session, "x", window_seconds=3600, now=quarter) == 75
    assert ratelimit.used(db.session, "x", window_seconds=3600, now=start + timedelta(minutes=45)) == 25
    db.session.rollback()


def test_the_cooldown_is_exact_even_across_a_window_boundary(app):
    from datetime import timedelta

    from core.db import utcnow

    db.session.add(ratelimit.RateLimitCounter(bucket="c", window_start=utcnow() - timedelta(seconds=59), count=1))
    db.session.flush()
    assert not ratelimit.cooldown(db.session, "c", seconds=60)
    db.session.add(ratelimit.RateLimitCounter(bucket="d", window_start=utcnow() - timedelta(seconds=61), count=1))
    db.session.flush()
    assert ratelimit.cooldown(db.session, "d", seconds=60)
    db.session.rollback()
