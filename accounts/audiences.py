"""Who hears about an incident: the SQL selects of recipients (accounts know incidents; the notifier does
not), and the hooks that queue automated messages in the same transaction as the change causing them.

An audience is "all" (every account attached to the incident) or {"states": [...], "categories": [...]}:
- states only: accounts whose overall state is one of them;
- categories only: accounts with a status row in one of those categories;
- both: accounts where one of those categories is in one of those states ("photos lost").
Automated messages: an incident update posted with notify queues a broadcast of kind "update" to all
affected accounts; resolving with notify queues the final notice (kind "resolution"); without notify,
nothing is sent. A recovery state change queues one personal "recovery" message per account and channel."""
import sqlalchemy as sa
from sqlalchemy.orm import Session

from accounts import subscriptions
from accounts.models import AffectedAccount, RecoveryCategory, RecoveryState, RecoveryStatus
from core.bulk import analyze, create_stage, drop_stage
from core.errors import ValidationError
from core.markdown import plain
from incidents.models import Incident, IncidentKind, IncidentStatus
from incidents.service import get_incident
from notifications import broadcasts, staging
from notifications.models import BroadcastKind, Channel, MessageStage, Notification, NotificationStatus, cause
from ops.audit import Actor

RECOVERY_DELAY_SECONDS = 120  # quick successive edits coalesce into the still-queued message


def check_audience(session, incident_id: int, audience) -> dict | str:
    """The audience cleaned ("all" or {"states", "categories"}); ValidationError with field "audience"."""
    if audience in (None, "all"):
        return "all"
    problem = None
    if not isinstance(audience, dict) or set(audience) - {"states", "categories"}:
        problem = 'Use "all" or an object with "states" and/or "categories".'
    else:
        states = audience.get("states") or []
        categories = audience.get("categories") or []
        known = set(session.scalars(sa.select(RecoveryCategory.key)
                                    .where(RecoveryCategory.incident_id == incident_id)))
        if not isinstance(states, list) or any(s not in set(RecoveryState) for s in states):
            problem = f"states: choose from {', '.join(s.value for s in RecoveryState)}."
        elif not isinstance(categories, list) or any(c not in known for c in categories):
            problem = f"categories: choose from {', '.join(sorted(known)) or '(this incident has none)'}."
        elif not states and not categories:
            problem = 'Name states or categories, or use "all".'
    if problem:
        raise ValidationError("Please correct the highlighted fields.", {"audience": problem})
    return {"states": list(states), "categories": list(categories)}


def recipients(incident_id: int, audience) -> sa.Select:
    """SELECT aa_id, account_id of the accounts of an incident in an (already checked) audience."""
    q = sa.select(AffectedAccount.id.label("aa_id"), AffectedAccount.account_id.label("account_id")) \
        .where(AffectedAccount.incident_id == incident_id)
    if audience == "all":
        return q
    states, categories = audience.get("states") or [], audience.get("categories") or []
    if categories:
        match = sa.select(RecoveryStatus.id).join(RecoveryCategory, RecoveryCategory.id == RecoveryStatus.category_id) \
            .where(RecoveryStatus.affected_account_id == AffectedAccount.id, RecoveryCategory.key.in_(categories))
        if states:
            match = match.where(RecoveryStatus.state.in_(states))
        return q.where(sa.exists(match))
    return q.where(AffectedAccount.state.in_(states))


def _incident(session, incident_id: int) -> Incident:
    return get_incident(session, incident_id=incident_id, kind=IncidentKind.INCIDENT)


def broadcast_to_incident(session, *, actor: Actor, incident_id: int, data: dict,
                          kind: BroadcastKind = BroadcastKind.BROADCAST):
    """Validate and queue an operator's broadcast to an incident's audience; returns the Broadcast."""
    incident = _incident(session, incident_id)
    errors: dict = {}
    clean = audience = None
    try:
        clean = broadcasts.check_request(data)
    except ValidationError as e:
        errors.update(e.fields)
    try:
        audience = check_audience(session, incident.id, data.get("audience", "all"))
    except ValidationError as e:
        errors.update(e.fields)
    if errors:
        raise ValidationError("Please correct the highlighted fields.", errors)
    clean["subject"] = clean["subject"] or incident.name
    return broadcasts.create(session, actor=actor, cause=cause("incident", incident.id), kind=kind, clean=clean,
                             audience=audience, recipients=recipients(incident.id, audience))


