"""Recovery progress over time: the set-based series from the history, and its accessible SVG chart."""
from datetime import datetime, timezone

import sqlalchemy as sa

from accounts import charts, service
from accounts.models import Account, AffectedAccount, RecoveryEvent, RecoveryState
from core.db import db
from tests.accounts.factories import attach, make_incident

S = RecoveryState


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=timezone.utc)


def crafted_incident():
    """Three accounts added on Nov 1; two categories; events over Nov 2-4 with known outcomes per day."""
    incident = make_incident(categories=("contacts", "photos"))
    attach(incident.id, "A1", "A2", "A3")
    ids = dict(db.session.execute(sa.select(Account.account_number, AffectedAccount.id).join(AffectedAccount)).all())
    db.session.execute(sa.update(AffectedAccount).values(added_at=at(1, 10), updated_at=at(1, 10)))
    cat = {c.key: c.id for c in service.list_categories(db.session, incident_id=incident.id)}
    events = [
        ("A1", "contacts", None, S.RECOVERED, at(2)), ("A1", "photos", None, S.RECOVERED, at(2, 13)),
        ("A2", "contacts", None, S.AT_RISK, at(2)),
        # Day 3: A1 dips and comes back within the day (no net change), A2 is lost, A3 starts recovering.
        ("A1", "contacts", S.RECOVERED, S.RECOVERING, at(3, 8)),
        ("A1", "contacts", S.RECOVERING, S.RECOVERED, at(3, 9)),
        ("A2", "contacts", S.AT_RISK, S.LOST, at(3)), ("A2", "photos", None, S.LOST, at(3)),
        ("A3", "photos", None, S.RECOVERING, at(3)),
        # Day 4: A3 ends with photos recovered and contacts lost: partially recovered.
        ("A3", "photos", S.RECOVERING, S.RECOVERED, at(4)), ("A3", "contacts", None, S.LOST, at(4, 14)),
    ]
    for number, key, old, new, when in events:
        db.session.add(RecoveryEvent(affected_account_id=ids[number], category_id=cat[key], old_state=old,
                                     new_state=new, actor="test", at=when))
    db.session.commit()
    return incident


EXPECTED = {  # per day, Nov 1 to Nov 4
    "recovered": [0, 1, 1, 1], "partially_recovered": [0, 0, 0, 1], "lost": [0, 0, 1, 1],
    "recovering": [0, 0, 1, 0], "at_risk": [0, 1, 0, 0], "unknown": [3, 1, 0, 0],
}


def test_progress_per_day_is_rebuilt_from_the_history(app):
    incident = crafted_incident()
    progress = service.recovery_progress(db.session, incident_id=incident.id, unit="day")
    assert progress["buckets"] == [at(d, 0) for d in (1, 2, 3, 4)]
    assert progress["series"] == EXPECTED


def test_progress_per_hour_places_each_change_in_its_hour(app):
    incident = crafted_incident()
    progress = service.recovery_progress(db.session, incident_id=incident.id, unit="hour")
    buckets, series = progress["buckets"], progress["series"]
    assert buckets[0] == at(1, 10) and buckets[-1] == at(4, 14) and len(buckets) == 3 * 24 + 5
    i = buckets.index(at(2, 12))
    assert (series["recovering"][i], series["at_risk"][i], series["unknown"][i]) == (0, 1, 2)  # A1 half done
    assert series["recovered"][i + 1] == 1  # A1's photos at 13:00
    assert {s: v[-1] for s, v in series.items()} == {s: v[-1] for s, v in EXPECTED.items()}


def test_an_incident_without_accounts_has_an_empty_series_and_a_chart_that_says_so(app):
    incident = make_incident()
    progress = service.recovery_progress(db.session, incident_id=incident.id)
    assert progress["buckets"] == []
    svg = charts.progress_chart(progress["buckets"], progress["series"])
    assert "No affected accounts yet" in svg and "<polygon" not in svg


def test_the_svg_chart_stacks_areas_with_the_expected_points_and_is_accessible(app):
    svg = str(charts.progress_chart([at(d, 0) for d in (1, 2, 3, 4)], EXPECTED, unit="day"))
    assert svg.startswith('<svg class="chart chart-progress" role="img" '
                          'aria-labelledby="progress-title progress-desc"')
    assert '<title id="progress-title">Recovery progress over time</title>' in svg
    assert ("At the end: Recovered 1, Partially recovered 1, Lost 1, Recovering 0, At risk 0, Unknown 0"
            in svg)
    # Peak 3 accounts over a 224 px high plot from y=12: 1 account -> y 161.3, 0 -> y 236; x from 56 to 708.
    assert ('data-state="recovered" points="56,236 273.3,161.3 490.7,161.3 708,161.3 '
            '708,236 490.7,236 273.3,236 56,236"') in svg
    # Unknown is stacked on top of everything else: 3 at the start (the top, y=12).
    assert 'data-state="unknown" points="56,12 ' in svg
    assert 'data-state="partially_recovered"' in svg and "<script" not in svg and "style=" not in svg


def test_the_stacked_bar_splits_its_width_by_state(app):
    svg = str(charts.stacked_bar({"recovered": 1, "lost": 1, "partially_recovered": 2, "at_risk": 0}))
    assert '<desc id="bar-desc">4 accounts: Recovered 1, Partially recovered 2, Lost 1' in svg
    assert 'class="state-recovered" x="0" y="0" width="150"' in svg
    assert 'class="state-partially_recovered" x="150" y="0" width="300"' in svg
    assert 'class="state-lost" x="450" y="0" width="150"' in svg
    assert "state-at_risk" not in svg


def test_the_dashboard_shows_the_same_numbers_in_its_data_table(signed_in):
    client, _ = signed_in
    incident = crafted_incident()
    page = client.get(f"/ops/incidents/{incident.id}/recovery").get_data(as_text=True)
    table = page.split('id="progress-table"')[1].split("</table>")[0]
    # More than three days: the chart goes day by day; the last row is Nov 4.
    assert table.count("<th scope=\"row\">2026-11-0") == 4
    last_row = table.split("2026-11-04</th>")[1].split("</tr>")[0]
    assert [int(x) for x in last_row.replace("<td>", " ").replace("</td>", " ").split()] == [1, 1, 1, 0, 0, 0]


def test_a_big_incident_gets_its_chart_from_a_background_computation(app, signed_in):
    import time

    from accounts import jobs

    client, _ = signed_in
    incident = crafted_incident()
    app.config["RECOVERY_CHART_INLINE_ACCOUNTS"] = 2  # three accounts count as big here
    jobs._charts.pop(incident.id, None)  # ids restart in each test; production never reuses them
    first = client.get(f"/ops/incidents/{incident.id}/recovery").get_data(as_text=True)
    assert "The chart is being computed" in first and '<meta http-equiv="refresh" content="5">' in first
    deadline = time.monotonic() + 30
    while "The chart is being computed" in (page := client.get(f"/ops/incidents/{incident.id}/recovery")
                                            .get_data(as_text=True)):
        assert time.monotonic() < deadline, "the chart was never computed"
        time.sleep(0.05)
    assert '<svg class="chart chart-progress"' in page and "(big incidents are recomputed" in page
    last_row = page.split("2026-11-04</th>")[1].split("</tr>")[0]
    assert [int(x) for x in last_row.replace("<td>", " ").replace("</td>", " ").split()] == [1, 1, 1, 0, 0, 0]
    while jobs._charts_running:  # let the thread end before the tables are emptied
        time.sleep(0.01)
