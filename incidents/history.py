"""The 90-day history bars and uptime figures, computed from ComponentStatusEvent rows.

Uptime, as Statuspage weighs it: over the last 90 days (or since the component was created, if later),
downtime = time in major_outage + 30% of time in partial_outage, and
uptime % = 100 x (1 - downtime / period). Degraded performance and maintenance count as up.
Days are UTC calendar days; a day's colour is the worst status seen during it."""
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa

from core.db import utcnow
from incidents.models import Component, ComponentStatus, ComponentStatusEvent, Incident

DAYS = 90
# Bar classes in the page: o operational, m maintenance, d degraded, p partial outage, x major outage, n no data.
DAY_CODES = {"operational": "o", "under_maintenance": "m", "degraded_performance": "d", "partial_outage": "p",
             "major_outage": "x", "nodata": "n"}
PARTIAL_WEIGHT = 0.3


@dataclass
class Day:
    """One UTC day of one component: seconds spent in each status, and the worst status seen."""

    day: date
    seconds: dict[ComponentStatus, float] = field(default_factory=dict)
    tracked: bool = True  # False before the component existed

    @property
    def worst(self) -> ComponentStatus | None:
        seen = [s for s, secs in self.seconds.items() if secs > 0]
        return max(seen, key=lambda s: s.severity) if seen else None

    @property
    def css(self) -> str:
        worst = self.worst
        return worst.value if worst is not None and self.tracked else "nodata"

    @property
    def code(self) -> str:
        """One letter for the bar's CSS class (static/style.css), so 630 bars stay a few kilobytes."""
        return DAY_CODES[self.css]

    @property
    def problem(self) -> bool:
        """A tracked day on which the component was not fully operational."""
        return self.tracked and self.worst is not None and self.worst != ComponentStatus.OPERATIONAL

    @property
    def label(self) -> str:
        """e.g. "Nov 3: partial outage 2h 10m, degraded performance 5m" (worst first)."""
        prefix = f"{self.day:%b} {self.day.day}"
        if not self.tracked or self.worst is None:
            return f"{prefix}: no data"
        problems = sorted((s for s, secs in self.seconds.items()
                           if s != ComponentStatus.OPERATIONAL and secs >= 60),
                          key=lambda s: -s.severity)
        if not problems:
            return f"{prefix}: operational, no incidents"
        return f"{prefix}: " + ", ".join(f"{s.label.lower()} {duration(self.seconds[s])}" for s in problems)


@dataclass
class ComponentHistory:
    """A component's days (oldest first) and its uptime percentage over the period."""

    component_id: int
    days: list[Day]
    uptime: float  # percent, 0..100

    @property
    def uptime_text(self) -> str:
        return f"{self.uptime:.2f}%"

    @property
    def bad_days(self) -> int:
        return sum(1 for d in self.days if d.problem)

    @property
    def summary(self) -> str:
        """The bar in words, for screen readers: the days with problems one by one, the rest summed up."""
        problems = [d for d in self.days if d.problem]
        untracked = sum(1 for d in self.days if not d.tracked or d.worst is None)
        said = f"{len(problems)} day{'' if len(problems) == 1 else 's'} with problems"
        said += (": " + "; ".join(d.label for d in problems) + "." if problems else ".")
        ok = len(self.days) - len(problems) - untracked
        said += f" {ok} day{'' if ok == 1 else 's'} operational"
        return said + (f", {untracked} without data." if untracked else ".")


def _month_start(year: int, month: int) -> datetime:
    """The first instant of a month; `month` may run past 1..12 and carries into the year."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=timezone.utc)


def months_for_page(page: int, per_page: int, *, now: datetime) -> tuple[list[datetime], datetime]:
    """For /history?page=N: the month starts shown (newest first) and the end of the newest month."""
    newest = now.month - (page - 1) * per_page
    return [_month_start(now.year, newest - n) for n in range(per_page)], _month_start(now.year, newest + 1)


def by_month(incidents: list[Incident], months: list[datetime]) -> list[tuple[datetime, list[Incident]]]:
    """Pair each month with the incidents (and maintenance) that began in it, keeping their order."""
    def began(i: Incident) -> datetime:
        return i.scheduled_for or i.started_at
    return [(m, [i for i in incidents if (began(i).year, began(i).month) == (m.year, m.month)])
            for m in months]


def duration(seconds: float) -> str:
    """A short human duration: "2h 10m", "45m", "under a minute"."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours}h {minutes}m"
    return f"{hours}h" if hours else f"{minutes}m"


