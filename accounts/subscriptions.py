"""Public subscriptions: anyone can follow an outage from the status page, by email, with double opt-in.

- `request` (the /subscribe form) files a pending subscription and emails a confirmation link. The answer is
  the same whether the address is new, pending or already subscribed (an already confirmed one is emailed its
  manage link instead), so the form says nothing about who is subscribed. Rate limits per address (keyed
  hash), per IP and overall stop mail bombing without locking out a carrier's NAT (the per-IP limit is wide).
- `confirm` takes the signed link's token (valid SUBSCRIBE_CONFIRM_SECONDS): the confirmation page only shows a
  button, the POST confirms, so a mail scanner that follows links confirms nothing. Nothing else is sent to an
  unconfirmed address; unconfirmed rows are deleted by a daily task.
- Each message to a subscriber carries a manage link (signed, no expiry: change components, unsubscribe) and
  the email's List-Unsubscribe one-click header (notifications.smtp_provider).
- `enqueue_update` adds subscribers to an incident update's broadcast (accounts.audiences.notify_update): one
  INSERT ... SELECT, same outbox, priorities, quiet hours and opt-outs. The one-message-per-person rule lives in
  `personal_reaches`: an address an affected account of the incident is written to on that channel gets its
  personal message, not a second one.
Self-subscribers get incident updates only: never recovery notices or offers (those select affected accounts)."""
import hashlib
import hmac
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from accounts.contact import ContactError, normalise_email
from accounts.models import Account, AffectedAccount, Subscription, SubscriptionComponent
from core import ratelimit
from core.bulk import dialect_insert
from core.db import utcnow
from core.errors import NotFound, ValidationError
from core.i18n import N_, t
from incidents.models import Component, incident_components
from notifications import priorities, service as outbox
from notifications.models import Channel, Notification, NotificationStatus, OptOut
from ops.audit import Actor, record

CHANNEL = "email"
_CONFIRM_SALT, _MANAGE_SALT = "lifeboat-subscribe-confirm", "lifeboat-subscribe-manage"

TEXT = {
    "confirm_subject": N_("Confirm your subscription to {page}"),
    "confirm_body": N_("Someone, hopefully you, asked for updates from {page} at this address.\n\n"
                       "To confirm, open this link and press the button: {link}\n\n"
                       "If it was not you, ignore this email: nothing will be sent unless you confirm."),
    "already_subject": N_("You already get updates from {page}"),
    "already_body": N_("Someone asked for updates from {page} at this address, which already gets them.\n\n"
                       "Change what you follow or unsubscribe here: {link}"),
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
    sub = session.get(Subscription, data.get("s")) if isinstance(data, dict) else None
    # The address's digest binds the link to this subscription's address, not to a later row with its id.
    if sub is None or not hmac.compare_digest(_payload(sub)["a"], str(data.get("a", ""))):
        raise InvalidLink()
    return sub


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


def request(session, *, email: str, component_ids, language: str, ip: str) -> None:
    """File a subscription request and send its email (see the module's text); raises ValidationError for an
    address that is not one, Limited when over a rate limit. Answers the same for every valid address."""
    try:
        address = normalise_email(email or "")
    except ContactError:
        address = None
    if not address:
        raise ValidationError("Enter your email address.", {"email": "Enter an email address, like ana@example.com."})
    _limit(session, f"subscribe:ip:{ip}", "SUBSCRIBE_PER_IP")
    digest = hmac.new(current_app.config["SECRET_KEY"].encode(), address.encode(), hashlib.sha256).hexdigest()[:32]
    _limit(session, f"subscribe:address:{digest}", "SUBSCRIBE_PER_ADDRESS")
    _limit(session, "subscribe:all", "SUBSCRIBE_GLOBAL")
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
                                   "pending": by_state.get((channel, False), 0)} for channel in (CHANNEL,)},
            "components": [{"id": c.id, "name": c.name, "followers": follow_all + chosen.get(c.id, 0)}
                           for c in components],
            "follow_all": follow_all}


def search_query(*, address: str | None = None, state: str | None = None) -> sa.Select:
    q = sa.select(Subscription)
    if address:
        q = q.where(Subscription.address == address.strip().lower())
    if state == "confirmed":
        q = q.where(Subscription.confirmed_at.is_not(None))
    elif state == "pending":
        q = q.where(Subscription.confirmed_at.is_(None))
    return q


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
    """Queue the update's email to every confirmed subscriber following a component the incident affects (or
    all), in one INSERT ... SELECT into the broadcast's outbox rows; opted-out addresses and people an
    affected account already reaches are left out. Returns the messages queued."""
    s = Subscription
    priority = priorities.of("broadcast", urgent=urgent)
    start = priorities.head(session, channel=CHANNEL, priority=priority)
    dialect = session.get_bind().dialect.name
    data = (sa.func.json_build_object("sub", s.id) if dialect == "postgresql" else sa.func.json_object("sub", s.id))
    rows = (sa.select(sa.literal(f"b{broadcast_id}:{CHANNEL}:s") + sa.cast(s.id, sa.String), sa.literal(CHANNEL),
                      s.address, sa.literal(broadcast_id), sa.literal("broadcast"), s.language, data, sa.literal(""),
                      sa.literal(1), sa.literal(urgent), sa.literal(NotificationStatus.QUEUED.value), sa.literal(0),
                      sa.literal(now, Notification.next_attempt_at.type),
                      sa.literal(now, Notification.created_at.type), sa.literal(now, Notification.updated_at.type),
                      sa.literal(int(priority)), sa.literal(start - 1) + sa.func.row_number().over(order_by=s.id))
            .where(s.channel == CHANNEL, s.confirmed_at.is_not(None), _follows(incident_id),
                   ~sa.exists().where(OptOut.channel == CHANNEL, OptOut.address == s.address),
                   ~personal_reaches(incident_id, Channel.EMAIL, s.address)))
    cols = ["dedupe_key", "channel", "recipient", "broadcast_id", "template", "language", "data", "subject",
            "segments", "urgent", "status", "attempts", "next_attempt_at", "created_at", "updated_at", "priority",
            "fair_key"]
    stmt = dialect_insert(session)(Notification.__table__).from_select(cols, rows).on_conflict_do_nothing()
    return session.connection().execute(stmt.execution_options(preserve_rowcount=True)).rowcount


def message_context(session, notification, account, lang: str) -> dict:
    """Context provider (data key "sub") for notifications.templates: the subscriber's manage link."""
    sub = session.get(Subscription, (notification.data or {}).get("sub"))
    return {"manage": manage_url(sub)} if sub is not None else {}
