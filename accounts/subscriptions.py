"""Public subscriptions: anyone can follow an outage from the status page, by email or SMS, with double opt-in.

- `request` (the /subscribe form) files a pending subscription and emails a confirmation link. The answer is
  the same whether the address is new, pending or already subscribed (an already confirmed one is emailed its
  manage link instead), so the form says nothing about who is subscribed. Rate limits per address (keyed
  hash), per IP and overall stop mail bombing without locking out a carrier's NAT (the per-IP limit is wide).
- `confirm` takes the signed link's token (valid SUBSCRIBE_CONFIRM_SECONDS): the confirmation page only shows a
  button, the POST confirms, so a mail scanner that follows links confirms nothing. Nothing else is sent to an
  unconfirmed address; unconfirmed rows are deleted by a daily task.
- `request_sms` texts a six-digit code (kept as a keyed hash, SUBSCRIBE_CODE_SECONDS, SUBSCRIBE_CODE_TRIES
  guesses) and gives the page a signed token for the code form; `verify_code` confirms. A number already
  subscribed is texted that it is, and its code page behaves the same (no code opens it). Only numbers of
  SUBSCRIBE_SMS_REGIONS are texted (SMS pumping targets expensive foreign numbers).
- A STOP, a one-click unsubscribe or any other opt-out of the address ends its subscription
  (`end_for_opt_out`, called by notifications.optouts): STOP means stop, and a later START does not bring
  back a subscription.
- Operators may import subscribers (`import_rows`) who agreed elsewhere: the consent statement is required and
  kept on each row and in the audit; each new one is told once (the welcome message, with the way out);
  opted-out addresses are never imported.
- Each message to a subscriber carries a manage link (signed, no expiry: change components, unsubscribe) and
  the email's List-Unsubscribe one-click header (notifications.smtp_provider).
- `enqueue_update` adds subscribers to an incident update's broadcast (accounts.audiences.notify_update): one
  INSERT ... SELECT, same outbox, priorities, quiet hours and opt-outs. The one-message-per-person rule lives in
  `personal_reaches`: an address an affected account of the incident is written to on that channel gets its
  personal message, not a second one.
Self-subscribers get incident updates only: never recovery notices or offers (those select affected accounts)."""
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import phonenumbers
import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from accounts.contact import ContactError, normalise_email, normalise_phone
from accounts.imports.csvio import CSVFormatError, CSVRows
from accounts.selfservice import CodeRefused, say
from accounts.models import Account, AffectedAccount, Subscription, SubscriptionComponent
from core import ratelimit
from core.bulk import analyze, create_stage, drop_stage, load, run
from core.db import utcnow
from core.errors import NotFound, ValidationError
from core.i18n import N_, languages, t
from incidents.models import Component, incident_components
from notifications import optouts, priorities, service as outbox, staging
from notifications.models import Channel, MessageStage, Notification, NotificationStatus, OptOut, StagedMessage
from notifications.providers import SUPPRESSED_CODE
from ops.audit import Actor, record

CHANNEL = "email"
CHANNELS = (Channel.EMAIL, Channel.SMS)
_CONFIRM_SALT, _MANAGE_SALT = "lifeboat-subscribe-confirm", "lifeboat-subscribe-manage"
_VERIFY_SALT = "lifeboat-subscribe-verify"

TEXT = {
    "confirm_subject": N_("Confirm your subscription to {page}"),
    "confirm_body": N_("Someone, hopefully you, asked for updates from {page} at this address.\n\n"
                       "To confirm, open this link and press the button: {link}\n\n"
                       "If it was not you, ignore this email: nothing will be sent unless you confirm."),
    "already_subject": N_("You already get updates from {page}"),
    "already_body": N_("Someone asked for updates from {page} at this address, which already gets them.\n\n"
                       "Change what you follow or unsubscribe here: {link}"),
    "code_sms": N_("{name}: your code is {code}. Type it on the page to get our outage updates. "
                   "Reply STOP to stop."),
    "already_sms": N_("{name}: this number already gets our outage updates. Reply STOP to stop them."),
}


