"""A grant's life after issuing: accept or decline (race-safe), expire, revoke (audited), fulfil, export,
and the per-program dashboard. Every state change is a conditional UPDATE ... WHERE state = <from>, so two
simultaneous requests cannot both move the same grant: the rowcount says which one won."""
import io

import sqlalchemy as sa

from accounts.models import Account
from core import csvout
from core.db import utcnow
from core.errors import Conflict, NotFound, ValidationError
from notifications.outbound import events as webhook_events
from offers.models import GrantState, OfferGrant, OfferProgram
from offers.serializers import grant_json
from offers.service import display_code, get_program, normalise_code
from ops.audit import Actor, record

EXPORT_COLUMNS = ("code", "account_number", "name", "email", "phone", "kind", "months", "value", "currency",
                  "accepted_at", "accepted_via")


def find_grant(session, code: str, *, account_id: int | None = None) -> OfferGrant:
    """The grant with this code (and of this account, when given); NotFound otherwise."""
    q = sa.select(OfferGrant).where(OfferGrant.code == normalise_code(code))
    if account_id is not None:
        q = q.where(OfferGrant.account_id == account_id)
    grant = session.scalar(q)
    if grant is None:
        raise NotFound("No offer with this code.")
    return grant


OFFER_ACCEPTED = "offer.accepted"  # the outbound webhook event (registered by offers.wiring)


def _move(session, grant: OfferGrant, *, to: GrantState, frm: tuple, values: dict) -> bool:
    """UPDATE the grant to `to` only if it is still in one of `frm`; True when this call moved it."""
    result = session.execute(
        sa.update(OfferGrant).where(OfferGrant.id == grant.id, OfferGrant.state.in_([f.value for f in frm]))
        .values(state=to.value, **values).execution_options(synchronize_session=False))
    session.refresh(grant)
    return result.rowcount == 1


def _refuse(grant: OfferGrant, program: OfferProgram, wanted: str):
    # An offer ended early (its program closed with "end open offers now") expired then, not at valid_until.
    when = min(grant.expired_at or program.valid_until, program.valid_until).strftime("%d %b %Y %H:%M UTC")
    reasons = {
        GrantState.EXPIRED: f"This offer expired on {when} and can no longer be {wanted}.",
        GrantState.REVOKED: "This offer was withdrawn.",
        GrantState.DECLINED: "This offer was declined.",
        GrantState.ACCEPTED: "This offer was already accepted.",
        GrantState.FULFILLED: "This offer was already accepted and fulfilled.",
    }
    raise Conflict(reasons.get(grant.state, f"This offer cannot be {wanted}."))


def _check_not_expired(session, grant: OfferGrant, now) -> None:
    """An offered grant past its program's validity is marked expired here and refused."""
    program = grant.program
    if grant.state == GrantState.OFFERED and program.valid_until <= now:
        _move(session, grant, to=GrantState.EXPIRED, frm=(GrantState.OFFERED,), values={"expired_at": now})


def _subscriber_said(session, grant: OfferGrant, action: str, via: str) -> None:
    """The subscriber's answer in the audit log, as theirs ("subscriber SK100001")."""
    number = session.scalar(sa.select(Account.account_number).where(Account.id == grant.account_id))
    record(session, actor=Actor.subscriber(number or f"account #{grant.account_id}"), action=f"offer.grant.{action}",
           entity_type="offer_grant", entity_id=grant.id, label=display_code(grant.code),
           before={"state": GrantState.OFFERED.value}, after={"state": grant.state.value, "via": via})


def accept(session, grant: OfferGrant, *, via: str) -> bool:
    """Accept an offered grant; True if this call accepted it, False if it was already accepted (idempotent).

    Conflict (409) when it is expired, declined or revoked, saying so. The subscriber's answer is audited."""
    now = utcnow()
    _check_not_expired(session, grant, now)
    if _move(session, grant, to=GrantState.ACCEPTED, frm=(GrantState.OFFERED,),
             values={"accepted_at": now, "accepted_via": via}):
        _subscriber_said(session, grant, "accept", via)
        webhook_events.emit(session, OFFER_ACCEPTED, lambda: {"grant": grant_json(grant), "via": via})
        return True
    if grant.state in (GrantState.ACCEPTED, GrantState.FULFILLED):
        return False
    _refuse(grant, grant.program, "accepted")