def notify_update(session, *, actor: Actor, update) -> int:
    """Subscriber of incidents.events.update_posted: an update posted with notify queues an "update"
    broadcast (a resolving one the final "resolution" notice) to every affected account, in the caller's
    transaction; returns the messages queued."""
    incident = update.incident
    if not update.notify or incident.kind != IncidentKind.INCIDENT:
        return 0
    kind = BroadcastKind.RESOLUTION if update.status == IncidentStatus.RESOLVED else BroadcastKind.UPDATE
    clean = {"message": plain(update.body)[:broadcasts.MESSAGE_MAX], "subject": incident.name,
             "channels": [c.value for c in Channel], "urgent": bool(update.urgent)}
    broadcast = broadcasts.create(session, actor=actor, cause=cause("incident", incident.id), kind=kind,
                                  clean=clean, audience="all", recipients=recipients(incident.id, "all"), settle=False)
    # People who subscribed on the status page, in the same broadcast; whoever an affected account already
    # reaches is left out there (accounts.subscriptions.personal_reaches: one message per person).
    broadcast.recipients += subscriptions.enqueue_update(session, broadcast_id=broadcast.id, incident_id=incident.id,
                                                         urgent=clean["urgent"], now=broadcast.created_at)
    staging.settle(session, broadcast.recipients, MessageStage.broadcast_id == broadcast.id)
    return broadcast.recipients


def audience_size(session, incident) -> int:
    """Counter for incidents.events.on_audience: the accounts attached to an incident (none for maintenance
    or an incident being filed)."""
    if incident is None or incident.kind != IncidentKind.INCIDENT:
        return 0
    return session.scalar(sa.select(sa.func.count()).select_from(AffectedAccount)
                          .where(AffectedAccount.incident_id == incident.id)) or 0


def enqueue_recovery(conn, *, stage: str, now) -> int:
    """Hook for accounts.recovery.apply_stage: one personal "recovery" message per channel to each account
    whose category state is changing in this apply (call it before the statuses are written).

    Coalescing: all categories of one apply give one row per account and channel (the key carries the
    apply's time); an account that still has a queued recovery message gets no new one, because that
    message is rendered from the current state when it is sent (sent 2 minutes later at the earliest)."""
    s = sa.table(stage, sa.column("aa_id"), sa.column("category_id"), sa.column("state"), sa.column("changed"))
    state_changes = sa.select(s.c.aa_id).where(s.c.changed == 1, ~sa.exists().where(
        RecoveryStatus.affected_account_id == s.c.aa_id, RecoveryStatus.category_id == s.c.category_id,
        RecoveryStatus.state == s.c.state))
    # Who, written down once for both channels: a million staged rows are read once, not once per channel.
    notice = f"{stage}_notice"
    create_stage(conn, notice, "aa_id INTEGER, account_id INTEGER")
    conn.execute(sa.insert(sa.table(notice, sa.column("aa_id"), sa.column("account_id"))).from_select(
        ["aa_id", "account_id"], sa.select(AffectedAccount.id, AffectedAccount.account_id)
        .where(AffectedAccount.id.in_(state_changes))))
    analyze(conn, notice)
    who = sa.select(sa.table(notice, sa.column("aa_id"), sa.column("account_id")))
    window = now.strftime("%Y%m%dT%H%M%S.%f")  # this apply: a later change is a new message
    with Session(bind=conn) as session:
        # The check for a still-queued notice reads the outbox: an earlier import's notices not yet moved there
        # (notifications.staging) go in first.
        staging.move_all(session, MessageStage.template == "recovery")
        total = 0
        for channel in Channel:
            prefix = lambda r, c=channel.value: sa.literal("r") + sa.cast(r.c.aa_id, sa.String) + sa.literal(f":{c}:")  # noqa: E731
            # Staged, keyed r<affected account>:<channel>:<window>, as insert_for would write them straight in.
            total += broadcasts.stage_for(
                session, who, channel=channel, template="recovery", now=now, delay_seconds=RECOVERY_DELAY_SECONDS,
                key_prefix="r", key_suffix=f":{channel.value}:{window}", key_by="ref",
                extra_where=_not_already_queued(channel, prefix))
        staging.settle(session, total, MessageStage.template == "recovery")
        session.flush()
    drop_stage(conn, notice)
    return total


def _not_already_queued(channel: Channel, prefix):
    """Extra WHERE for insert_for: no queued recovery message for this account and channel yet."""
    def build(r):
        return ~sa.exists().where(
            Notification.account_id == r.c.account_id, Notification.template == "recovery",
            Notification.channel == channel.value, Notification.status == NotificationStatus.QUEUED,
            Notification.dedupe_key.like(prefix(r) + sa.literal("%")))
    return build