class Limited(Exception):
    """Too many subscription requests: try again after `retry_after` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = retry_after


class InvalidLink(Exception):
    """A confirmation or manage link that is not ours, or a confirmation link too old."""


# ---- links --------------------------------------------------------------------------------------------

def _payload(sub: Subscription) -> dict:
    return {"s": sub.id, "a": hashlib.sha256(sub.address.encode()).hexdigest()[:16]}


def confirm_url(sub: Subscription) -> str:
    token = URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_CONFIRM_SALT).dumps(_payload(sub))
    return f"{current_app.config['PUBLIC_BASE_URL']}/subscribe/confirm/{token}"  # subscribe_views.confirm


def manage_url(sub: Subscription) -> str:
    token = URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_MANAGE_SALT).dumps(_payload(sub))
    return f"{current_app.config['PUBLIC_BASE_URL']}/subscribe/manage/{token}"  # (the worker has no request)


def _read(session, token: str, *, confirm: bool) -> Subscription:
    key = current_app.config["SECRET_KEY"]
    try:
        if confirm:
            data = URLSafeTimedSerializer(key, salt=_CONFIRM_SALT).loads(
                token, max_age=current_app.config["SUBSCRIBE_CONFIRM_SECONDS"])
        else:
            data = URLSafeSerializer(key, salt=_MANAGE_SALT).loads(token)
    except (SignatureExpired, BadSignature):
        raise InvalidLink() from None
    return _bound(session, data)


def _bound(session, data) -> Subscription:
    sub = session.get(Subscription, data.get("s")) if isinstance(data, dict) else None
    # The address's digest binds the link to this subscription's address, not to a later row with its id.
    if sub is None or not hmac.compare_digest(_payload(sub)["a"], str(data.get("a", ""))):
        raise InvalidLink()
    return sub


def verify_token(sub: Subscription) -> str:
    """The signed token of an SMS subscription's code page (subscribe_views.verify)."""
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_VERIFY_SALT).dumps(_payload(sub))


def read_verify(session, token: str) -> Subscription:
    key = current_app.config["SECRET_KEY"]
    try:
        data = URLSafeTimedSerializer(key, salt=_VERIFY_SALT).loads(
            token, max_age=current_app.config["SUBSCRIBE_CONFIRM_SECONDS"])
    except (SignatureExpired, BadSignature):
        raise InvalidLink() from None
    return _bound(session, data)


def read_confirm(session, token: str) -> Subscription:
    return _read(session, token, confirm=True)


def read_manage(session, token: str) -> Subscription:
    return _read(session, token, confirm=False)


# ---- the requests -----------------------------------------------------------------------------------

def _limit(session, bucket: str, setting: str) -> None:
    limit, window = current_app.config[setting]
    if not ratelimit.hit(session, bucket, limit=limit, window_seconds=window):
        raise Limited(window)


def _component_ids(session, ids) -> list[int] | None:
    """The chosen components that exist (None: all of them)."""
    if ids is None:
        return None
    return list(session.scalars(sa.select(Component.id).where(Component.id.in_(list(ids))).order_by(Component.id)))


def _set_components(session, sub: Subscription, ids: list[int] | None) -> None:
    session.execute(sa.delete(SubscriptionComponent).where(SubscriptionComponent.subscription_id == sub.id))
    sub.follows_all = ids is None
    for component_id in ids or ():
        session.add(SubscriptionComponent(subscription_id=sub.id, component_id=component_id))


def check_email(raw: str) -> str:
    """The normalised address; ValidationError (field "email") when it is not one."""
    try:
        address = normalise_email(raw or "")
    except ContactError:
        address = None
    if not address:
        raise ValidationError("Enter your email address.",
                              {"email": say(N_("Enter an email address, like ana@example.com."))})
    return address


def request(session, *, email: str, component_ids, language: str, ip: str) -> None:
    """File a subscription request and send its email (see the module's text); raises ValidationError for an
    address that is not one, Limited when over a rate limit. Answers the same for every valid address."""
    address = check_email(email)
    _limits(session, address, ip)
    ids = _component_ids(session, component_ids)
    now = utcnow()
    sub = session.scalar(sa.select(Subscription).where(Subscription.channel == CHANNEL,
                                                       Subscription.address == address))
    if sub is not None and sub.confirmed_at is not None:
        _send(session, sub, "already", manage_url(sub), now)  # what it follows changes on the manage page only
        return
    if sub is None:
        sub = Subscription(channel=CHANNEL, address=address, language=language, created_at=now, updated_at=now)
        session.add(sub)
        session.flush()
    sub.language, sub.updated_at = language, now
    _set_components(session, sub, ids)
    _send(session, sub, "confirm", confirm_url(sub), now)


def _limits(session, address: str, ip: str) -> None:
    _limit(session, f"subscribe:ip:{ip}", "SUBSCRIBE_PER_IP")
    digest = hmac.new(current_app.config["SECRET_KEY"].encode(), address.encode(), hashlib.sha256).hexdigest()[:32]
    _limit(session, f"subscribe:address:{digest}", "SUBSCRIBE_PER_ADDRESS")
    _limit(session, "subscribe:all", "SUBSCRIBE_GLOBAL")


