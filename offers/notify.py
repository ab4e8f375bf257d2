"""Telling subscribers about their offers through the notifier (render-at-send, opt-outs, quiet hours).

Each send is a Broadcast (cause "offer:<program id>") whose text uses {{ offer_code }}, queued with
notifications.broadcasts.insert_for (one INSERT ... SELECT per channel, skipping opt-outs, deduplicated
by key so a re-run only reaches grants not told yet); one set-based UPDATE then adds each grant's code
to its rows' data, which the worker's personal context already reads (`offer_code`)."""
import sqlalchemy as sa

from core.db import utcnow
from notifications import broadcasts
from notifications.models import Broadcast, Channel, Notification
from offers.models import GrantState, OfferGrant, OfferKind, OfferProgram
from offers.service import get_program
from ops.audit import Actor, record


def what(program: OfferProgram) -> str:
    """'a 100.00 USD gift card', '1 free month of service', ..."""
    amount = f"{program.value_minor / 100:,.2f} {program.currency}"
    if program.kind == OfferKind.FREE_MONTHS:
        n = program.months or 1
        return f"{n} free month{'s' if n > 1 else ''} of service"
    return f"a {amount} gift card" if program.kind == OfferKind.GIFT_CARD else f"a {amount} account credit"


def _until(program: OfferProgram) -> str:
    return program.valid_until.strftime("%d %b %Y")


def _code_sql(dialect: str, notification_table, account_col, program_id: int):
    """{"aa": .., "offer_code": "XXXXX-XXXXX"} for each queued row, from the account's grant."""
    code = sa.select(sa.func.substr(OfferGrant.code, 1, 5, type_=sa.String) + "-"
                     + sa.func.substr(OfferGrant.code, 6, 5, type_=sa.String)) \
        .where(OfferGrant.program_id == program_id, OfferGrant.account_id == account_col).scalar_subquery()
    aa = sa.select(OfferGrant.affected_account_id).where(
        OfferGrant.program_id == program_id, OfferGrant.account_id == account_col).scalar_subquery()
    if dialect == "postgresql":
        return sa.cast(sa.func.json_build_object("aa", aa, "offer_code", code), Notification.data.type)
    return sa.func.json_object("aa", aa, "offer_code", code)


def _send(session, *, actor: Actor, program: OfferProgram, recipients, tag: str, message: str,
          subject: str, action: str) -> int:
    now = utcnow()
    channels = [c.value for c in Channel]
    broadcast = Broadcast(cause=f"offer:{program.id}", kind="broadcast", message=message, subject=subject,
                          channels=channels, audience={"offer": program.id, "send": tag}, urgent=False,
                          created_by_id=actor.operator_id, created_by=actor.label, created_at=now)
    session.add(broadcast)
    session.flush()
    total = 0
    for channel in channels:
        total += broadcasts.insert_for(session, recipients, channel=Channel(channel), template="broadcast",
                                       now=now, broadcast_id=broadcast.id,
                                       key=lambda r, c=channel: sa.literal(f"o{tag}:{c}:")
                                       + sa.cast(r.c.account_id, sa.String))
    dialect = session.get_bind().dialect.name
    session.execute(sa.update(Notification).where(Notification.broadcast_id == broadcast.id)
                    .values(data=_code_sql(dialect, Notification, Notification.account_id, program.id))
                    .execution_options(synchronize_session=False))
    broadcast.recipients = total
    record(session, actor=actor, action=f"offer.notify.{action}",
           entity_type="offer_program", entity_id=program.id, after={"messages": total, "send": tag})
    return total


def _grants(program_id: int, *states: GrantState, grant_id: int | None = None):
    q = sa.select(OfferGrant.affected_account_id.label("aa_id"), OfferGrant.account_id.label("account_id")) \
        .where(OfferGrant.program_id == program_id, OfferGrant.state.in_([s.value for s in states]))
    return q.where(OfferGrant.id == grant_id) if grant_id else q


def announce(session, *, actor: Actor, program_id: int) -> int:
    """Queue the offer to every offered grant not told yet (SMS and email); returns messages queued."""
    p = get_program(session, program_id)
    message = (f"{p.name}: we are offering you {what(p)}. Your code: {{{{ offer_code }}}}. Reply ACCEPT "
               f"{{{{ offer_code }}}} or answer on your page by {_until(p)}.")
    return _send(session, actor=actor, program=p, recipients=_grants(p.id, GrantState.OFFERED),
                 tag=f"{p.id}", message=message, subject=p.name, action="announce")


def remind(session, *, actor: Actor, program_id: int) -> int:
    """Queue one reminder to grants still unanswered (once per program and account)."""
    p = get_program(session, program_id)
    message = (f"Reminder: your offer of {what(p)} ({p.name}) ends on {_until(p)}. Reply ACCEPT "
               f"{{{{ offer_code }}}} or answer on your page.")
    return _send(session, actor=actor, program=p, recipients=_grants(p.id, GrantState.OFFERED),
                 tag=f"{p.id}r", message=message, subject=f"Reminder: {p.name}", action="remind")


def tell_revoked(session, *, actor: Actor, grant: OfferGrant) -> int:
    """Queue the message telling the subscriber an offer was withdrawn (called by grants.revoke)."""
    p = grant.program
    message = f"Your offer {{{{ offer_code }}}} ({p.name}) has been withdrawn: {grant.revoke_reason}"
    return _send(session, actor=actor, program=p, recipients=_grants(p.id, GrantState.REVOKED, grant_id=grant.id),
                 tag=f"{p.id}v{grant.id}", message=message, subject=f"Offer withdrawn: {p.name}",
                 action="revoked")
