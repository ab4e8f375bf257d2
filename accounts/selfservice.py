"""Subscriber self-service ("Check my account"): one-time codes, their rate limits, and the personal page.

Known and unknown accounts take the same path, run the same statements and get the same answer: for an
unknown one the caller gets a decoy challenge that no code will ever open. Functions take the session and do not commit."""
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app, g, has_request_context

from accounts import plain_language as pl
from accounts.contact import ContactError, normalise_phone
from accounts.models import Account, AffectedAccount, RecoveryCategory, RecoveryStatus, VerificationCode
from core.db import utcnow
from core.errors import ServiceError
from core.i18n import N_, t, tn
from core import ratelimit
from core.ratelimit import hit
from incidents.models import Incident, IncidentUpdate
from notifications import service as outbox
from notifications.models import Channel

UPDATES_PER_INCIDENT = 5  # the newest; the public incident page has them all


def _page_lang() -> str | None:
    """The language of the subscriber's page (core.i18n.use); None (English) outside a request."""
    return g.get("lang") if has_request_context() else None


def say(msgid: str, **values) -> str:
    """A message for the subscriber in the language of their page."""
    return t(_page_lang(), msgid, **values)


class Limited(ServiceError):
    """Too many requests; `retry_after` is in seconds. Said the same way for known and unknown accounts."""

    status = 429

    def __init__(self, window_seconds: int, *, resend: bool = False):
        minutes = max(1, round(window_seconds / 60))
        wait = tn(_page_lang(), "{n} minute", "{n} minutes", minutes, n=minutes)
        super().__init__(say(N_("A code was sent moments ago. Please wait {wait} before asking for another."),
                              wait=wait) if resend
                         else say(N_("Too many attempts. Please wait {wait} and try again."), wait=wait))
        self.retry_after = window_seconds


class CodeRefused(ServiceError):
    """A code that does not open the page; `reason` is wrong, dead, expired or missing."""

    status = 422
    MESSAGES = {
        "wrong": N_("That code is not right. Check the message and try again."),
        "dead": N_("Too many wrong codes. Please request a new code."),
        "expired": N_("This code has expired. Please request a new code."),
        "missing": N_("Please request a code first."),
    }

    def __init__(self, reason: str, *, left: int | None = None):
        message = say(self.MESSAGES[reason])
        if reason == "wrong" and left is not None:  # the same count for a decoy: every row counts its tries
            message += " " + tn(_page_lang(), "{n} try left with this code.", "{n} tries left with this code.",
                                left, n=left)
        super().__init__(message)
        self.reason = reason
        self.left = left


@dataclass
class Challenge:
    """What the browser keeps (in its signed session) between asking for a code and typing it."""

    handle: str
    expires_ts: float
    tries: int = 0