def check_phone(raw: str) -> str:
    """The E.164 form of a number we may text a code to; ValidationError (field "phone") otherwise."""
    try:
        phone = normalise_phone(raw or "", current_app.config["PHONE_DEFAULT_REGION"])
    except ContactError:
        phone = None
    if not phone:
        raise ValidationError("Enter your mobile number.",
                              {"phone": say(N_("Enter a mobile number, like +1 206 555 0100."))})
    regions = current_app.config["SUBSCRIBE_SMS_REGIONS"]
    if phonenumbers.region_code_for_number(phonenumbers.parse(phone)) not in regions:
        raise ValidationError("We cannot text this number.",
                              {"phone": say(N_("We can only text numbers from: {regions}. Choose email instead."),
                                            regions=", ".join(regions))})
    return phone


def request_sms(session, *, phone: str, component_ids, language: str, ip: str) -> str:
    """File an SMS subscription request and text its code; returns the token of the code page. The same
    for every valid number: one already subscribed is texted that it is, and no code opens its page.
    Raises ValidationError (field "phone") or Limited."""
    address = check_phone(phone)
    _limits(session, address, ip)
    _limit(session, "subscribe:sms:all", "SUBSCRIBE_SMS_GLOBAL")
    ids = _component_ids(session, component_ids)
    now = utcnow()
    sub = session.scalar(sa.select(Subscription).where(Subscription.channel == Channel.SMS.value,
                                                       Subscription.address == address))
    if sub is None:
        sub = Subscription(channel=Channel.SMS.value, address=address, language=language, created_at=now,
                           updated_at=now)
        session.add(sub)
        session.flush()
    if sub.confirmed_at is None:
        sub.language, sub.updated_at = language, now
        _set_components(session, sub, ids)
    _text_code(session, sub, now)
    return verify_token(sub)


def resend_code(session, sub: Subscription, *, ip: str) -> None:
    """"Send a new code" on the code page: the same limits and the same texts as a new request."""
    _limits(session, sub.address, ip)
    _limit(session, "subscribe:sms:all", "SUBSCRIBE_SMS_GLOBAL")
    _text_code(session, sub, utcnow())


def _code_hash(sub: Subscription, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"subscribe-code\x1f{sub.id}\x1f{sub.address}\x1f{code}".encode(), hashlib.sha256).hexdigest()


def _text_code(session, sub: Subscription, now: datetime) -> None:
    """A fresh code (or, for a number already subscribed, the "you already get them" text); either way the
    page's code now lives SUBSCRIBE_CODE_SECONDS with SUBSCRIBE_CODE_TRIES guesses."""
    name = current_app.config.get("SMS_SERVICE_NAME") or "Lifeboat"
    sub.code_expires_at = now + timedelta(seconds=current_app.config["SUBSCRIBE_CODE_SECONDS"])
    sub.code_tries = 0
    if sub.confirmed_at is not None:
        sub.code_hash = None
        body, template = t(sub.language, TEXT["already_sms"], name=name), "subscription"
    else:
        code = f"{secrets.randbelow(10**6):06d}"
        sub.code_hash = _code_hash(sub, code)
        body, template = t(sub.language, TEXT["code_sms"], name=name, code=code), "subscription_code"
    outbox.enqueue(session, dedupe_key=f"subscribe:{template}:{sub.id}:{now.timestamp():.6f}", channel=Channel.SMS,
                   recipient=sub.address, body=body, template=template, language=sub.language, urgent=True)


def verify_code(session, sub: Subscription, code: str, *, ip: str) -> None:
    """Confirm an SMS subscription with the code texted to it; raises CodeRefused (wrong, dead, expired,
    missing) or Limited. Every guess counts, right or wrong: the caller commits after a refusal too."""
    _limit(session, f"subscribe:verify:ip:{ip}", "SUBSCRIBE_PER_IP")  # guesses spread over many numbers
    now = utcnow()
    tries = current_app.config["SUBSCRIBE_CODE_TRIES"]
    if sub.code_expires_at is None:
        raise CodeRefused("missing")
    if sub.code_tries >= tries:
        raise CodeRefused("dead")
    if now >= sub.code_expires_at:
        raise CodeRefused("expired")
    sub.code_tries += 1
    code = "".join(ch for ch in (code or "") if ch.isdigit())[:12]
    if sub.code_hash is None or sub.confirmed_at is not None \
            or not hmac.compare_digest(sub.code_hash, _code_hash(sub, code)):
        raise CodeRefused("wrong", left=tries - sub.code_tries)
    sub.code_hash = sub.code_expires_at = None
    sub.code_tries = 0
    confirm(session, sub)
    _welcome(session, sa.select(Subscription.id, Subscription.channel, Subscription.address, Subscription.language)
             .where(Subscription.id == sub.id), now)


