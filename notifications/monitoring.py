"""The queue in view: what the outbox holds per channel and priority class, how fast it is sent, which workers
are alive and what they did. Read for the console's home panel and for /metrics, both registered with ops
from `init_app`.

Every figure is one set-based statement read along an index, never a row-by-row walk in Python:
- the queue: the queued and in-flight rows counted per channel and class, read from ix_notifications_ready
  alone (channel, status, priority, fair_key, next_attempt_at: every column it needs), so its cost is the
  number of such rows, and rows already sent are never read;
- sent in the last minute: a range at the end of ix_notifications_sent (sent_at, channel);
- sends by outcome and provider latency: the sum of the `notifier_workers` rows (one per worker process,
  written by notifications.telemetry), a few rows."""
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from core.db import utcnow
from notifications import staging, telemetry
from notifications.models import Channel, Notification, NotificationStatus, NotifierWorker
from notifications.priorities import LABELS, Priority
from ops import monitoring as ops_monitoring

RATE_WINDOW = timedelta(minutes=1)


@dataclass
class QueueCell:
    """Messages of one channel and class: queued and due now, queued and held for later (quiet hours, a
    retry's backoff), being sent (leased by a worker), and when the longest-waiting due one became due."""

    due: int = 0
    held: int = 0
    sending: int = 0
    oldest_due: datetime | None = None

    @property
    def queued(self) -> int:
        return self.due + self.held


def queue(session, *, now: datetime) -> dict[tuple[str, int], QueueCell]:
    """(channel, class) -> QueueCell, for every channel and class (empty ones too)."""
    n, queued, sending = Notification, NotificationStatus.QUEUED, NotificationStatus.SENDING
    figures = (sa.func.count().label("total"), sa.func.count(sa.case((n.next_attempt_at <= now, 1))).label("due"),
               # The earliest of all: when it is due, it is the longest-waiting due one; else none is due.
               sa.func.min(n.next_attempt_at).label("first"))
    if session.get_bind().dialect.name == "sqlite":
        # SQLite counts ten index ranges (one per channel and class) about three times faster than it groups
        # the same index entries (1,000,000 queued rows: bench/metrics_queries.py); PostgreSQL is the other
        # way round (each range would be a scan of its own).
        statement = sa.union_all(*[
            sa.select(sa.literal(c.value).label("channel"), sa.literal(queued.value).label("status"),
                      sa.literal(int(p)).label("priority"), *figures)
            .where(n.channel == c, n.status == queued, n.priority == int(p)) for c in Channel for p in Priority],
            sa.select(n.channel, n.status, n.priority, *figures)
            .where(n.channel.in_(list(Channel)), n.status == sending).group_by(n.channel, n.status, n.priority))
    else:
        # Both lists spelled out, so the scan stays inside ix_notifications_ready (channel leads it).
        statement = (sa.select(n.channel, n.status, n.priority, *figures)
                     .where(n.channel.in_(list(Channel)), n.status.in_([queued, sending]))
                     .group_by(n.channel, n.status, n.priority))
    rows = session.execute(statement).all()
    cells = {(c.value, int(p)): QueueCell() for c in Channel for p in Priority}
    for channel, status, priority, total, due, first in rows:
        cell = cells.setdefault((Channel(channel).value, int(priority)), QueueCell())
        if NotificationStatus(status) == sending:
            cell.sending += total
        elif total:
            cell.due, cell.held = due, total - due
            cell.oldest_due = first if due else None
    # A large send's messages not yet moved into the outbox (notifications.staging) are queued too.
    for (channel, priority), (n, held, first) in staging.waiting(session, now=now).items():
        cell = cells.setdefault((Channel(channel).value, priority), QueueCell())
        cell.due, cell.held = cell.due + n, cell.held + held
        if n and (cell.oldest_due is None or first < cell.oldest_due):
            cell.oldest_due = first
    return cells


def sent_since(session, *, since: datetime) -> dict[str, int]:
    """Messages handed to a provider since `since`, per channel (every channel listed)."""
    n = Notification
    # One count per channel over one range, no GROUP BY: the range on sent_at is then the only way in, so both
    # engines read the short end of ix_notifications_sent (grouping by channel made SQLite walk the whole
    # outbox along ix_notifications_ready, which is in channel order).
    row = session.execute(sa.select(*[sa.func.count(sa.case((n.channel == c, 1))) for c in Channel])
                          .where(n.sent_at >= since)).one()
    return {c.value: int(count) for c, count in zip(Channel, row)}


def workers(session, *, now: datetime, alive_seconds: float) -> list[NotifierWorker]:
    """Worker processes that wrote their row within `alive_seconds` and have not stopped, oldest first."""
    return list(session.scalars(
        sa.select(NotifierWorker).where(NotifierWorker.seen_at >= now - timedelta(seconds=alive_seconds),
                                        NotifierWorker.stopped_at.is_(None))
        .order_by(NotifierWorker.started_at)))