def _keyed_hash(*parts: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def _challenge_hash(handle: str) -> str:
    return hashlib.sha256(handle.encode()).hexdigest()


def _limit(session, bucket: str, setting: str) -> None:
    limit, window = current_app.config[setting]
    if not hit(session, bucket, limit=limit, window_seconds=window):
        raise Limited(window)


def find_account(session, raw: str) -> tuple[Account | None, str]:
    """The account attached to an incident whose number (exact) or phone (any format) is `raw`, and the
    normalised input (used to rate-limit unknown inputs without saying they are unknown)."""
    raw = raw.strip()
    clauses = [Account.account_number == raw]
    key = raw
    try:
        if phone := normalise_phone(raw, current_app.config["PHONE_DEFAULT_REGION"]):
            clauses.append(Account.phone == phone)
            key = phone
    except ContactError:
        pass
    attached = sa.exists().where(AffectedAccount.account_id == Account.id)
    # A number wins over a phone; several accounts may share a phone: the oldest attached one answers.
    account = session.scalar(
        sa.select(Account).where(sa.or_(*clauses), attached)
        .order_by((Account.account_number == raw).desc(), Account.id).limit(1))
    return account, key


def request_code(session, *, raw: str, ip: str) -> Challenge:
    """Rate-limit, find the account, and (when found) store a hashed one-time code and queue it to the
    phone or email on file. Always returns a challenge, real or decoy; raises Limited."""
    config = current_app.config
    _limit(session, f"my:code:ip:{ip}", "MY_CODE_REQUESTS_PER_IP")
    account, key = find_account(session, raw)
    bucket = f"account:{account.id}" if account else f"input:{_keyed_hash('my-input', key)[:32]}"
    cooldown = config["MY_CODE_RESEND_SECONDS"]
    if cooldown > 0 and not ratelimit.cooldown(session, f"my:resend:{bucket}", seconds=cooldown):
        raise Limited(cooldown, resend=True)
    _limit(session, f"my:code:{bucket}", "MY_CODE_REQUESTS_PER_ACCOUNT")
    _limit(session, "my:code:all", "MY_CODE_REQUESTS_GLOBAL")

    handle = secrets.token_urlsafe(24)
    code = f"{secrets.randbelow(10**6):06d}"
    challenge_hash = _challenge_hash(handle)
    now = utcnow()
    ttl = config["MY_CODE_TTL_SECONDS"]
    expires_at = now + timedelta(seconds=ttl)
    _store_code(session, account=account, code=code, challenge_hash=challenge_hash, now=now, expires_at=expires_at,
                minutes=max(1, ttl // 60))
    return Challenge(handle=handle, expires_ts=expires_at.timestamp())


NO_RECIPIENT = "no_recipient"  # error_code of the outbox row for an input that reaches nobody


def _store_code(session, *, account: Account | None, code: str, challenge_hash: str, now: datetime,
                expires_at: datetime, minutes: int) -> None:
    """Store the hashed code and queue its message: the same statements for every input, so the answer takes
    as long for an unknown account (or one with nowhere to send) as for a known one. Such an input gets a
    code row that opens nothing and an outbox row that is suppressed, so nothing is sent and the message
    log says why."""
    # SMS when we have a number the subscriber has not opted out of; email otherwise.
    channel, recipient = Channel.SMS, ""
    if account is not None and account.phone and not account.sms_opt_out:
        channel, recipient = Channel.SMS, account.phone
    elif account is not None and account.email:
        channel, recipient = Channel.EMAIL, account.email
    lang = pl.language_of(account.language if account is not None else None)
    subject, body = pl.code_message(code, minutes, lang)
    reaches = bool(recipient)
    session.add(VerificationCode(account_id=account.id if reaches else None, challenge_hash=challenge_hash,
                                 code_hash=_keyed_hash("my-code", challenge_hash, code),
                                 channel=channel.value, created_at=now, expires_at=expires_at))
    outbox.enqueue(session, dedupe_key=f"verify:{challenge_hash}", channel=channel, recipient=recipient,
                   body=body if reaches else "", subject=subject if channel == Channel.EMAIL else "",
                   template="verification_code", language=lang, account_id=account.id if reaches else None,
                   urgent=True, suppressed=None if reaches else NO_RECIPIENT)


def verify_code(session, *, challenge: Challenge | None, code: str, ip: str) -> int:
    """The account id a correct, live code opens (the code is then used up); raises CodeRefused or Limited.

    Every try counts, right or wrong, so a code allows at most MY_CODE_MAX_ATTEMPTS guesses."""
    _limit(session, f"my:verify:ip:{ip}", "MY_VERIFY_PER_IP")
    if challenge is None:
        raise CodeRefused("missing")
    max_attempts = current_app.config["MY_CODE_MAX_ATTEMPTS"]
    now = utcnow()
    if challenge.expires_ts <= now.timestamp():
        raise CodeRefused("expired")
    challenge_hash = _challenge_hash(challenge.handle)
    row = session.scalar(sa.select(VerificationCode).where(VerificationCode.challenge_hash == challenge_hash))
    if row is None:  # pruned, or from before every request stored a row: the browser's count stands in
        raise CodeRefused("dead" if challenge.tries + 1 >= max_attempts else "wrong",
                          left=max_attempts - challenge.tries - 1)
    if row.expires_at <= now:
        raise CodeRefused("expired")
    # One atomic step claims an attempt, so parallel guesses cannot exceed the limit.
    claimed = session.execute(
        sa.update(VerificationCode)
        .where(VerificationCode.id == row.id, VerificationCode.used_at.is_(None),
               VerificationCode.attempts < max_attempts)
        .values(attempts=VerificationCode.attempts + 1)).rowcount
    session.refresh(row)
    if not claimed:
        raise CodeRefused("dead")
    matches = hmac.compare_digest(row.code_hash, _keyed_hash("my-code", challenge_hash, code))
    if not matches or row.account_id is None:  # a decoy row (unknown input) opens nothing, even by luck
        raise CodeRefused("dead" if row.attempts >= max_attempts else "wrong", left=max_attempts - row.attempts)
    used = session.execute(sa.update(VerificationCode)
                           .where(VerificationCode.id == row.id, VerificationCode.used_at.is_(None))
                           .values(used_at=now)).rowcount
    if not used:
        raise CodeRefused("dead")
    return row.account_id


def open_personal_link(session, *, token: str, ip: str) -> AffectedAccount | None:
    """links.open_link for the /m/<token> page, refusing an IP after too many bad tokens; raises Limited.

    Only failures count: many subscribers share one carrier NAT address, and a valid 96-bit token is no
    guess, so opening good links is never what the limit is for."""
    from accounts.links import open_link
    from core.ratelimit import exceeded, record

    bucket = f"my:link:ip:{ip}"
    limit, window = current_app.config["MY_LINK_FAILURES_PER_IP"]
    if exceeded(session, bucket, limit=limit, window_seconds=window):
        raise Limited(window)
    affected = open_link(session, token)
    if affected is None:
        record(session, bucket, window_seconds=window)
    return affected


# ---- the personal page ----------------------------------------------------------------------------

@dataclass
class CategoryView:
    label: str
    state: str
    state_label: str
    sentence: str
    counts: str
    note: str
    updated_at: datetime | None


@dataclass
class IncidentView:
    incident: Incident
    status_text: str
    state: str
    headline: str
    being_done: str
    categories: list[CategoryView] = field(default_factory=list)
    updates: list[IncidentUpdate] = field(default_factory=list)


@dataclass
class PersonalPage:
    account: Account
    lang: str
    incidents: list[IncidentView]


def personal_page(session, *, account_id: int, affected_id: int | None = None) -> PersonalPage | None:
    """Everything the personal page shows, in five indexed queries; only this account's rows are read.
    With `affected_id` (a personal link) only that one incident is shown."""
    account = session.get(Account, account_id)
    if account is None:
        return None
    lang = pl.language_of(account.language)
    q = (sa.select(AffectedAccount, Incident).join(Incident, Incident.id == AffectedAccount.incident_id)
         .where(AffectedAccount.account_id == account_id))
    if affected_id is not None:
        q = q.where(AffectedAccount.id == affected_id)
    rows = session.execute(q.order_by(Incident.started_at.desc(), Incident.id.desc())).all()
    if not rows:
        return PersonalPage(account=account, lang=lang, incidents=[])
    incident_ids = [i.id for _, i in rows]
    categories: dict[int, list[RecoveryCategory]] = {i: [] for i in incident_ids}
    for c in session.scalars(sa.select(RecoveryCategory).where(RecoveryCategory.incident_id.in_(incident_ids))
                             .order_by(RecoveryCategory.position, RecoveryCategory.id)):
        categories[c.incident_id].append(c)
    statuses = {(s.affected_account_id, s.category_id): s for s in session.scalars(
        sa.select(RecoveryStatus).where(RecoveryStatus.affected_account_id.in_([a.id for a, _ in rows])))}
    updates: dict[int, list[IncidentUpdate]] = {i: [] for i in incident_ids}
    for u in session.scalars(sa.select(IncidentUpdate).where(IncidentUpdate.incident_id.in_(incident_ids))
                             .order_by(IncidentUpdate.display_at.desc(), IncidentUpdate.id.desc())):
        if len(updates[u.incident_id]) < UPDATES_PER_INCIDENT:
            updates[u.incident_id].append(u)

    views = []
    for affected, incident in rows:
        view = IncidentView(incident=incident, status_text=pl.incident_status(incident.status.value, lang),
                            state=affected.state.value, headline=pl.headline(affected.state, lang),
                            being_done=pl.being_done(affected.state, lang), updates=updates[incident.id])
        for c in categories[incident.id]:
            s = statuses.get((affected.id, c.id))
            state = s.state if s else pl.S.UNKNOWN
            view.categories.append(CategoryView(
                label=pl.category_label(c.key, c.label, lang), state=state.value,
                state_label=pl.state_label(state, lang), sentence=pl.category_sentence(c.key, c.label, state, lang),
                counts=pl.item_counts(c.key, c.label, s.items_total if s else None,
                                      s.items_recovered if s else None, lang),
                note=s.note if s else "", updated_at=s.updated_at if s else None))
        views.append(view)
    return PersonalPage(account=account, lang=lang, incidents=views)