def _welcome(session, rows: sa.Select, now: datetime) -> int:
    """Queue "you now get updates" (template subscription_welcome, rendered when sent, with the manage link
    or STOP) to the subscriptions `rows` selects (id, channel, address, language): one INSERT ... SELECT per
    channel into the stage, moved into the outbox at once when few (notifications.staging)."""
    session.flush()  # Core below: the ORM's pending changes (a confirmation) first
    r = rows.subquery("w")
    priority = priorities.of("subscription_welcome")
    batch = f"{now.timestamp():.6f}"  # ids come back after a delete: a later welcome is a new message
    total = 0
    for channel in CHANNELS:
        start = priorities.head(session, channel=channel.value, priority=priority)
        select = (sa.select(sa.literal(channel.value), sa.null(), r.c.id, r.c.address, r.c.language,
                            sa.literal(start - 1) + sa.func.row_number().over(order_by=r.c.id))
                  .where(r.c.channel == channel.value))
        total += staging.stage(session, select, channel=channel.value, template="subscription_welcome",
                               priority=priority, now=now, key_prefix=f"subscribe:welcome:{batch}:{channel.value}:")
    staging.settle(session, total, MessageStage.template == "subscription_welcome", MessageStage.created_at == now)
    return total


def end_for_opt_out(session, channel: Channel, address: str, source: str, actor: Actor) -> None:
    """notifications.optouts hook: an address that opts out (STOP, one-click unsubscribe, a provider's report)
    has its status-page subscription on that channel ended, audited as whoever opted it out."""
    for sub in session.scalars(sa.select(Subscription).where(Subscription.channel == Channel(channel).value,
                                                             Subscription.address == address)):
        unsubscribe(session, sub, actor=actor)


def _send(session, sub: Subscription, kind: str, link: str, now: datetime) -> None:
    page = current_app.config["PAGE_NAME"]
    outbox.enqueue(session, dedupe_key=f"subscribe:{kind}:{sub.id}:{now.timestamp():.6f}", channel=Channel.EMAIL,
                   recipient=sub.address, subject=t(sub.language, TEXT[f"{kind}_subject"], page=page),
                   body=t(sub.language, TEXT[f"{kind}_body"], page=page, link=link), template="subscription",
                   language=sub.language, urgent=True)


def confirm(session, sub: Subscription) -> bool:
    """Confirm a pending subscription (idempotent); True if this call confirmed it. Audited as the subscriber's."""
    if sub.confirmed_at is not None:
        return False
    sub.confirmed_at = sub.updated_at = utcnow()
    record(session, actor=Actor.subscriber(f"({sub.channel})"), action="subscription.confirm",
           entity_type="subscription", entity_id=sub.id, after=_snapshot(session, sub))
    return True


def update(session, sub: Subscription, component_ids) -> None:
    """Follow all components (None) or these; audited as the subscriber's."""
    before = _snapshot(session, sub)
    _set_components(session, sub, _component_ids(session, component_ids))
    sub.updated_at = utcnow()
    session.flush()
    record(session, actor=Actor.subscriber(f"({sub.channel})"), action="subscription.update",
           entity_type="subscription", entity_id=sub.id, before=before, after=_snapshot(session, sub))


def unsubscribe(session, sub: Subscription, *, actor: Actor | None = None) -> None:
    """Delete the subscription (the subscriber's own act, or an operator's `actor`); audited."""
    before = _snapshot(session, sub)
    record(session, actor=actor or Actor.subscriber(f"({sub.channel})"), action="subscription.delete",
           entity_type="subscription", entity_id=sub.id, before=before)
    # What is still queued for the subscription goes no further (account-less updates and welcomes to the
    # address are the subscription's own: an affected account's messages carry its account_id). Its staged
    # updates are moved into the outbox first, and stopped there with the rest.
    staging.move_matching(session, sa.and_(StagedMessage.account_id.is_(None), StagedMessage.ref == sub.id))
    session.execute(sa.update(Notification).where(
        Notification.channel == sub.channel, Notification.recipient == sub.address,
        Notification.account_id.is_(None), Notification.status == NotificationStatus.QUEUED,
        Notification.template.in_(("broadcast", "subscription_welcome"))).values(
            status=NotificationStatus.SUPPRESSED, error_code=SUPPRESSED_CODE, error_message="Unsubscribed",
            updated_at=utcnow()).execution_options(synchronize_session=False))
    session.delete(sub)


