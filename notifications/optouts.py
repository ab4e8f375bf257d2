"""Opt-outs: addresses that must not be messaged on a channel, and the one place that records or lifts them.

An opt-out binds the address (a STOP binds the phone number, whoever it belongs to), and is mirrored on the
accounts that carry that address (Account.sms_opt_out / email_opt_out) so account screens and audience
queries see it. Functions take the session and never commit: the caller commits once."""
import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from core.db import utcnow
from core.errors import NotFound, ValidationError
from notifications.models import Account, Channel, InboundMessage, Notification, NotificationStatus, OptOut
from notifications.providers import SUPPRESSED_CODE
from ops.audit import Actor, record



def normalise(channel: Channel | str, address: str) -> tuple[Channel, str]:
    """(Channel, address as stored): emails lower case, phones trimmed (they are E.164 already)."""
    try:
        channel = Channel(channel)
    except ValueError:
        raise ValidationError("Choose a channel: sms or email.", {"channel": "Choose sms or email."})
    address = (address or "").strip()
    if channel is Channel.EMAIL:
        address = address.lower()
    if not address or len(address) > 254:
        raise ValidationError("Give an address.", {"address": "Give a phone number (E.164) or an email address."})
    if channel is Channel.SMS and not (address.startswith("+") and address[1:].isdigit() and 8 <= len(address) <= 16):
        raise ValidationError("That is not a phone number.", {"address": "Use E.164, e.g. +15551234567."})
    if channel is Channel.EMAIL and "@" not in address:
        raise ValidationError("That is not an email address.", {"address": "Use an email address."})
    return channel, address


def _flag(channel: Channel):
    return Account.sms_opt_out if channel is Channel.SMS else Account.email_opt_out


def _contact(channel: Channel):
    return Account.phone if channel is Channel.SMS else Account.email


ERASED_PREFIX = "erased:"


def erased_hash(key: bytes, channel: str, address: str) -> str:
    """The keyed hash an erased subscriber's opt-out keeps for (channel, normalised address)."""
    return ERASED_PREFIX + hmac.new(key, f"{channel}\x1f{address}".encode(), hashlib.sha256).hexdigest()


def erased_address(channel: Channel | str, address: str) -> str:
    """What an erased subscriber's opt-out keeps instead of their address: a keyed hash (SECRET_KEY), so the
    opt-out still holds if the address comes back, and the address itself is gone."""
    channel, address = normalise(channel, address)
    return erased_hash(current_app.config["SECRET_KEY"].encode(), channel.value, address)


def erase_address(session, channel: Channel | str, address: str) -> bool:
    """Replace an opt-out's address by its keyed hash (accounts.erasure); True if there was one."""
    channel, address = normalise(channel, address)
    hashed = erased_address(channel, address)
    row = session.scalar(sa.select(OptOut).where(OptOut.channel == channel, OptOut.address == address))
    if row is None:
        return False
    if session.scalar(sa.select(OptOut.id).where(OptOut.channel == channel, OptOut.address == hashed)) is None:
        row.address = hashed
    else:
        session.delete(row)
    return True


def erased_opt_outs(session, channel: Channel | str, addresses) -> set[str]:
    """Which of `addresses` belong to an erased subscriber's opt-out (their keyed hash is stored)."""
    channel = Channel(channel)
    hashes = {}
    for address in addresses:
        try:
            hashes[erased_address(channel, address)] = address
        except ValidationError:
            continue
    if not hashes:
        return set()
    found = session.scalars(sa.select(OptOut.address).where(OptOut.channel == channel,
                                                            OptOut.address.in_(list(hashes))))
    return {hashes[h] for h in found}


def is_opted_out(session, channel: Channel | str, address: str) -> bool:
    """True when the address has opted out of the channel."""
    channel = Channel(channel)
    address = address.strip().lower() if channel is Channel.EMAIL else address.strip()
    return session.scalar(sa.select(OptOut.id).where(OptOut.channel == channel, OptOut.address == address)) \
        is not None or bool(erased_opt_outs(session, channel, [address]))


_on_opt_out: list[Callable] = []


def on_opt_out(callback: Callable) -> None:
    """Call `callback(session, channel, address, source, actor)` in the opt-out's transaction each time an
    address opts out (also again): a higher domain ends what it keeps for it (accounts.subscriptions: a STOP
    or one-click unsubscribe ends a status-page subscription). A new app registers again: no duplicates."""
    if callback not in _on_opt_out:
        _on_opt_out.append(callback)


SUBSCRIBER_SOURCES = ("sms", "email", "web")  # "sms:STOP", "email:one-click": the subscriber; others: the system


def _actor_for(source: str) -> Actor:
    """Who lifted or set an opt-out nobody signed in for: the subscriber (their STOP, their one-click
    unsubscribe) or the system (a provider's report, such as Twilio's 21610)."""
    if source.split(":", 1)[0] in SUBSCRIBER_SOURCES:
        return Actor.subscriber(f"({source})")
    return Actor.system(source)