def _day_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def _segments(start: datetime, end: datetime, initial: ComponentStatus,
              events: list[ComponentStatusEvent]) -> list[tuple[datetime, datetime, ComponentStatus]]:
    """Cut [start, end] into (from, to, status) pieces using the component's events in order."""
    pieces, at, status = [], start, initial
    for event in events:
        if event.at > at:
            pieces.append((at, event.at, status))
            at = event.at
        status = event.new_status
    if end > at:
        pieces.append((at, end, status))
    return pieces


def _events_in_window(session, component_ids: list[int], start: datetime,
                      end: datetime) -> dict[int, list[ComponentStatusEvent]]:
    """All components' events in (start, end] in one query, grouped by component, in time order."""
    rows = session.scalars(
        sa.select(ComponentStatusEvent)
        .where(ComponentStatusEvent.component_id.in_(component_ids),
               ComponentStatusEvent.at > start, ComponentStatusEvent.at <= end)
        .order_by(ComponentStatusEvent.component_id, ComponentStatusEvent.at, ComponentStatusEvent.id)
    ).all()
    out: dict[int, list[ComponentStatusEvent]] = {}
    for row in rows:
        out.setdefault(row.component_id, []).append(row)
    return out


def _status_at(session, component_ids: list[int], at: datetime) -> dict[int, ComponentStatus]:
    """Each component's status at `at`: the new_status of its last event up to then (one query)."""
    ranked = (
        sa.select(ComponentStatusEvent.component_id, ComponentStatusEvent.new_status,
                  sa.func.row_number().over(partition_by=ComponentStatusEvent.component_id,
                                            order_by=(ComponentStatusEvent.at.desc(),
                                                      ComponentStatusEvent.id.desc())).label("n"))
        .where(ComponentStatusEvent.component_id.in_(component_ids), ComponentStatusEvent.at <= at)
        .subquery()
    )
    rows = session.execute(sa.select(ranked.c.component_id, ranked.c.new_status).where(ranked.c.n == 1))
    return {cid: ComponentStatus(status) for cid, status in rows}


def component_histories(session, components: list[Component], *, days: int = DAYS,
                        now: datetime | None = None) -> dict[int, ComponentHistory]:
    """Day cells and uptime for each component over the last `days` days, keyed by component id."""
    now = now or utcnow()
    if not components:
        return {}
    window_start = now - timedelta(days=days)
    first_day = (now - timedelta(days=days - 1)).date()  # the oldest bar; it starts after window_start
    bars_start = window_start
    ids = [c.id for c in components]
    events = _events_in_window(session, ids, bars_start, now)
    initial = _status_at(session, ids, bars_start)
    out = {}
    for component in components:
        mine = events.get(component.id, [])
        # No event before the window: the status then is what the first event changed from, or today's.
        start_status = initial.get(component.id) or (mine[0].old_status if mine else component.status)
        pieces = _segments(bars_start, now, start_status, mine)
        born = component.created_at or bars_start
        out[component.id] = ComponentHistory(
            component_id=component.id,
            days=_days(pieces, first_day, days, born, now),
            uptime=_uptime(pieces, max(window_start, born), now),
        )
    return out


def _days(pieces, first_day: date, count: int, born: datetime, now: datetime) -> list[Day]:
    out = []
    for n in range(count):
        d = first_day + timedelta(days=n)
        lo, hi = _day_start(d), min(_day_start(d) + timedelta(days=1), now)
        cell = Day(day=d, tracked=hi > born)
        lo = max(lo, born)
        for a, b, status in pieces:
            overlap = (min(b, hi) - max(a, lo)).total_seconds()
            if overlap > 0:
                cell.seconds[status] = cell.seconds.get(status, 0.0) + overlap
        out.append(cell)
    return out


def _uptime(pieces, start: datetime, end: datetime) -> float:
    period = (end - start).total_seconds()
    if period <= 0:
        return 100.0
    down = 0.0
    for a, b, status in pieces:
        overlap = (min(b, end) - max(a, start)).total_seconds()
        if overlap <= 0:
            continue
        if status == ComponentStatus.MAJOR_OUTAGE:
            down += overlap
        elif status == ComponentStatus.PARTIAL_OUTAGE:
            down += PARTIAL_WEIGHT * overlap
    return max(0.0, 100.0 * (1 - down / period))