def _snapshot(session, sub: Subscription) -> dict:
    ids = session.scalars(sa.select(SubscriptionComponent.component_id)
                          .where(SubscriptionComponent.subscription_id == sub.id)
                          .order_by(SubscriptionComponent.component_id)).all()
    return {"channel": sub.channel, "address": sub.address, "follows": "all" if sub.follows_all else list(ids),
            "confirmed": sub.confirmed_at is not None}


def followed_ids(session, sub: Subscription) -> set[int]:
    return set(session.scalars(sa.select(SubscriptionComponent.component_id)
                               .where(SubscriptionComponent.subscription_id == sub.id)))


def prune_pending(session, now: datetime) -> str:
    """The periodic task: delete subscriptions never confirmed within SUBSCRIBE_CONFIRM_SECONDS."""
    cutoff = now - timedelta(seconds=current_app.config["SUBSCRIBE_CONFIRM_SECONDS"])
    n = session.execute(sa.delete(Subscription).where(Subscription.confirmed_at.is_(None),
                                                      Subscription.created_at < cutoff)).rowcount
    return f"{n} unconfirmed subscriptions deleted"


# ---- operators: counts, search, removal ---------------------------------------------------------------

def counts(session) -> dict:
    """Subscriptions by channel and state, and confirmed followers per component (followers of all count for
    every component)."""
    by_state = {(channel, confirmed): n for channel, confirmed, n in session.execute(
        sa.select(Subscription.channel, Subscription.confirmed_at.is_not(None), sa.func.count())
        .group_by(Subscription.channel, Subscription.confirmed_at.is_not(None)))}
    confirmed = Subscription.confirmed_at.is_not(None)
    follow_all = session.scalar(sa.select(sa.func.count()).select_from(Subscription)
                                .where(confirmed, Subscription.follows_all.is_(True))) or 0
    chosen = dict(session.execute(
        sa.select(SubscriptionComponent.component_id, sa.func.count())
        .join(Subscription, Subscription.id == SubscriptionComponent.subscription_id)
        .where(confirmed, Subscription.follows_all.is_(False)).group_by(SubscriptionComponent.component_id)).all())
    components = session.execute(sa.select(Component.id, Component.name).order_by(Component.position,
                                                                                  Component.id)).all()
    return {"channels": {channel: {"confirmed": by_state.get((channel, True), 0),
                                   "pending": by_state.get((channel, False), 0)} for channel in
                         (c.value for c in CHANNELS)},
            "components": [{"id": c.id, "name": c.name, "followers": follow_all + chosen.get(c.id, 0)}
                           for c in components],
            "follow_all": follow_all}


def search_query(*, address: str | None = None, state: str | None = None) -> sa.Select:
    q = sa.select(Subscription)
    if address:
        q = q.where(Subscription.address.in_(_search_forms(address)))
    if state == "confirmed":
        q = q.where(Subscription.confirmed_at.is_not(None))
    elif state == "pending":
        q = q.where(Subscription.confirmed_at.is_(None))
    return q


def _search_forms(text: str) -> list[str]:
    """An operator's search as stored: an email lower-cased, a phone number in E.164 whatever its format."""
    text = text.strip()
    forms = [text.lower()]
    if "@" not in text:
        try:
            if phone := normalise_phone(text, current_app.config["PHONE_DEFAULT_REGION"]):
                forms.append(phone)
        except ContactError:
            pass
    return forms


def remove(session, *, actor: Actor, subscription_id: int) -> Subscription:
    """An operator removes a subscription (audited); NotFound if there is none with this id."""
    sub = session.get(Subscription, subscription_id)
    if sub is None:
        raise NotFound(f"No subscription with id {subscription_id}.")
    unsubscribe(session, sub, actor=actor)
    return sub


# ---- who an update reaches ----------------------------------------------------------------------------

def _follows(incident_id: int):
    s = Subscription
    return sa.or_(s.follows_all.is_(True), sa.exists().where(
        SubscriptionComponent.subscription_id == s.id,
        SubscriptionComponent.component_id == incident_components.c.component_id,
        incident_components.c.incident_id == incident_id))


