"""The 90-day history bars and uptime, computed from component status events."""
from datetime import timedelta

from core.db import db, utcnow
from incidents import history, service
from incidents.models import Component, ComponentStatus, ComponentStatusEvent
from ops.audit import Actor

ACTOR = Actor.cli("test")
S = ComponentStatus


def _component(name="Contacts sync", age_days=120) -> Component:
    component = service.create_component(db.session, actor=ACTOR, data={"name": name})
    component.created_at = utcnow() - timedelta(days=age_days)
    db.session.commit()
    return component


def _event(component, old, new, at):
    db.session.add(ComponentStatusEvent(component_id=component.id, old_status=old, new_status=new, at=at))
    db.session.commit()


def _noon(days_ago: int, now):
    day = (now - timedelta(days=days_ago)).replace(hour=12, minute=0, second=0, microsecond=0)
    return day


def test_nine_hours_of_major_outage_two_days_ago_costs_nine_hours_of_ninety_days(app):
    now = utcnow()
    contacts = _component()
    start = _noon(2, now) - timedelta(hours=6)  # 06:00 to 15:00 UTC, two days ago
    _event(contacts, S.OPERATIONAL, S.MAJOR_OUTAGE, start)
    _event(contacts, S.MAJOR_OUTAGE, S.OPERATIONAL, start + timedelta(hours=9))
    result = history.component_histories(db.session, [contacts], now=now)[contacts.id]
    assert result.uptime_text == "99.58%"  # 100 x (1 - 9 / (90 x 24))
    assert abs(result.uptime - 100 * (1 - 9 / 2160)) < 1e-9
    day = result.days[-3]
    assert day.day == start.date()
    assert day.worst == S.MAJOR_OUTAGE and day.css == "major_outage"
    assert day.label == f"{start:%b} {start.day}: major outage 9h"
    assert result.days[-1].css == "operational" and result.bad_days == 1
    assert len(result.days) == 90


def test_partial_outage_counts_at_thirty_percent(app):
    now = utcnow()
    photos = _component("Photos")
    start = _noon(10, now)
    _event(photos, S.OPERATIONAL, S.PARTIAL_OUTAGE, start)
    _event(photos, S.PARTIAL_OUTAGE, S.OPERATIONAL, start + timedelta(hours=10))
    result = history.component_histories(db.session, [photos], now=now)[photos.id]
    assert result.uptime_text == f"{100 * (1 - 3 / 2160):.2f}%" == "99.86%"


def test_a_day_takes_the_colour_of_its_worst_status(app):
    now = utcnow()
    email = _component("Email")
    noon = _noon(5, now)
    _event(email, S.OPERATIONAL, S.DEGRADED_PERFORMANCE, noon - timedelta(hours=3))
    _event(email, S.DEGRADED_PERFORMANCE, S.PARTIAL_OUTAGE, noon)
    _event(email, S.PARTIAL_OUTAGE, S.DEGRADED_PERFORMANCE, noon + timedelta(hours=2, minutes=10))
    _event(email, S.DEGRADED_PERFORMANCE, S.OPERATIONAL, noon + timedelta(hours=3))
    day = history.component_histories(db.session, [email], now=now)[email.id].days[-6]
    assert day.worst == S.PARTIAL_OUTAGE
    assert day.label == f"{noon:%b} {noon.day}: partial outage 2h 10m, degraded performance 3h 50m"


def test_an_outage_that_began_before_the_window_counts_from_the_window_start(app):
    now = utcnow()
    calendar = _component("Calendar", age_days=400)
    _event(calendar, S.OPERATIONAL, S.MAJOR_OUTAGE, now - timedelta(days=100))
    _event(calendar, S.MAJOR_OUTAGE, S.OPERATIONAL, now - timedelta(days=89))
    result = history.component_histories(db.session, [calendar], now=now)[calendar.id]
    assert result.uptime_text == f"{100 * (1 - 1 / 90):.2f}%"  # one day of ninety was down
    assert result.days[0].worst == S.MAJOR_OUTAGE


def test_a_component_created_recently_is_measured_since_its_creation(app):
    now = utcnow()
    notes = _component("Notes", age_days=10)
    _event(notes, S.OPERATIONAL, S.MAJOR_OUTAGE, now - timedelta(days=2))
    _event(notes, S.MAJOR_OUTAGE, S.OPERATIONAL, now - timedelta(days=1))
    result = history.component_histories(db.session, [notes], now=now)[notes.id]
    assert result.uptime_text == "90.00%"  # one day down in ten
    assert result.days[0].css == "nodata"
    assert result.days[0].label.endswith("no data")


def test_the_history_page_shows_uptime_and_day_cells_with_labels(client):
    now = utcnow()
    contacts = _component()
    start = _noon(2, now) - timedelta(hours=6)
    _event(contacts, S.OPERATIONAL, S.MAJOR_OUTAGE, start)
    _event(contacts, S.MAJOR_OUTAGE, S.OPERATIONAL, start + timedelta(hours=9))
    for url in ("/history", "/"):
        page = client.get(url).get_data(as_text=True)
        assert "99.58% uptime over 90 days" in page
        assert f'<li class=x title="{start:%b} {start.day}: major outage 9h">' in page
        assert f"1 day with problems: {start:%b} {start.day}: major outage 9h." in page  # for screen readers


def test_histories_use_two_queries_whatever_the_number_of_components(app):
    import sqlalchemy as sa

    components = [_component(f"Component {n}") for n in range(5)]
    for c in components:
        _event(c, S.OPERATIONAL, S.MAJOR_OUTAGE, utcnow() - timedelta(days=3))
    db.session.expire_all()
    components = db.session.scalars(sa.select(Component)).all()
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)
    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        history.component_histories(db.session, components)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    assert len([s for s in statements if "component_status_events" in s]) == 2


def test_history_pages_are_quarters_that_cross_year_ends():
    from datetime import datetime, timezone

    now = datetime(2026, 2, 10, tzinfo=timezone.utc)
    months, end = history.months_for_page(1, 3, now=now)
    assert [m.strftime("%Y-%m") for m in months] == ["2026-02", "2026-01", "2025-12"]
    assert end == datetime(2026, 3, 1, tzinfo=timezone.utc)
    months, end = history.months_for_page(2, 3, now=now)
    assert [m.strftime("%Y-%m") for m in months] == ["2025-11", "2025-10", "2025-09"]
    assert end == datetime(2025, 12, 1, tzinfo=timezone.utc)


def test_durations_read_naturally():
    assert [history.duration(s) for s in (30, 60 * 45, 3600 * 2, 3600 * 2 + 600)] == \
        ["under a minute", "45m", "2h", "2h 10m"]
