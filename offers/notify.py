"""Telling subscribers about their offers through the notifier (render-at-send, opt-outs, quiet hours).

Each send is a Broadcast (cause "offer:<program id>", kind "offer") queued with the dedicated message
templates `offer`, `offer_reminder` and `offer_revoked` (notifications/message_templates/, English and
Spanish by the account's language) through notifications.broadcasts.insert_for: one INSERT ... SELECT per
channel, skipping opt-outs, deduplicated by key so a re-run only reaches grants not told yet. One set-based
UPDATE then gives each row {"aa": <affected account>, "grant": <grant id>}; at send time the worker's
personal context loads the grant and program (offers.text.offer_fields) and fills in the code, what is
offered, the expiry date and the withdrawal reason in the subscriber's language."""
import sqlalchemy as sa
from flask import current_app

from core.db import utcnow
from notifications import broadcasts, templates
from notifications.models import Broadcast, BroadcastKind, Channel, Notification, cause
from offers import text
from offers.models import GrantState, OfferGrant, OfferKind, OfferProgram
from offers.service import check_can_message, get_program
from ops.audit import Actor, record

OFFER, REMINDER, REVOKED = "offer", "offer_reminder", "offer_revoked"  # message template names


def what(program: OfferProgram) -> str:
    """'a 100.00 USD gift card', '1 free month of service', ... (English, for the operator console)."""
    amount = f"{program.value_minor / 100:,.2f} {program.currency}"
    if program.kind == OfferKind.FREE_MONTHS:
        n = program.months or 1
        return f"{n} free month{'s' if n > 1 else ''} of service"
    return f"a {amount} gift card" if program.kind == OfferKind.GIFT_CARD else f"a {amount} account credit"


def _data_sql(dialect: str, account_col, program_id: int):
    """{"aa": .., "grant": ..} for each queued row, from the account's grant of the program (unique)."""
    def grant_col(col):
        return sa.select(col).where(OfferGrant.program_id == program_id,
                                    OfferGrant.account_id == account_col).scalar_subquery()

    aa, grant = grant_col(OfferGrant.affected_account_id), grant_col(OfferGrant.id)
    if dialect == "postgresql":
        return sa.cast(sa.func.json_build_object("aa", aa, "grant", grant), Notification.data.type)
    return sa.func.json_object("aa", aa, "grant", grant)


def _key(tag: str, channel: str, account_id):
    """The dedupe key of send `tag` on `channel` for an account (an SQL expression): one message per account,
    send and channel, whatever is pressed twice."""
    return sa.literal(f"o{tag}:{channel}:") + sa.cast(account_id, sa.String)


def _send(session, *, actor: Actor, program: OfferProgram, recipients, tag: str, template: str,
          message: str, subject: str, action: str) -> int:
    now = utcnow()
    channels = [c.value for c in Channel]
    # The Broadcast row gives the console its progress page; its message is a short English description,
    # the subscribers' text comes from the template.
    broadcast = Broadcast(cause=cause("offer", program.id), kind=BroadcastKind.OFFER, message=message, subject=subject,
                          channels=channels, audience={"offer": program.id, "send": tag}, urgent=False,
                          created_by_id=actor.operator_id, created_by=actor.label, created_at=now)
    session.add(broadcast)
    session.flush()
    total = 0
    for channel in channels:
        total += broadcasts.insert_for(session, recipients, channel=Channel(channel), template=template,
                                       now=now, broadcast_id=broadcast.id,
                                       key=lambda r, c=channel: _key(tag, c, r.c.account_id))
    if total:
        dialect = session.get_bind().dialect.name
        session.execute(sa.update(Notification).where(Notification.broadcast_id == broadcast.id)
                        .values(data=_data_sql(dialect, Notification.account_id, program.id))
                        .execution_options(synchronize_session=False))
    broadcast.recipients = total
    record(session, actor=actor, action=f"offer.notify.{action}",
           entity_type="offer_program", entity_id=program.id, after={"messages": total, "send": tag})
    return total


def _grants(program_id: int, *states: GrantState, grant_id: int | None = None):
    q = sa.select(OfferGrant.affected_account_id.label("aa_id"), OfferGrant.account_id.label("account_id")) \
        .where(OfferGrant.program_id == program_id, OfferGrant.state.in_([s.value for s in states]))
    return q.where(OfferGrant.id == grant_id) if grant_id else q


def _not_sent(tag: str, channel: str):
    """Grants whose account has no message of this send (`tag`) on the channel yet: a repeated announce or
    reminder queues nothing twice (insert_for's dedupe keys), so its estimate must not count them."""
    return ~sa.exists().where(Notification.dedupe_key == _key(tag, channel, OfferGrant.account_id))