def personal_reaches(incident_id: int, channel: Channel, address):
    """The one-message-per-person rule: True where an affected account of the incident is written to at
    `address` on `channel` (the conditions of notifications.broadcasts.insert_for), so its personal message
    is the one that person gets.

    Nested, accounts outside: the address finds its accounts along ix_accounts_email / ix_accounts_phone, and
    each is then looked up in the incident's list. As one flat EXISTS over both tables, SQLite (no statistics)
    walked the incident's whole list for every subscriber: 8 s for 4,000 subscribers of a 20,000-account
    incident, hours at 1,000,000 (bench/enqueue_update.py)."""
    contact, flag = (Account.email, Account.email_opt_out) if channel is Channel.EMAIL else \
        (Account.phone, Account.sms_opt_out)
    affected = sa.exists().where(AffectedAccount.account_id == Account.id, AffectedAccount.incident_id == incident_id)
    return sa.exists().where(contact == address, flag.is_(False), affected)


def audience(session, incident) -> int:
    """Counter for incidents.events.on_audience: confirmed subscribers an update of `incident` would reach."""
    if incident is None or getattr(incident.kind, "value", incident.kind) != "incident":
        return 0
    return session.scalar(sa.select(sa.func.count()).select_from(Subscription).where(
        Subscription.confirmed_at.is_not(None), _follows(incident.id))) or 0


def enqueue_update(session, *, broadcast_id: int, incident_id: int, urgent: bool, now: datetime) -> int:
    """Queue the update to every confirmed subscriber following a component the incident affects (or all),
    by email and SMS, in one INSERT ... SELECT per channel into the broadcast's staged rows; opted-out
    addresses and people an affected account already reaches are left out. Returns the messages queued."""
    return sum(_enqueue_channel(session, channel, broadcast_id=broadcast_id, incident_id=incident_id,
                                urgent=urgent, now=now) for channel in CHANNELS)


def _enqueue_channel(session, channel: Channel, *, broadcast_id: int, incident_id: int, urgent: bool,
                     now: datetime) -> int:
    s = Subscription
    priority = priorities.of("broadcast", urgent=urgent)
    start = priorities.head(session, channel=channel.value, priority=priority)
    # Staged with the broadcast's account rows (notifications.staging): no account, the subscription as ref
    # (its dedupe key: the broadcast's prefix, "s", the subscription's id).
    rows = (sa.select(sa.literal(channel.value), sa.null(), s.id, s.address, s.language,
                      sa.literal(start - 1) + sa.func.row_number().over(order_by=s.id))
            .where(s.channel == channel.value, s.confirmed_at.is_not(None), _follows(incident_id),
                   ~sa.exists().where(OptOut.channel == channel.value, OptOut.address == s.address),
                   ~personal_reaches(incident_id, channel, s.address)))
    return staging.stage(session, rows, channel=channel.value, template="broadcast", priority=priority, now=now,
                         key_prefix=f"b{broadcast_id}:{channel.value}:", urgent=urgent, broadcast_id=broadcast_id)


def message_context(session, notification, account, lang: str) -> dict:
    """Context provider (data key "sub") for notifications.templates: the subscriber's manage link."""
    sub = session.get(Subscription, (notification.data or {}).get("sub"))
    names = {"page": current_app.config["PAGE_NAME"], "service": current_app.config.get("SMS_SERVICE_NAME") or
             "Lifeboat"}
    return {**names, "manage": manage_url(sub)} if sub is not None else names


# ---- operators: import -----------------------------------------------------------------------------------
# A CSV of people who agreed elsewhere to get updates (a sign-up sheet, a CRM's opt-in field). Columns:
# address (required), channel ("email" or "sms"; blank: guessed from the address), components (blank: all;
# else names or ids separated by ";"), language (blank: English). An export of the subscriptions dataset
# imports as it is: its other columns are read and ignored.
IMPORT_COLUMNS = ("channel", "components", "language")
EXPORT_COLUMNS = ("id", "follows_all", "confirmed_at", "created_at", "updated_at", "source", "consent")
CONSENT_MIN = 10


@dataclass
class ImportResult:
    added: int = 0  # new subscriptions, confirmed, each told once (welcome message)
    confirmed: int = 0  # pending ones (asked on the page, never confirmed) confirmed by the import
    unchanged: int = 0  # already subscribed: left as they are
    opted_out: int = 0  # opted out of the channel (STOP, unsubscribe, erased): never imported
    errors: list[dict] = field(default_factory=list)  # the first 1,000 {"line", "column", "reason"}
    error_count: int = 0  # any error: nothing applied

    def as_dict(self) -> dict:
        return {"added": self.added, "confirmed": self.confirmed, "unchanged": self.unchanged,
                "opted_out": self.opted_out, "error_count": self.error_count, "errors": self.errors}