def decline(session, grant: OfferGrant, *, via: str = "web") -> bool:
    """Decline an offered grant; True if this call declined it, False if already declined (audited)."""
    now = utcnow()
    _check_not_expired(session, grant, now)
    if _move(session, grant, to=GrantState.DECLINED, frm=(GrantState.OFFERED,), values={"declined_at": now}):
        _subscriber_said(session, grant, "decline", via)
        return True
    if grant.state == GrantState.DECLINED:
        return False
    _refuse(grant, grant.program, "declined")


def revoke(session, *, actor: Actor, grant_id: int, reason: str) -> OfferGrant:
    """An operator withdraws an offered or accepted grant, with a reason; audited."""
    grant = session.get(OfferGrant, grant_id)
    if grant is None:
        raise NotFound("No such grant.")
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise ValidationError("Please give a reason.", {"reason": "Required, at most 500 characters."})
    before = grant.state.value
    if not _move(session, grant, to=GrantState.REVOKED, frm=(GrantState.OFFERED, GrantState.ACCEPTED),
                 values={"revoked_at": utcnow(), "revoke_reason": reason}):
        raise Conflict(f"Only offered or accepted grants can be revoked; this one is {grant.state.value}.")
    record(session, actor=actor, action="offer.grant.revoke", entity_type="offer_grant", entity_id=grant.id,
           before={"state": before}, after={"state": "revoked", "reason": reason, "code": grant.code,
                                            "account_id": grant.account_id})
    from offers import notify  # nothing is revoked silently: the subscriber is told, with the reason

    notify.tell_revoked(session, actor=actor, grant=grant)
    return grant


def _past_validity(now):
    """Offered grants of programs whose validity has ended by `now`."""
    past = sa.select(OfferProgram.id).where(OfferProgram.valid_until <= now)
    return sa.and_(OfferGrant.state == GrantState.OFFERED.value, OfferGrant.program_id.in_(past))


def expirable(session, *, now=None) -> int:
    """How many offered grants `expire` would mark expired now."""
    return session.scalar(sa.select(sa.func.count()).select_from(OfferGrant)
                          .where(_past_validity(now or utcnow()))) or 0


def expire(session, *, now=None) -> int:
    """Mark every offered grant of a program past its validity as expired; returns how many."""
    now = now or utcnow()
    return session.execute(
        sa.update(OfferGrant).where(_past_validity(now))
        .values(state=GrantState.EXPIRED.value, expired_at=now).execution_options(synchronize_session=False)
    ).rowcount


def mark_fulfilled(session, *, actor: Actor, program_id: int, codes: list[str]) -> dict:
    """Accepted grants of the program with these codes become fulfilled; reports codes that were not."""
    get_program(session, program_id)
    wanted = {normalise_code(c) for c in codes if normalise_code(c)}
    if not wanted:
        raise ValidationError("Send at least one code.", {"codes": "Required."})
    now = utcnow()
    done = 0
    chunk = sorted(wanted)
    for i in range(0, len(chunk), 1000):  # stay under SQLite's bound-parameter limit
        done += session.execute(
            sa.update(OfferGrant).where(OfferGrant.program_id == program_id,
                                        OfferGrant.state == GrantState.ACCEPTED.value,
                                        OfferGrant.code.in_(chunk[i:i + 1000]))
            .values(state=GrantState.FULFILLED.value, fulfilled_at=now)
            .execution_options(synchronize_session=False)).rowcount
    states = {}
    for i in range(0, len(chunk), 1000):
        states.update(session.execute(sa.select(OfferGrant.code, OfferGrant.state).where(
            OfferGrant.program_id == program_id, OfferGrant.code.in_(chunk[i:i + 1000]))).tuples().all())
    problems = {display_code(c) if len(c) == 10 else c: ("unknown code" if c not in states else states[c].value)
                for c in chunk if states.get(c) != GrantState.FULFILLED}
    record(session, actor=actor, action="offer.grant.fulfil", entity_type="offer_program", entity_id=program_id,
           after={"fulfilled": done, "not_fulfilled": len(problems)})
    return {"fulfilled": done, "not_fulfilled": problems}