def _told(program_id: int):
    """Grants whose account was told about the offer (its announcement) on some channel."""
    return sa.exists().where(Notification.dedupe_key.in_(
        [_key(str(program_id), c.value, OfferGrant.account_id) for c in Channel]))


def _sample_sms(session, program: OfferProgram, template: str, recipients, reason: str = "") -> str | None:
    """The SMS one of the recipients would get (their grant's fields, a personal link of the real length)."""
    grant_id = session.scalar(sa.select(OfferGrant.id).where(OfferGrant.program_id == program.id,
                                                             OfferGrant.account_id.in_(
                                                                 recipients.with_only_columns(OfferGrant.account_id)))
                              .order_by(OfferGrant.id).limit(1))
    if grant_id is None:
        return None
    link = f"{current_app.config['PUBLIC_BASE_URL']}/m/{'x' * 32}"
    fields = text.offer_fields(session, grant_id, "en")
    fields["offer_revoke_reason"] = reason or fields.get("offer_revoke_reason", "")
    return templates.render_parts(template, "en", {**fields, "link": link, "name": ""})["sms"]


SENDS = {"announce": ("", OFFER), "remind": ("r", REMINDER), "ended": ("e", REVOKED)}  # action: (tag suffix, template)


def estimate(session, *, program_id: int, action: str, reason: str = "") -> dict:
    """The confirmation numbers of "announce", "remind" or "ended" (closing with open offers ended) for the
    console: broadcasts.send_estimate of the messages it would queue now."""
    p = get_program(session, program_id)
    suffix, template = SENDS[action]
    tag = f"{p.id}{suffix}"
    base = _grants(p.id, GrantState.OFFERED)
    if action == "remind":
        base = base.where(_told(p.id))
    per_channel = {c.value: base.where(_not_sent(tag, c.value)) for c in Channel}
    return broadcasts.send_estimate(session, per_channel, _sample_sms(session, p, template, base, reason))


def announce(session, *, actor: Actor, program_id: int) -> int:
    """Queue the offer to every offered grant not told yet (SMS and email); returns messages queued."""
    p = get_program(session, program_id)
    check_can_message(p)  # a closed program sends no more announcements
    until = text.date(p.valid_until, "en")
    total = _send(session, actor=actor, program=p, recipients=_grants(p.id, GrantState.OFFERED), tag=f"{p.id}",
                  template=OFFER, message=f"Offer: {p.name} ({what(p)}), with each subscriber's code; "
                                          f"answer by {until}.",
                  subject=p.name, action="announce")
    if total and p.announced_at is None:
        p.announced_at = utcnow()
    return total


def remind(session, *, actor: Actor, program_id: int) -> int:
    """Queue one reminder to grants still unanswered that were told about the offer (once per program and
    account: a reminder of an offer never announced would be the first word of it)."""
    p = get_program(session, program_id)
    check_can_message(p)  # a closed program sends no more reminders
    until = text.date(p.valid_until, "en")
    total = _send(session, actor=actor, program=p, recipients=_grants(p.id, GrantState.OFFERED).where(_told(p.id)),
                  tag=f"{p.id}r", template=REMINDER, message=f"Reminder: {p.name} ({what(p)}) ends on {until}.",
                  subject=f"Reminder: {p.name}", action="remind")
    # Sent by hand, it counts as the program's reminder: the scheduler will not send another.
    session.execute(sa.update(OfferProgram).where(OfferProgram.id == p.id, OfferProgram.reminded_at.is_(None))
                    .values(reminded_at=utcnow()).execution_options(synchronize_session=False))
    return total


def tell_revoked(session, *, actor: Actor, grant: OfferGrant) -> int:
    """Queue the message telling the subscriber an offer was withdrawn (called by grants.revoke)."""
    p = grant.program
    return _send(session, actor=actor, program=p,
                 recipients=_grants(p.id, GrantState.REVOKED, grant_id=grant.id), tag=f"{p.id}v{grant.id}",
                 template=REVOKED, message=f"Offer {text.display_code(grant.code)} ({p.name}) withdrawn: "
                                           f"{grant.revoke_reason}",
                 subject=f"Offer withdrawn: {p.name}", action="revoked")


def tell_ended(session, *, actor: Actor, program: OfferProgram, expired_at) -> int:
    """Queue the withdrawal message to the subscribers whose open offers were ended early when `program`
    was closed (their grants expired at `expired_at`): they had been told a later date."""
    recipients = _grants(program.id, GrantState.EXPIRED).where(OfferGrant.expired_at == expired_at)
    return _send(session, actor=actor, program=program, recipients=recipients, tag=f"{program.id}e",
                 template=REVOKED, message=f"Open offers of {program.name} ended early: {program.close_reason}",
                 subject=f"Offer withdrawn: {program.name}", action="ended")