def _component_lookup(session) -> dict[str, int]:
    out = {}
    for cid, name in session.execute(sa.select(Component.id, Component.name)):
        out[str(cid)] = cid
        out.setdefault(name.strip().lower(), cid)
    return out


_STAGE = sa.table("stage_subscribers", sa.column("channel"), sa.column("address"), sa.column("state"))
_LINKS = sa.table("stage_subscriber_links")


def _apply_import(session, rows: dict, *, consent: str, now: datetime) -> dict[str, int]:
    """Apply checked import rows set-based, through two connection-private stage tables (rows in one COPY or
    executemany, then a handful of statements whatever the count): each row's state is decided in SQL
    (opted, confirmed, pending or new), pending ones are confirmed, new ones inserted, components linked.
    Returns the count per state; the stage stays for the caller's welcome messages."""
    conn = session.connection()
    create_stage(conn, _STAGE.name, "channel VARCHAR(8), address VARCHAR(254), language VARCHAR(16), "
                                    "follows_all BOOLEAN, state VARCHAR(12)")
    create_stage(conn, _LINKS.name, "channel VARCHAR(8), address VARCHAR(254), component_id INTEGER")
    # An erased person's opt-out is a keyed hash: look for those only when there are any (then one HMAC a row).
    erased = {c: set(session.scalars(sa.select(OptOut.address).where(
        OptOut.channel == c, OptOut.address.startswith(optouts.ERASED_PREFIX)))) for c in ("email", "sms")}
    key = current_app.config["SECRET_KEY"].encode()

    def state_of(channel: str, address: str) -> str | None:
        hashes = erased[channel]
        return "opted" if hashes and optouts.erased_hash(key, channel, address) in hashes else None

    load(conn, _STAGE.name, ("channel", "address", "language", "follows_all", "state"),
         ((c, a, lang, ids is None, state_of(c, a)) for (c, a), (_line, ids, lang) in rows.items()))
    load(conn, _LINKS.name, ("channel", "address", "component_id"),
         ((c, a, cid) for (c, a), (_line, ids, _lang) in rows.items() for cid in ids or ()))
    conn.exec_driver_sql(f"CREATE INDEX ix_{_STAGE.name} ON {_STAGE.name} (address, channel)")
    analyze(conn, _STAGE.name)
    p = {"now": now.replace(tzinfo=None), "consent": consent}
    same = "x.channel = s.channel AND x.address = s.address"
    staged = f"FROM {_STAGE.name} s WHERE s.channel = subscriptions.channel AND s.address = subscriptions.address"
    run(conn, f"""
        UPDATE {_STAGE.name} SET state = CASE
            WHEN EXISTS (SELECT 1 FROM opt_outs o WHERE o.channel = {_STAGE.name}.channel
                                                   AND o.address = {_STAGE.name}.address) THEN 'opted'
            WHEN EXISTS (SELECT 1 FROM subscriptions x WHERE x.channel = {_STAGE.name}.channel
                         AND x.address = {_STAGE.name}.address AND x.confirmed_at IS NOT NULL) THEN 'confirmed'
            WHEN EXISTS (SELECT 1 FROM subscriptions x WHERE x.channel = {_STAGE.name}.channel
                         AND x.address = {_STAGE.name}.address) THEN 'pending'
            ELSE 'new' END
        WHERE state IS NULL""")
    run(conn, f"""
        DELETE FROM subscription_components WHERE subscription_id IN (
            SELECT x.id FROM subscriptions x JOIN {_STAGE.name} s ON {same} WHERE s.state = 'pending')""")
    run(conn, f"""
        UPDATE subscriptions SET confirmed_at = :now, updated_at = :now, source = 'import', consent = :consent,
            code_hash = NULL, code_expires_at = NULL, code_tries = 0,
            language = (SELECT s.language {staged}), follows_all = (SELECT s.follows_all {staged})
        WHERE confirmed_at IS NULL AND EXISTS (SELECT 1 {staged} AND s.state = 'pending')""", **p)
    run(conn, f"""
        INSERT INTO subscriptions (channel, address, language, follows_all, confirmed_at, created_at, updated_at,
                                   source, consent, code_tries)
        SELECT s.channel, s.address, s.language, s.follows_all, :now, :now, :now, 'import', :consent, 0
        FROM {_STAGE.name} s WHERE s.state = 'new'""", **p)
    run(conn, f"""
        INSERT INTO subscription_components (subscription_id, component_id)
        SELECT x.id, l.component_id
        FROM {_LINKS.name} l JOIN {_STAGE.name} s ON s.channel = l.channel AND s.address = l.address
        JOIN subscriptions x ON {same}
        WHERE s.state IN ('new', 'pending')""")
    return dict(conn.exec_driver_sql(f"SELECT state, COUNT(*) FROM {_STAGE.name} GROUP BY state").all())


