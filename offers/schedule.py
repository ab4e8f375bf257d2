"""The offers' scheduled passes (run by core.periodic): expire grants past their program's validity, and
send each program's one reminder when its window opens (remind_days_before days before valid_until)."""
from datetime import datetime, timedelta

import sqlalchemy as sa

from offers import grants, notify
from offers.models import OfferProgram, ProgramStatus
from ops.audit import Actor

SCHEDULER = Actor(operator_id=None, label="scheduler")
ANNOUNCED_AT_LEAST = timedelta(days=1)


def expire_due(session, now: datetime) -> str:
    """Offered grants of programs past valid_until become expired."""
    return f"{grants.expire(session, now=now)} grants expired"


def reminder_due(program: OfferProgram, now: datetime) -> bool:
    """True while the program's reminder window is open: from remind_days_before days before valid_until
    until valid_until (a window that has passed gets nothing), only if it was not reminded yet, and only
    once the offer has been announced for a day."""
    if program.status != ProgramStatus.ACTIVE or program.remind_days_before is None or program.reminded_at:
        return False
    # Not before the offer was announced, nor within a day of it: a reminder must not be the first word.
    if program.announced_at is None or program.announced_at > now - ANNOUNCED_AT_LEAST:
        return False
    return program.valid_until - timedelta(days=program.remind_days_before) <= now < program.valid_until


def remind_due(session, now: datetime) -> str:
    """Queue the reminder of every active program whose window is open, once: reminded_at is stamped with
    a conditional UPDATE in the same transaction as the messages, so a second pass (or a second worker)
    finds it taken and sends nothing."""
    candidates = session.scalars(sa.select(OfferProgram).where(
        OfferProgram.status == ProgramStatus.ACTIVE.value, OfferProgram.remind_days_before.is_not(None),
        OfferProgram.reminded_at.is_(None), OfferProgram.valid_until > now).order_by(OfferProgram.id)).all()
    programs, messages = 0, 0
    for program in candidates:
        if not reminder_due(program, now):
            continue
        stamped = session.execute(
            sa.update(OfferProgram).where(OfferProgram.id == program.id, OfferProgram.reminded_at.is_(None),
                                          OfferProgram.status == ProgramStatus.ACTIVE.value)
            .values(reminded_at=now).execution_options(synchronize_session=False)).rowcount
        if stamped != 1:  # closed or reminded meanwhile
            continue
        messages += notify.remind(session, actor=SCHEDULER, program_id=program.id)
        programs += 1
    return f"{programs} programs reminded, {messages} messages queued"
