"""Offer programs and grants: validation, eligibility (one SQL select), set-based issuing with codes,
acceptance races, expiry, revocation and fulfilment. Functions take the session and never commit.

Eligibility: an affected account of the program's incident is eligible when ANY of its categories is in
one of `eligible_states` and NONE is in one of `exclude_states` (so "everyone else" beside a "lost" program
is eligible_states=[every other state], exclude_states=["lost"]; "fully recovered" is eligible_states=
["recovered"], exclude_states=[every other state]). Accounts without category rows are never eligible.
With `min_impact`, nobody is eligible unless the incident's impact is at least that."""
import secrets
from datetime import datetime
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa

from accounts.models import AffectedAccount, RecoveryState, RecoveryStatus
from core import bulk
from core.db import utcnow
from core.errors import Conflict, NotFound, ValidationError
from incidents.models import Impact, Incident
from offers.models import GrantState, OfferGrant, OfferKind, OfferProgram, ProgramStatus
from ops.audit import Actor, record

# No 0/O, 1/I/L: a code read out over the phone cannot be misheard as another. 31^10 ~ 8e14 codes.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
BATCH = 10_000
LIVE = (GrantState.OFFERED, GrantState.ACCEPTED, GrantState.FULFILLED)  # count against the budget
CURRENCIES = {"USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "SEK", "NOK", "DKK", "NZD", "MXN", "BRL"}
STAGE = "stage_offer_grants"
MONEY_MAX = Decimal("9999999999.99")  # an amount (and a budget) in major units; its minor units fit a BIGINT


# ---- codes ----------------------------------------------------------------------------------------

def new_code() -> str:
    """A fresh random code (10 characters of ALPHABET, from the OS's CSPRNG)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def display_code(code: str) -> str:
    """XXXXX-XXXXX, as printed and read out."""
    return f"{code[:5]}-{code[5:]}"


def normalise_code(text: str) -> str:
    """A code as typed back (any case, with dashes or spaces) in its stored form."""
    return "".join(ch for ch in (text or "").upper() if ch.isalnum())


# ---- programs -------------------------------------------------------------------------------------

REMIND_DEFAULT = 3  # days before valid_until; None: no automatic reminder
# The offer's terms: what subscribers were offered and who qualifies. Fixed once a grant exists.
TERMS = ("kind", "value", "currency", "months", "eligible_states", "exclude_states", "min_impact")
EDITABLE = ("name", "description", "valid_until", "budget_cap", "remind_days_before", *TERMS)
# Model attribute -> the input field it comes from (errors are reported by input field).
_FIELD = {"value_minor": "value", "budget_cap_minor": "budget_cap"}


def _money(fields: dict, name: str, raw, *, required: bool) -> int | None:
    """A positive amount in major units (100 or "100.00") as integer minor units."""
    if raw in (None, ""):
        if required:
            fields[name] = "This field is required."
        return None
    try:
        amount = Decimal(str(raw))
    except InvalidOperation:
        fields[name] = "Must be an amount, e.g. 100 or 100.00."
        return None
    if isinstance(raw, bool) or not amount.is_finite() or amount <= 0 or amount.as_tuple().exponent < -2:
        fields[name] = "Must be a positive amount with at most two decimals."
        return None
    if amount > MONEY_MAX:
        fields[name] = f"At most {MONEY_MAX}."
        return None
    return int(amount * 100)


def _states(fields: dict, name: str, raw, *, required: bool) -> list[str]:
    values = [s.value for s in RecoveryState]
    if raw in (None, []) and not required:
        return []
    if not isinstance(raw, list) or not raw or any(s not in values for s in raw) or len(set(raw)) != len(raw):
        fields[name] = f"Choose one or more of: {', '.join(values)}, each once."
        return []
    return list(raw)


def _remind_days(fields: dict, raw) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 90:
        fields["remind_days_before"] = "A whole number of days from 0 to 90, or empty for no automatic reminder."
        return None
    return raw


def _clean(data: dict, fields: dict) -> dict:
    """The program's attributes from input `data`; problems go to `fields` (by input field name)."""
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        fields["name"] = "Required, at most 200 characters."
    description = data.get("description") or ""
    if not isinstance(description, str) or len(description) > 5000:
        fields["description"] = "At most 5000 characters."
    kind = data.get("kind")
    if kind not in [k.value for k in OfferKind]:
        fields["kind"] = f"Choose one of: {', '.join(k.value for k in OfferKind)}."
    value = _money(fields, "value", data.get("value"), required=True)
    cap = _money(fields, "budget_cap", data.get("budget_cap"), required=False)
    currency = data.get("currency")
    if not isinstance(currency, str) or currency.upper() not in CURRENCIES:
        fields["currency"] = f"Choose one of: {', '.join(sorted(CURRENCIES))}."
    months = data.get("months")
    if kind == OfferKind.FREE_MONTHS:
        months = 1 if months in (None, "") else months
        if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 24:
            fields["months"] = "A whole number of months from 1 to 24."
    elif months not in (None, ""):
        fields["months"] = "Only for free_months."
    eligible = _states(fields, "eligible_states", data.get("eligible_states"), required=True)
    exclude = _states(fields, "exclude_states", data.get("exclude_states"), required=False)
    if set(eligible) & set(exclude):
        fields["exclude_states"] = "A state cannot be both eligible and excluded."
    min_impact = data.get("min_impact") or None
    if min_impact is not None and min_impact not in [i.value for i in Impact]:
        fields["min_impact"] = f"Choose one of: {', '.join(i.value for i in Impact)}."
    valid_until = data.get("valid_until")
    if not isinstance(valid_until, datetime) or valid_until.tzinfo is None:
        fields["valid_until"] = "Required: a date and time with a time zone."
    remind = _remind_days(fields, data.get("remind_days_before", REMIND_DEFAULT))
    ok = {k: k not in fields for k in ("name", "description", "kind", "currency")}  # safe to normalise
    return {"name": name.strip() if ok["name"] else None,
            "description": description.strip() if ok["description"] else None,
            "kind": OfferKind(kind) if ok["kind"] else None, "value_minor": value,
            "months": months if kind == OfferKind.FREE_MONTHS else None,
            "currency": currency.upper() if ok["currency"] else None, "eligible_states": eligible,
            "exclude_states": exclude or None, "min_impact": min_impact, "valid_until": valid_until,
            "budget_cap_minor": cap, "remind_days_before": remind}


def create_program(session, *, actor: Actor, incident_id: int, data: dict, dry_run: bool = False) -> OfferProgram:
    """Validate and add an offer program (ValidationError with field errors); audited.

    With dry_run, the program is only built (not added), for the console's preview."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound("No such incident.")
    fields: dict = {}
    clean = _clean(data, fields)
    if "valid_until" not in fields and clean["valid_until"] <= utcnow():
        fields["valid_until"] = "Must be in the future."
    if fields:
        raise ValidationError("Please correct the highlighted fields.", fields)
    program = OfferProgram(incident_id=incident.id, **clean, status=ProgramStatus.ACTIVE,
                           created_by=actor.label, created_by_id=actor.operator_id, created_at=utcnow())
    if dry_run:
        return program
    if program.remind_days_before is None:  # the column's default (3) would replace a plain None on INSERT
        program.remind_days_before = sa.null()
    session.add(program)
    session.flush()
    record(session, actor=actor, action="offer.program.create", entity_type="offer_program",
           entity_id=program.id, after=program_summary(program))
    return program


def _json(v):
    return v.isoformat() if isinstance(v, datetime) else getattr(v, "value", v)


SUMMARY = ("incident_id", "name", "description", "kind", "value_minor", "months", "currency", "eligible_states",
           "exclude_states", "min_impact", "valid_until", "budget_cap_minor", "remind_days_before", "status")


def program_summary(p: OfferProgram) -> dict:
    return {k: _json(getattr(p, k)) for k in SUMMARY}


def get_program(session, program_id: int) -> OfferProgram:
    program = session.get(OfferProgram, program_id)
    if program is None:
        raise NotFound("No such offer program.")
    return program


def _locked_program(session, program_id: int) -> OfferProgram:
    """The program, row-locked (PostgreSQL) so an edit, a close and an issue run one after another."""
    program = session.scalar(sa.select(OfferProgram).where(OfferProgram.id == program_id).with_for_update()
                             .execution_options(populate_existing=True))
    if program is None:
        raise NotFound("No such offer program.")
    return program


def grant_count(session, program_id: int) -> int:
    """Every grant the program ever made, whatever its state (the terms are fixed once there is one)."""
    return session.scalar(sa.select(sa.func.count()).select_from(OfferGrant)
                          .where(OfferGrant.program_id == program_id)) or 0


def as_input(p: OfferProgram) -> dict:
    """A program's current values in the shape create_program and update_program take."""
    return {"name": p.name, "description": p.description or "", "kind": p.kind.value,
            "value": f"{Decimal(p.value_minor) / 100:.2f}", "currency": p.currency, "months": p.months,
            "eligible_states": list(p.eligible_states), "exclude_states": list(p.exclude_states or []),
            "min_impact": p.min_impact, "valid_until": p.valid_until,
            "budget_cap": None if p.budget_cap_minor is None else f"{Decimal(p.budget_cap_minor) / 100:.2f}",
            "remind_days_before": p.remind_days_before}


def _same(attr: str, old, new) -> bool:
    if attr in ("eligible_states", "exclude_states"):
        return sorted(old or []) == sorted(new or [])
    return old == new


def update_program(session, *, actor: Actor, program_id: int, data: dict) -> OfferProgram:
    """Change some fields of a program (`data` holds only those); audited with before/after.

    Name, description, reminder, validity and budget can always change, with a finance team's rules:
    valid_until may be extended any time but shortened only while no grant exists (subscribers were told
    a date), never into the past; the budget cap never below the liability already granted. The terms
    (TERMS) only change while the program has no grants. A closed program is not edited (Conflict)."""
    program = _locked_program(session, program_id)
    if program.status == ProgramStatus.CLOSED:
        raise Conflict("This program is closed; it can no longer be edited.")
    fields: dict = {k: "Unknown field." for k in data if k not in EDITABLE}
    if fields:
        raise ValidationError("Please correct the highlighted fields.", fields)
    merged = {**as_input(program), **data}
    if merged["kind"] != OfferKind.FREE_MONTHS and "months" not in data:
        merged["months"] = None  # switching away from free months drops the months
    new = _clean(merged, fields)  # a field in error is left out; the rules below still check the others
    changed = {k: v for k, v in new.items()
               if _FIELD.get(k, k) not in fields and not _same(k, getattr(program, k), v)}
    now = utcnow()
    granted = grant_count(session, program.id) if changed else 0
    for attr in changed:
        if granted and _FIELD.get(attr, attr) in TERMS:
            fields[_FIELD.get(attr, attr)] = (
                f"Cannot change: {granted:,} grant{'s' if granted != 1 else ''} already carry these terms. "
                f"Close this program and define a new one instead.")
    if "valid_until" in changed:
        until = changed["valid_until"]
        if until <= now:
            fields["valid_until"] = "Must be in the future."
        elif until < program.valid_until and granted:
            fields["valid_until"] = (f"Can only be extended now that grants exist: subscribers were told "
                                     f"{program.valid_until:%d %b %Y %H:%M} UTC.")
    cap = changed.get("budget_cap_minor")
    if cap is not None:
        live = _live_count(session, program.id)
        owed = live * changed.get("value_minor", program.value_minor)
        if cap < owed:
            fields["budget_cap"] = (f"Cannot be below the {owed / 100:,.2f} {program.currency} already granted "
                                    f"({live:,} live grants × {program.value_minor / 100:,.2f}).")
    if fields:
        raise ValidationError("Please correct the highlighted fields.", fields)
    if not changed:
        return program
    before = {k: _json(getattr(program, k)) for k in changed}
    for attr, value in changed.items():
        setattr(program, attr, value)
    program.updated_at = now
    record(session, actor=actor, action="offer.program.update", entity_type="offer_program",
           entity_id=program.id, before=before, after={k: _json(v) for k, v in changed.items()})
    return program


def close_program(session, *, actor: Actor, program_id: int, reason: str, expire_open: bool = False) -> dict:
    """Close a program with a reason: it issues, announces and reminds no more; audited.

    Offered grants stay valid until valid_until, unless `expire_open` ends them now (state expired);
    accepted grants stay accepted and can still be fulfilled. Closing a closed program changes nothing
    (except that `expire_open` still ends offers left open). Returns {"program", "already_closed", "expired"}."""
    program = _locked_program(session, program_id)
    already = program.status == ProgramStatus.CLOSED
    reason = reason.strip() if isinstance(reason, str) else ""
    if not already and (not reason or len(reason) > 500):
        raise ValidationError("Please give a reason for closing.", {"reason": "Required, at most 500 characters."})
    now = utcnow()
    expired = 0
    if expire_open:
        expired = session.execute(
            sa.update(OfferGrant).where(OfferGrant.program_id == program.id,
                                        OfferGrant.state == GrantState.OFFERED.value)
            .values(state=GrantState.EXPIRED.value, expired_at=now)
            .execution_options(synchronize_session=False)).rowcount
    if not already:
        program.status, program.closed_at, program.closed_by = ProgramStatus.CLOSED, now, actor.label
        program.close_reason, program.updated_at = reason, now
    if expired:  # they were told a later date: nothing ends silently
        from offers import notify  # notify builds on this module

        session.flush()
        notify.tell_ended(session, actor=actor, program=program, expired_at=now)
    if not already or expired:
        record(session, actor=actor, action="offer.program.close", entity_type="offer_program",
               entity_id=program.id, before={"status": ProgramStatus.ACTIVE.value} if not already else None,
               after={"status": ProgramStatus.CLOSED.value, "reason": program.close_reason,
                      "expire_open": bool(expire_open), "expired": expired})
    return {"program": program, "already_closed": already, "expired": expired}


def check_can_message(program: OfferProgram) -> None:
    """Conflict for a closed program: it sends no more announcements or reminders."""
    if program.status == ProgramStatus.CLOSED:
        raise Conflict(f"This program was closed on {program.closed_at:%d %b %Y}: it sends no more "
                       f"announcements or reminders.")


# ---- eligibility ----------------------------------------------------------------------------------

def eligible(session, program: OfferProgram) -> sa.Select:
    """SELECT aa_id, account_id of the accounts eligible for the program now (see the module's rule)."""
    q = sa.select(AffectedAccount.id.label("aa_id"), AffectedAccount.account_id.label("account_id")) \
        .where(AffectedAccount.incident_id == program.incident_id)
    if program.min_impact:
        impact = session.scalar(sa.select(Incident.impact).where(Incident.id == program.incident_id))
        if Impact(impact).rank < Impact(program.min_impact).rank:
            return q.where(sa.false())

    def any_in(states):
        return sa.exists().where(RecoveryStatus.affected_account_id == AffectedAccount.id,
                                 RecoveryStatus.state.in_(states))

    q = q.where(any_in(program.eligible_states))
    if program.exclude_states:
        q = q.where(~any_in(program.exclude_states))
    return q


def _not_granted(program: OfferProgram, q: sa.Select) -> sa.Select:
    return q.where(~sa.exists().where(OfferGrant.program_id == program.id,
                                      OfferGrant.account_id == AffectedAccount.account_id))


def _live_count(session, program_id: int) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(OfferGrant).where(
        OfferGrant.program_id == program_id, OfferGrant.state.in_(LIVE))) or 0