def import_rows(session, stream, *, actor: Actor, consent: str, filename: str = "") -> ImportResult:
    """Import subscribers from a CSV (binary stream), all or nothing: any bad row and nothing is applied,
    with every error by line and column. `consent` says how these people agreed (required, kept on each new
    row and in the audit). Opted-out addresses are skipped, existing subscriptions left as they are."""
    consent = " ".join((consent or "").split())
    if len(consent) < CONSENT_MIN or len(consent) > 300:
        raise ValidationError("Say how these people agreed to get updates.", {
            "consent": f"Between {CONSENT_MIN} and 300 characters, e.g. \"Opted in on the 2026 sign-up form\"."})
    try:
        reader = CSVRows(stream, ("address",), IMPORT_COLUMNS + EXPORT_COLUMNS)
    except CSVFormatError as e:
        raise ValidationError(str(e), {"file": str(e)}) from None
    result = ImportResult()
    components = _component_lookup(session)
    langs = set(languages())
    region = current_app.config["PHONE_DEFAULT_REGION"]
    rows: dict[tuple[str, str], tuple] = {}  # (channel, address) -> (line, component ids or None, language)

    def error(line, column, reason):
        if len(result.errors) < 1000:
            result.errors.append({"line": line, "column": column, "reason": reason})
        result.error_count += 1

    try:
        for line, _values, row, problem in reader:
            if row is None:
                error(line, "", problem)
                continue
            raw, channel = row["address"], (row.get("channel") or "").lower()
            if channel not in ("", "email", "sms"):
                error(line, "channel", "Use email or sms (or leave it blank).")
                continue
            channel = channel or ("email" if "@" in raw else "sms")
            try:
                address = normalise_email(raw) if channel == "email" else normalise_phone(raw, region)
            except ContactError:
                address = None
            if not address:
                error(line, "address", "Not a valid email address." if channel == "email" else
                      "Not a valid phone number (use E.164, like +12065550100).")
                continue
            ids, bad = [], None
            text = row.get("components") or ""
            for token in (p.strip() for p in text.replace(",", ";").split(";")):
                if not token:
                    continue
                cid = components.get(token.lower())
                if cid is None:
                    bad = token
                    break
                ids.append(cid)
            if bad is not None:
                error(line, "components", f"No component {bad!r}. Use names or ids separated by ';', "
                                          "or leave it blank for all.")
                continue
            lang = (row.get("language") or "en").lower()
            if lang not in langs:
                error(line, "language", f"Use one of: {', '.join(sorted(langs))}.")
                continue
            if (channel, address) in rows:
                error(line, "address", f"Also on line {rows[(channel, address)][0]}.")
                continue
            rows[(channel, address)] = (line, sorted(set(ids)) or None, lang)
    except CSVFormatError as e:
        raise ValidationError(str(e), {"file": str(e)}) from None
    if result.errors:
        return result
    if not rows:
        raise ValidationError("The file has no rows.", {"file": "The file has a header but no rows."})

    now = utcnow()
    counts = _apply_import(session, rows, consent=consent, now=now)
    result.added, result.confirmed = counts.get("new", 0), counts.get("pending", 0)
    result.unchanged, result.opted_out = counts.get("confirmed", 0), counts.get("opted", 0)
    welcomed = _welcome(session, sa.select(Subscription.id, Subscription.channel, Subscription.address,
                                           Subscription.language)
                        .join(_STAGE, sa.and_(_STAGE.c.channel == Subscription.channel,
                                              _STAGE.c.address == Subscription.address))
                        .where(_STAGE.c.state.in_(("new", "pending"))), now)
    drop_stage(session.connection(), _STAGE.name)
    drop_stage(session.connection(), _LINKS.name)
    record(session, actor=actor, action="subscription.import", entity_type="subscription", entity_id=None,
           label=filename or "CSV", after={**{k: v for k, v in result.as_dict().items()
                                              if k not in ("errors", "error_count")},
                                           "consent": consent, "welcome_messages": welcomed})
    return result
