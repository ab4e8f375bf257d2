"""`flask --app app demo`: a Sidekick-like outage, seeded through the real services, with a usable sign-in."""
import re
import stat
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core.db import db, utcnow
from incidents.models import Component, ComponentGroup, ComponentStatusEvent, Incident, IncidentKind
from ops.models import Operator
from tests.conftest import make_operator, sign_in

SIDEKICK = "Loss of personal data stored on Danger servers"


@pytest.fixture
def credentials(app, tmp_path):
    """Keep the demo password file of each test in its own folder, never in the real instance/."""
    path = tmp_path / "demo-credentials.txt"
    app.config["DEMO_CREDENTIALS_FILE"] = str(path)
    return path


def counts() -> dict:
    return {model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (ComponentGroup, Component, Incident, ComponentStatusEvent, Operator)}


def printed_password(output: str) -> str:
    match = re.search(r"email demo@lifeboat\.example\s+password (\S+)", output)
    assert match, output
    return match.group(1)


def test_the_demo_seeds_grouped_components_incidents_and_maintenance(runner, credentials):
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output

    groups = {g.name: [c.name for c in g.components] for g in db.session.scalars(sa.select(ComponentGroup))}
    assert groups["Sync services"] == ["Contacts sync", "Calendar sync", "Photos", "Notes"]
    assert groups["Phone services"] == ["Data service", "Email", "Messaging"]

    sidekick = db.session.scalar(sa.select(Incident).where(Incident.name == SIDEKICK))
    assert sidekick.impact.value == "critical" and sidekick.is_open
    assert len(sidekick.updates) >= 5
    assert any(u.component_changes for u in sidekick.updates[1:])
    assert "**" in sidekick.updates[-1].body  # written in Markdown, like a real update
    assert sidekick.started_at < utcnow() - timedelta(days=5)
    assert db.session.get(Component, sidekick.components[0].id).status.value != "operational"

    incidents = db.session.scalars(sa.select(Incident)).all()
    resolved = [i for i in incidents if i.kind == IncidentKind.INCIDENT and not i.is_open]
    assert any(i.postmortem_body for i in resolved)
    maintenance = {i.status.value: i for i in incidents if i.kind == IncidentKind.MAINTENANCE}
    assert maintenance["scheduled"].scheduled_for > utcnow()
    assert maintenance["completed"].resolved_at < utcnow() - timedelta(days=7)
    for name in (SIDEKICK, "Data network upgrade"):
        assert f"{name}" in result.output


def test_the_demo_backdates_history_so_past_outages_show_in_the_last_90_days(runner, credentials):
    runner.invoke(args=["demo"])
    now = utcnow()
    times = db.session.scalars(sa.select(ComponentStatusEvent.at)).all()
    assert min(times) < now - timedelta(days=30)
    assert all(now - timedelta(days=90) < t <= now for t in times)
    for incident in db.session.scalars(sa.select(Incident)):
        displayed = [u.display_at for u in incident.updates]
        assert len(set(displayed)) == len(displayed), "each update has its own time"
        assert incident.updated_at == max(displayed)


def test_the_printed_sign_in_works_and_is_kept_private(runner, client, credentials):
    result = runner.invoke(args=["demo"])
    password = printed_password(result.output)
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert password in credentials.read_text()
    assert db.session.scalar(sa.select(Operator.role).where(Operator.email == "demo@lifeboat.example")).value == "admin"
    assert sign_in(client, "demo@lifeboat.example", password).status_code == 302


def test_running_the_demo_twice_never_duplicates_it(runner, credentials):
    first = runner.invoke(args=["demo"])
    before = counts()

    again = runner.invoke(args=["demo", "--if-empty"])
    assert again.exit_code == 0, again.output
    assert "not seeded" in again.output
    assert printed_password(again.output) == printed_password(first.output)  # `make run` prints it each start

    refused = runner.invoke(args=["demo"])
    assert refused.exit_code == 1
    assert "only seeded into an empty database" in refused.output
    assert "Traceback" not in refused.output
    assert counts() == before


def test_no_sign_in_is_printed_once_the_demo_operator_is_gone(runner, credentials):
    runner.invoke(args=["demo"])
    db.session.execute(sa.delete(Operator))
    make_operator("admin", email="demo@lifeboat.example", password="someone else's new password")

    result = runner.invoke(args=["demo", "--if-empty"])
    assert result.exit_code == 0
    assert "password" not in result.output

    credentials.unlink()
    assert "password" not in runner.invoke(args=["demo", "--if-empty"]).output


def test_the_demo_stays_out_of_a_database_that_is_in_use(runner, credentials):
    make_operator("admin")
    assert runner.invoke(args=["demo"]).exit_code == 1
    quiet = runner.invoke(args=["demo", "--if-empty"])
    assert quiet.exit_code == 0 and "password" not in quiet.output
    assert counts()["Incident"] == 0 and not credentials.exists()


def test_the_status_page_with_the_demo_is_light_and_says_what_each_bar_means(runner, credentials, client):
    """Issue 10: at most 40 KB of HTML for 7 components x 90 days, with every bar told in words."""
    assert runner.invoke(args=["demo"]).exit_code == 0
    html = client.get("/").get_data(as_text=True)
    assert len(html.encode()) <= 40 * 1024, len(html.encode())
    bars = re.findall(r'<ol class="days" aria-hidden="true">(.*?)</ol>', html)
    assert len(bars) == 7 and all(bar.count("<li ") == 90 for bar in bars)
    spoken = re.findall(r'<p class="visually-hidden">([^<]*), last 90 days: ([^<]*)</p>', html)
    assert len(spoken) == 7
    for name, words in spoken:
        problems = int(re.search(r"(\d+) days? with problems", words).group(1))
        operational = int(re.search(r"(\d+) days? operational", words).group(1))
        without = re.search(r"(\d+) days? without data", words)
        assert problems + operational + (int(without.group(1)) if without else 0) == 90, (name, words)
    assert any("major outage" in words for _, words in spoken)