def totals(session) -> dict:
    """Every worker's counters (notifications.telemetry) added up, retired workers included."""
    total: dict = {}
    for counters in session.scalars(sa.select(NotifierWorker.counters)):
        total = telemetry.add(total, counters or {})
    return total


def _alive_seconds() -> float:
    return float(current_app.config.get("NOTIFIER_ALIVE_SECONDS", 30))


def class_name(priority: int) -> str:
    """The class as a metric label: code, urgent, update, recovery, offer (a class this code does not name, e.g.
    written by a newer version, keeps its number)."""
    try:
        return Priority(priority).name.lower()
    except ValueError:
        return str(priority)


# ---- /metrics -------------------------------------------------------------------------------------

def collect(session):
    """The notifier's metric families (prometheus_client), read now."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    now = utcnow()
    cells = queue(session, now=now)
    depth = GaugeMetricFamily(
        "lifeboat_notifier_queue_messages",
        "Messages in the outbox not yet handed to a provider, by channel, priority class and state "
        "(due: waiting to be sent now; held: waiting for a later time, such as quiet hours or a retry; "
        "sending: claimed by a worker).", labels=["channel", "class", "state"])
    oldest = GaugeMetricFamily(
        "lifeboat_notifier_oldest_due_seconds",
        "How long the longest-waiting due message of a channel and class has been due (0 when none is).",
        labels=["channel", "class"])
    for (channel, priority), cell in sorted(cells.items()):
        cls = class_name(priority)
        for state in ("due", "held", "sending"):
            depth.add_metric([channel, cls, state], getattr(cell, state))
        age = (now - cell.oldest_due).total_seconds() if cell.oldest_due else 0.0
        oldest.add_metric([channel, cls], max(0.0, age))
    yield depth
    yield oldest

    total = totals(session)
    sends = CounterMetricFamily(
        "lifeboat_notifier_sends",
        "Send attempts by channel, outcome (sent, failed, ambiguous, suppressed, retry, requeued, lost, held) and "
        "provider error code, summed over every notifier worker.", labels=["channel", "outcome", "error_code"])
    seen = set()
    for k, v in sorted(total.items()):
        kind, *parts = k.split(telemetry.SEP)
        if kind == "sends" and len(parts) == 3:
            sends.add_metric(parts, v)
            seen.add(tuple(parts))
    for channel in Channel:  # present from the start, so rate() has a first point
        if (channel.value, "sent", "") not in seen:
            sends.add_metric([channel.value, "sent", ""], 0)
    yield sends

    latency = HistogramMetricFamily(
        "lifeboat_notifier_provider_latency_seconds",
        "Time from a request leaving for the provider to its answer, by channel.", labels=["channel"])
    for channel in Channel:
        running, buckets = 0, []
        for bound in [*map(str, telemetry.BUCKETS), telemetry.INF]:
            running += total.get(telemetry.key("latency", channel.value, bound), 0)
            buckets.append((bound, running))
        latency.add_metric([channel.value], buckets,
                           sum_value=total.get(telemetry.key("latency_sum", channel.value), 0.0))
    yield latency

    alive = GaugeMetricFamily("lifeboat_notifier_workers_alive",
                              "Notifier worker processes that reported within NOTIFIER_ALIVE_SECONDS.")
    alive.add_metric([], len(workers(session, now=now, alive_seconds=_alive_seconds())))
    yield alive


# ---- the console's home panel --------------------------------------------------------------------

def panel(session) -> dict:
    """The figures of the /ops home panel."""
    now = utcnow()
    cells = queue(session, now=now)
    channels = [c.value for c in Channel]
    rows = [(LABELS[p], [cells[(c, int(p))] for c in channels]) for p in Priority]
    by_channel = {}
    for (channel, _), cell in cells.items():  # every class, also one this code does not name
        total = by_channel.setdefault(channel, QueueCell())
        total.due, total.held, total.sending = total.due + cell.due, total.held + cell.held, total.sending + cell.sending
        if cell.oldest_due and (total.oldest_due is None or cell.oldest_due < total.oldest_due):
            total.oldest_due = cell.oldest_due
    return {"now": now, "channels": channels, "rows": rows, "by_channel": by_channel,
            "sent_last_minute": sent_since(session, since=now - RATE_WINDOW),
            "workers": workers(session, now=now, alive_seconds=_alive_seconds()),
            "alive_seconds": _alive_seconds(), "age": age_text}


def age_text(seconds: float | None) -> str:
    """"—", "45 s", "12 min 5 s", "3 h 4 min", "2 d 5 h"."""
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def init_app(app) -> None:
    ops_monitoring.register_collector(app, "notifier", collect)
    ops_monitoring.register_home_panel(app, "notifier", "ops/home_queue.html", panel)
