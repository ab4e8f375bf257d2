"""Recovery progress over time: the series from the snapshots, and its accessible SVG chart."""
import re
from datetime import datetime, timedelta

import sqlalchemy as sa

from accounts import charts, service
from accounts.models import Account, AffectedAccount, RecoverySnapshot, RecoveryState
from core.db import db, utcnow
from tests.accounts.factories import ACTOR, RECOVERY_HEADER, attach, make_incident, run_import

S = RecoveryState
TODAY = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)


def at(day: int, hour: int = 12) -> datetime:
    """Day 1..4 of the crafted story; day 4 is today (the live counts are its last point)."""
    return TODAY + timedelta(days=day - 4, hours=hour)


EXPECTED = {  # per day, day 1 to day 4
    "recovered": [0, 1, 1, 1], "partially_recovered": [0, 0, 0, 1], "lost": [0, 0, 1, 1],
    "recovering": [0, 0, 1, 0], "at_risk": [0, 1, 0, 0], "unknown": [3, 1, 0, 0],
}


def crafted_incident():
    """Three accounts; snapshots over days 1-3 (several in a day: the last one counts); today is live."""
    incident = make_incident(categories=("contacts", "photos"))
    attach(incident.id, "A1", "A2", "A3")
    db.session.execute(sa.delete(RecoverySnapshot))
    snaps = [
        (at(1, 10), {"unknown": 3}),
        (at(2, 9), {"unknown": 2, "recovering": 1}),  # superseded later the same day
        (at(2, 13), {"recovered": 1, "at_risk": 1, "unknown": 1}),
        (at(3, 12), {"recovered": 1, "lost": 1, "recovering": 1}),
    ]
    for when, counts in snaps:
        for state, n in counts.items():
            db.session.add(RecoverySnapshot(incident_id=incident.id, at=when, state=state, count=n))
    final = {"A1": S.RECOVERED, "A2": S.LOST, "A3": S.PARTIALLY_RECOVERED}
    for number, state in final.items():
        account_id = db.session.scalar(sa.select(Account.id).where(Account.account_number == number))
        db.session.execute(sa.update(AffectedAccount).where(AffectedAccount.account_id == account_id)
                           .values(state=state))
    db.session.commit()
    return incident


def test_progress_per_day_takes_the_last_snapshot_of_each_day_and_ends_live(app):
    incident = crafted_incident()
    progress = service.recovery_progress(db.session, incident_id=incident.id, unit="day")
    assert progress["buckets"] == [at(d, 0) for d in (1, 2, 3, 4)]
    assert progress["series"] == EXPECTED


def test_progress_per_hour_carries_counts_through_quiet_hours(app):
    incident = crafted_incident()
    progress = service.recovery_progress(db.session, incident_id=incident.id, unit="hour")
    buckets, series = progress["buckets"], progress["series"]
    assert buckets[0] == at(1, 10)
    i = buckets.index(at(2, 9))
    assert (series["recovering"][i], series["unknown"][i]) == (1, 2)
    assert (series["recovered"][i + 4], series["at_risk"][i + 4]) == (1, 1)  # 13:00
    assert (series["recovered"][i + 3], series["recovering"][i + 3]) == (0, 1)  # 12:00 carries 09:00
    assert {s: v[-1] for s, v in series.items()} == {s: v[-1] for s, v in EXPECTED.items()}


def test_imports_and_edits_write_snapshots_that_the_chart_reads(app):
    incident = make_incident(categories=("photos",))
    attach(incident.id, "A1", "A2")
    run_import(incident.id, RECOVERY_HEADER + "A1,photos,recovered,,,\n", kind="recovery")
    service.update_recovery(db.session, actor=ACTOR, incident_id=incident.id, account_number="A2",
                            items=[{"category": "photos", "state": "lost"}])
    db.session.commit()
    snaps = db.session.execute(sa.select(RecoverySnapshot.state, RecoverySnapshot.count)
                               .order_by(RecoverySnapshot.id)).all()
    # attach (2 unknown), then the import (1 recovered, 1 unknown); the edit a moment later is throttled.
    assert [(S(s).value, n) for s, n in snaps] == [("unknown", 2), ("recovered", 1), ("unknown", 1)]
    progress = service.recovery_progress(db.session, incident_id=incident.id)
    assert progress["series"]["lost"][-1] == 1 and progress["series"]["recovered"][-1] == 1  # live point


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
    # More than three days: the chart goes day by day; the last row is today, from the live counts.
    assert table.count('<th scope="row">') == 4
    last_row = table.split(f'{at(4, 0):%Y-%m-%d}</th>')[1].split("</tr>")[0]
    assert [int(x) for x in last_row.replace("<td>", " ").replace("</td>", " ").split()] == [1, 1, 1, 0, 0, 0]


def test_the_dashboard_chart_has_a_whole_html_legend_and_a_phone_drawing_with_larger_text(signed_in):
    client, _ = signed_in
    incident = make_incident()
    html = client.get(f"/ops/incidents/{incident.id}/recovery").get_data(as_text=True)
    legend = re.search(r'<ul class="chart-legend">(.*?)</ul>', html, re.S).group(1)
    assert [re.sub(r"<[^>]+>", "", li).strip() for li in re.findall(r"<li>.*?</li>", legend)] == [
        "Recovered", "Partially recovered", "Lost", "Recovering", "At risk", "Unknown"]
    wide = re.search(r'<svg class="chart chart-progress chart-wide".*?</svg>', html, re.S).group(0)
    narrow = re.search(r'<svg class="chart chart-progress chart-narrow".*?</svg>', html, re.S).group(0)
    assert 'viewBox="0 0 720 264"' in wide and 'font-size="11"' in wide
    assert 'viewBox="0 0 360 240"' in narrow and 'font-size="14"' in narrow  # 14 of 360 units: ~11 px on a phone
    assert 'id="progress-narrow-title"' in narrow and 'id="progress-title"' in wide  # ids stay unique