def export_accepted(session, program_id: int, out) -> int:
    """Write accepted, unfulfilled grants as CSV (for billing) to a text stream; returns the row count."""
    program = get_program(session, program_id)
    writer = csvout.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    rows = session.execute(
        sa.select(OfferGrant.code, Account.account_number, Account.name, Account.email, Account.phone,
                  OfferGrant.accepted_at, OfferGrant.accepted_via)
        .join(Account, Account.id == OfferGrant.account_id)
        .where(OfferGrant.program_id == program_id, OfferGrant.state == GrantState.ACCEPTED.value)
        .order_by(OfferGrant.accepted_at, OfferGrant.id).execution_options(yield_per=10_000))
    value = f"{program.value_minor / 100:.2f}"
    n = 0
    for code, number, name, email, phone, accepted_at, via in rows:
        writer.writerow([display_code(code), number, name, email or "", phone or "", program.kind.value,
                         program.months or "", value, program.currency,
                         accepted_at.strftime("%Y-%m-%dT%H:%M:%SZ") if accepted_at else "", via or ""])
        n += 1
    return n


def export_csv(session, program_id: int) -> str:
    buf = io.StringIO()
    export_accepted(session, program_id, buf)
    return buf.getvalue()


def record_export(session, *, actor: Actor, program_id: int, via: str, rows: int | None = None) -> None:
    """The accepted-grants CSV holds names, emails and phones: who took it is audited (the caller commits)."""
    record(session, actor=actor, action="offer.export", entity_type="offer_program", entity_id=program_id,
           after={"via": via, **({"rows": rows} if rows is not None else {})})


def dashboard(session, program_id: int) -> dict:
    """Counts per state and the liability (minor units) offered, accepted and fulfilled."""
    program = get_program(session, program_id)
    counts = {s.value: 0 for s in GrantState}
    counts.update({s.value if hasattr(s, "value") else s: n for s, n in session.execute(
        sa.select(OfferGrant.state, sa.func.count()).where(OfferGrant.program_id == program_id)
        .group_by(OfferGrant.state)).tuples()})
    v = program.value_minor
    return {"program": program, "counts": counts,
            "liability_minor": {"offered": counts["offered"] * v, "accepted": counts["accepted"] * v,
                                "fulfilled": counts["fulfilled"] * v}}


def counts_by_program(session, incident_id: int) -> dict[int, dict[str, int]]:
    """{program id: {state: grants}} for every program of an incident (one grouped query)."""
    out: dict[int, dict[str, int]] = {}
    rows = session.execute(
        sa.select(OfferGrant.program_id, OfferGrant.state, sa.func.count())
        .join(OfferProgram, OfferProgram.id == OfferGrant.program_id)
        .where(OfferProgram.incident_id == incident_id).group_by(OfferGrant.program_id, OfferGrant.state))
    for program_id, state, n in rows:
        out.setdefault(program_id, {s.value: 0 for s in GrantState})[getattr(state, "value", state)] = n
    return out


def open_grants_for(session, account_id: int) -> list[OfferGrant]:
    """An account's grants still waiting for an answer (for the personal page and a bare SMS ACCEPT)."""
    return list(session.scalars(sa.select(OfferGrant).where(
        OfferGrant.account_id == account_id, OfferGrant.state == GrantState.OFFERED.value)
        .order_by(OfferGrant.id)))