def preview(session, program: OfferProgram) -> dict:
    """How many accounts are eligible now, how many would a run issue, and the liability."""
    total = session.scalar(sa.select(sa.func.count()).select_from(eligible(session, program).subquery())) or 0
    new = session.scalar(sa.select(sa.func.count()).select_from(
        _not_granted(program, eligible(session, program)).subquery())) or 0
    allowed = _allowance(program, _live_count(session, program.id))
    would = new if allowed is None else min(new, allowed)
    return {"eligible": total, "new": new, "would_issue": would, "over_budget": new - would,
            "liability_minor": total * program.value_minor}


def _allowance(program: OfferProgram, live: int) -> int | None:
    """How many more grants the budget allows (None: no cap)."""
    if program.budget_cap_minor is None:
        return None
    return max(0, program.budget_cap_minor // program.value_minor - live)


# ---- issuing --------------------------------------------------------------------------------------

def issue(session, *, actor: Actor, program_id: int) -> dict:
    """Grant the program to every eligible account without one yet, within the budget; idempotent.

    Set-based: the eligible accounts not yet granted (up to the budget) are numbered into a temp stage by
    one INSERT ... SELECT; Python only draws the codes (secrets) and streams them into a second stage
    (COPY on PostgreSQL, executemany in batches of 10,000 on SQLite); one INSERT ... SELECT ... ON CONFLICT
    DO NOTHING joins the two into grants. A code that collides with an existing one (about 1 in 800 per
    million at 31^10) leaves its account for a retry with a fresh code."""
    program = session.scalar(sa.select(OfferProgram).where(OfferProgram.id == program_id).with_for_update())
    if program is None:
        raise NotFound("No such offer program.")
    if program.status == ProgramStatus.CLOSED:
        raise Conflict(f"This program was closed on {program.closed_at:%d %b %Y}"
                       f"{f' ({program.close_reason})' if program.close_reason else ''}; it issues no more grants.")
    if program.valid_until <= utcnow():
        raise Conflict(f"This program's validity ended on {program.valid_until:%d %b %Y %H:%M} UTC; extend "
                       f"valid_until to issue more grants.")
    conn = session.connection()
    allowed = _allowance(program, _live_count(session, program.id))
    pending = _not_granted(program, eligible(session, program)).subquery("p")
    want = session.scalar(sa.select(sa.func.count()).select_from(pending)) or 0
    target = want if allowed is None else min(want, allowed)
    issued = 0
    bulk.create_stage(conn, STAGE, "n INTEGER PRIMARY KEY, aa_id INTEGER, account_id INTEGER")
    bulk.create_stage(conn, CODES, "n INTEGER PRIMARY KEY, code VARCHAR(10)")
    try:
        if target:
            numbered = sa.select(sa.func.row_number().over(order_by=pending.c.aa_id), pending.c.aa_id,
                                 pending.c.account_id).order_by(pending.c.aa_id).limit(target)
            conn.execute(sa.insert(_stage).from_select(["n", "aa_id", "account_id"], numbered))
            issued = _grant_staged(conn, program.id, range(1, target + 1), utcnow())
    finally:
        bulk.drop_stage(conn, STAGE)
        bulk.drop_stage(conn, CODES)
    program.not_issued = want - issued
    if issued:  # a run that changed nothing leaves no audit entry
        record(session, actor=actor, action="offer.program.issue", entity_type="offer_program",
               entity_id=program.id, after={"issued": issued, "not_issued": want - issued})
    return {"issued": issued, "not_issued": want - issued}


CODES = "stage_offer_codes"
_stage = sa.table(STAGE, sa.column("n"), sa.column("aa_id"), sa.column("account_id"))
_codes = sa.table(CODES, sa.column("n"), sa.column("code"))


def _grant_staged(conn, program_id: int, numbers: sa.Select, now) -> int:
    """Draw codes for the staged rows numbered `numbers` and insert their grants; retries collisions."""
    done = 0
    for _attempt in range(5):
        ns = numbers if isinstance(numbers, range) else conn.execute(numbers).scalars().all()
        conn.exec_driver_sql(f"DELETE FROM {CODES}")
        bulk.load(conn, CODES, ("n", "code"), _with_codes(ns))
        bulk.analyze(conn, STAGE)
        bulk.analyze(conn, CODES)
        rows = sa.select(sa.literal(program_id), _stage.c.aa_id, _stage.c.account_id, _codes.c.code,
                         sa.literal(GrantState.OFFERED.value), sa.literal(now, OfferGrant.offered_at.type)) \
            .select_from(_stage.join(_codes, _codes.c.n == _stage.c.n)) \
            .where(sa.true())  # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT
        insert = bulk.dialect_insert(conn)(OfferGrant.__table__).from_select(
            ["program_id", "affected_account_id", "account_id", "code", "state", "offered_at"], rows
        ).on_conflict_do_nothing()
        added = conn.execute(insert.execution_options(preserve_rowcount=True)).rowcount
        done += added
        staged = conn.execute(sa.select(sa.func.count()).select_from(_codes)).scalar()
        if added == staged:
            return done
        # Some codes collided: retry the staged accounts that still have no grant of this program.
        numbers = sa.select(_stage.c.n).where(~sa.exists().where(
            OfferGrant.program_id == program_id, OfferGrant.account_id == _stage.c.account_id))
    raise RuntimeError("could not find free offer codes after 5 attempts")


# 248 = 8 x 31: bytes below it map evenly onto the alphabet, the rest are dropped (no modulo bias).
_TABLE = bytes(ord(ALPHABET[b % len(ALPHABET)]) if b < 248 else 0 for b in range(256))
_DROP = bytes(range(248, 256))


def _with_codes(numbers):
    """(n, code) for each n, codes drawn from os.urandom in blocks (fast, uniform over ALPHABET)."""
    block, at = "", 0
    for n in numbers:
        if at + CODE_LENGTH > len(block):
            block = block[at:] + secrets.token_bytes(BATCH * CODE_LENGTH + 64).translate(_TABLE, _DROP).decode()
            at = 0
        yield n, block[at:at + CODE_LENGTH]
        at += CODE_LENGTH