def opt_out(session, channel: Channel | str, address: str, source: str, *, actor: Actor | None = None) -> OptOut:
    """Record an opt-out (idempotent), flag matching accounts and suppress unsent messages to the address.

    Every change is audited: as `actor` when an operator acts, else as the subscriber or the system."""
    channel, address = normalise(channel, address)
    existing = session.scalar(sa.select(OptOut).where(OptOut.channel == channel, OptOut.address == address))
    if existing is None:
        try:
            # A savepoint, so a concurrent identical STOP (unique constraint) does not spoil the caller's transaction.
            with session.begin_nested():
                existing = OptOut(channel=channel, address=address, source=source[:64], created_at=utcnow())
                session.add(existing)
        except IntegrityError:
            existing = session.scalar(sa.select(OptOut).where(OptOut.channel == channel,
                                                              OptOut.address == address))
        else:
            record(session, actor=actor or _actor_for(source), action="opt_out.add", entity_type="opt_out",
                   entity_id=existing.id,
                   after={"channel": channel.value, "address": address, "source": existing.source})
    now = utcnow()
    # Both set-based: an opt-out of a number shared by many accounts, or with a queued broadcast, is two statements.
    session.execute(sa.update(Account).where(_contact(channel) == address, _flag(channel).is_(False))
                    .values({_flag(channel): True, Account.updated_at: now}).execution_options(
                        synchronize_session=False))
    session.execute(sa.update(Notification).where(
        Notification.channel == channel, Notification.recipient == address,
        Notification.status == NotificationStatus.QUEUED,
    ).values(status=NotificationStatus.SUPPRESSED, error_code=SUPPRESSED_CODE,
             error_message=f"Opted out ({source[:64]})", updated_at=now).execution_options(
                 synchronize_session=False))
    for callback in _on_opt_out:
        callback(session, channel, address, source, actor or _actor_for(source))
    return existing


def opt_in(session, channel: Channel | str, address: str, source: str, *, actor: Actor | None = None) -> bool:
    """Lift an opt-out and clear the matching accounts' flags; returns whether there was one to lift.

    Messages suppressed while opted out stay suppressed: they are stale by now."""
    channel, address = normalise(channel, address)
    # An erased subscriber's opt-out (its keyed hash) is lifted by the same address asking again.
    session.execute(sa.delete(OptOut).where(OptOut.channel == channel,
                                            OptOut.address == erased_address(channel, address)))
    row = session.scalar(sa.select(OptOut).where(OptOut.channel == channel, OptOut.address == address))
    if row is not None:
        record(session, actor=actor or _actor_for(source), action="opt_out.remove", entity_type="opt_out",
               entity_id=row.id, before={"channel": channel.value, "address": address, "source": row.source},
               after={"source": source})
        session.delete(row)
        session.flush()
    session.execute(sa.update(Account).where(_contact(channel) == address, _flag(channel).is_(True))
                    .values({_flag(channel): False, Account.updated_at: utcnow()}).execution_options(
                        synchronize_session=False))
    return row is not None


def remove_by_id(session, opt_out_id: int, *, actor: Actor) -> OptOut:
    """Console: lift one opt-out by its id (audited)."""
    row = session.get(OptOut, opt_out_id)
    if row is None:
        raise NotFound(f"No opt-out with id {opt_out_id}.")
    opt_in(session, row.channel, row.address, "operator", actor=actor)
    return row


def list_opt_outs(session, *, q: str = "", channel: str = "", source: str = "", since: datetime | None = None,
                  until: datetime | None = None, page: int = 1, per_page: int = 50) -> tuple[list[OptOut], int]:
    """Opt-outs, newest first, filtered by address fragment, channel, source prefix and date; (rows, total)."""
    query = sa.select(OptOut)
    if q:
        query = query.where(OptOut.address.contains(q.strip().lower() if "@" in q else q.strip(),
                                                    autoescape=True))
    if channel in {c.value for c in Channel}:
        query = query.where(OptOut.channel == Channel(channel))
    if source:
        query = query.where(OptOut.source.startswith(source, autoescape=True))
    if since:
        query = query.where(OptOut.created_at >= since)
    if until:
        query = query.where(OptOut.created_at < until)
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(OptOut.created_at.desc(), OptOut.id.desc())
                           .limit(per_page).offset((max(page, 1) - 1) * per_page)).all()
    return list(rows), total


def sources(session) -> list[str]:
    """The distinct sources seen, for the console's filter."""
    return list(session.scalars(sa.select(OptOut.source).distinct().order_by(OptOut.source)))


def list_inbound(session, *, q: str = "", keyword: str = "", page: int = 1,
                 per_page: int = 50) -> tuple[list[InboundMessage], int]:
    """Inbound SMS, newest first, filtered by sender fragment and keyword; (rows, total)."""
    query = sa.select(InboundMessage)
    if q:
        query = query.where(InboundMessage.from_number.contains(q.strip(), autoescape=True))
    if keyword:
        query = query.where(InboundMessage.keyword == keyword)
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
                           .limit(per_page).offset((max(page, 1) - 1) * per_page)).all()
    return list(rows), total
