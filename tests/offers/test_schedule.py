"""The scheduled reminder: once per program, only inside its window, never for a closed program."""
from datetime import timedelta

import sqlalchemy as sa

from core import periodic
from core.db import db, utcnow
from notifications.models import Notification
from offers import notify, schedule
from offers.models import OfferProgram, ProgramStatus
from ops.models import AuditEntry
from tests.accounts.factories import ACTOR
from tests.offers.helpers import incident_with, issue, make_program


def messages() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Notification))


def program_ending_in(days: float, *, remind_days_before: int | None = 3, announced_days_ago: float | None = 2):
    """An issued program (two accounts with SMS and email) valid for `days` more days, announced
    `announced_days_ago` days ago (None: not announced)."""
    incident = incident_with({"A1": {"photos": "lost"}, "A2": {"photos": "lost"}})
    program = make_program(incident.id, valid_until=utcnow() + timedelta(days=days))
    program.remind_days_before = remind_days_before
    db.session.commit()
    issue(program.id)
    if announced_days_ago is not None:
        assert notify.announce(db.session, actor=ACTOR, program_id=program.id) == 4
        program.announced_at = utcnow() - timedelta(days=announced_days_ago)
        db.session.commit()
    return program


def program(program_id: int) -> OfferProgram:
    db.session.expire_all()
    return db.session.get(OfferProgram, program_id)


def test_a_reminder_goes_once_when_the_window_opens(app):
    p = program_ending_in(2)
    now, before = utcnow(), messages()
    assert schedule.remind_due(db.session, now) == "1 programs reminded, 4 messages queued"
    db.session.commit()
    assert messages() == before + 4  # SMS and email to each of the two unanswered grants
    assert program(p.id).reminded_at == now
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.actor == "scheduler"))
    assert "remind" in entry.action and entry.operator_id is None
    # The next pass, and one a day later, send nothing more.
    assert schedule.remind_due(db.session, now + timedelta(minutes=15)) == "0 programs reminded, 0 messages queued"
    assert schedule.remind_due(db.session, now + timedelta(days=1)).startswith("0 programs")
    db.session.commit()
    assert messages() == before + 4


def test_no_reminder_before_the_window_then_one_inside_it(app):
    p = program_ending_in(10)
    before = messages()
    assert schedule.remind_due(db.session, utcnow()).startswith("0 programs")
    assert schedule.remind_due(db.session, utcnow() + timedelta(days=6, hours=23)).startswith("0 programs")
    db.session.commit()
    assert messages() == before and program(p.id).reminded_at is None
    assert schedule.remind_due(db.session, utcnow() + timedelta(days=7, minutes=1)).startswith("1 programs")
    db.session.commit()
    assert messages() == before + 4


def test_a_program_whose_window_has_passed_gets_nothing(app):
    p = program_ending_in(2)
    before = messages()
    after_the_end = p.valid_until + timedelta(minutes=1)
    assert schedule.remind_due(db.session, after_the_end).startswith("0 programs")
    db.session.commit()
    assert messages() == before and program(p.id).reminded_at is None


def test_closed_programs_and_programs_without_reminders_get_nothing(app):
    closed = program_ending_in(2)
    closed.status = ProgramStatus.CLOSED
    db.session.commit()
    before = messages()
    assert schedule.remind_due(db.session, utcnow()).startswith("0 programs")
    closed.status = ProgramStatus.ACTIVE
    closed.remind_days_before = None
    db.session.commit()
    assert schedule.remind_due(db.session, utcnow()).startswith("0 programs")
    db.session.commit()
    assert messages() == before and program(closed.id).reminded_at is None


def test_the_scheduler_runs_the_reminder_pass_once(app):
    p = program_ending_in(1)
    before = messages()
    now = utcnow()
    assert periodic.run_due(now=now)["offers.remind"] == "1 programs reminded, 4 messages queued"
    assert periodic.run_due(now=now + timedelta(minutes=15))["offers.remind"].startswith("0 programs")
    assert messages() == before + 4 and program(p.id).reminded_at == now


def test_no_reminder_before_the_offer_was_announced_nor_within_a_day_of_it(app):
    p = program_ending_in(2, announced_days_ago=None)
    before = messages()
    assert schedule.remind_due(db.session, utcnow()).startswith("0 programs")  # the first word would be a reminder
    assert notify.announce(db.session, actor=ACTOR, program_id=p.id) == 4
    db.session.commit()
    assert program(p.id).announced_at is not None
    assert schedule.remind_due(db.session, utcnow() + timedelta(hours=23)).startswith("0 programs")
    assert schedule.remind_due(db.session, utcnow() + timedelta(days=1, minutes=1)).startswith("1 programs")
    db.session.commit()
    assert messages() == before + 8  # the announcement and the reminder, SMS and email to two accounts


def test_a_reminder_sent_by_hand_is_not_sent_again_by_the_scheduler(app):
    p = program_ending_in(2)
    assert notify.remind(db.session, actor=ACTOR, program_id=p.id) == 4
    db.session.commit()
    assert program(p.id).reminded_at is not None
    assert schedule.remind_due(db.session, utcnow()).startswith("0 programs")
