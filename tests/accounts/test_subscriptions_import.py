"""Operators import subscribers who agreed elsewhere (accounts.subscriptions.import_rows) from the console, the
CLI and the ops API, and export them as CSV: all or nothing with every bad row by line and column, the consent
statement kept and audited, opted-out addresses never imported, each new subscriber welcomed once through the
real peers, and an export that imports back as it is."""
import csv
import io

import sqlalchemy as sa

from accounts.models import Subscription, SubscriptionComponent
from core.db import db
from incidents import service as incidents
from notifications import optouts
from notifications.models import Channel
from ops.audit import Actor
from ops.models import AuditEntry
from tests.acceptance_helpers import connect_peers, deliver, email_text, emails_to, sms_bodies
from tests.accounts.factories import make_incident
from tests.accounts.test_subscriptions import confirm, post_update, subscribe
from tests.conftest import csrf_from, make_operator, sign_in

ACTOR = Actor.cli("test")
CONSENT = "Opted in on the 2026 customer portal form"


def upload(client, text: str, consent: str = CONSENT, filename: str = "subscribers.csv"):
    page = client.get("/ops/subscriptions")
    assert page.status_code == 200
    return client.post("/ops/subscriptions/import", content_type="multipart/form-data", data={
        "csrf_token": csrf_from(page.get_data(as_text=True)), "consent": consent,
        "file": (io.BytesIO(text.encode("utf-8")), filename)})


def count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Subscription))


def test_an_operator_imports_subscribers_in_the_console_and_each_new_one_is_welcomed_once(
        app, client, twilio_standin, smtp_server, signed_in):
    connect_peers(app, twilio_standin, smtp_server)
    operator, _ = signed_in
    sync = incidents.create_component(db.session, actor=ACTOR, data={"name": "Sync"})
    photos = incidents.create_component(db.session, actor=ACTOR, data={"name": "Photos"})
    db.session.commit()
    visitor = app.test_client()
    subscribe(visitor, "pending@example.org")  # asked on the page, never confirmed
    subscribe(visitor, "old@example.org", ip="198.51.100.8")
    confirm(visitor, smtp_server, "old@example.org")
    optouts.opt_out(db.session, Channel.EMAIL, "stopped@example.org", "email:one-click")
    db.session.commit()
    before = {a: len(emails_to(smtp_server, a)) for a in ("pending@example.org", "old@example.org")}

    text = ("address,channel,components,language\n"
            "New@Example.org,,Sync,es\n"
            "(206) 555-0150,sms,,\n"
            "stopped@example.org,email,,\n"
            f"pending@example.org,,{photos.id},\n"
            "old@example.org,,,\n")
    done = upload(operator, text)
    assert done.status_code == 303
    page = operator.get(done.headers["Location"]).get_data(as_text=True)
    assert "Imported: 2 added, 1 pending confirmed, 1 already subscribed, 1 skipped (opted out)" in page
    subs = {s.address: s for s in db.session.scalars(sa.select(Subscription))}
    assert set(subs) == {"new@example.org", "+12065550150", "pending@example.org", "old@example.org"}
    new = subs["new@example.org"]
    assert (new.source, new.consent, new.language, new.follows_all) == ("import", CONSENT, "es", False)
    assert db.session.scalars(sa.select(SubscriptionComponent.component_id)
                              .where(SubscriptionComponent.subscription_id == new.id)).all() == [sync.id]
    assert subs["pending@example.org"].confirmed_at is not None and subs["old@example.org"].source == "web"
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "subscription.import"))
    assert entry.after["consent"] == CONSENT and entry.after["added"] == 2 and entry.operator_id is not None
    assert entry.entity_label == "subscribers.csv"

    deliver()
    [welcome] = emails_to(smtp_server, "new@example.org")
    assert "/subscribe/manage/" in email_text(welcome) and welcome["Subject"].startswith("Ya recibe")  # Spanish
    assert "STOP" in sms_bodies(twilio_standin, "+12065550150")[-1]
    assert len(emails_to(smtp_server, "pending@example.org")) == before["pending@example.org"] + 1
    assert len(emails_to(smtp_server, "old@example.org")) == before["old@example.org"]  # nothing new
    assert emails_to(smtp_server, "stopped@example.org") == []

    # The same file again changes nothing and sends nothing.
    again = upload(operator, text)
    flashed = operator.get(again.headers["Location"]).get_data(as_text=True)
    assert "Imported: 0 added, 0 pending confirmed, 4 already subscribed, 1 skipped" in flashed
    deliver()
    assert len(emails_to(smtp_server, "new@example.org")) == 1

    # They get the next update that concerns what they follow.
    incident = make_incident()
    incident.components.append(sync)
    db.session.commit()
    post_update(incident.id, "Sync is back.")
    deliver()
    assert "Sync is back." in email_text(emails_to(smtp_server, "new@example.org")[-1])
    assert "Sync is back." in sms_bodies(twilio_standin, "+12065550150")[-1]


def test_bad_rows_are_listed_by_line_and_column_and_nothing_is_imported(app, client, signed_in):
    operator, _ = signed_in
    bad = upload(operator, "address,channel,components,language\n"
                           "ok@example.org,,,\n"
                           "not-an-email,email,,\n"
                           "ok2@example.org,,Nope,\n"
                           "ok3@example.org,,,xx\n"
                           "ok@example.org,,,\n"
                           "+12065550100,fax,,\n")
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "5 invalid rows: nothing was imported" in html
    for expected in ("Line 3, address: Not a valid email address.", "Line 4, components: No component &#39;Nope&#39;",
                     "Line 5, language: Use one of:", "Line 6, address: Also on line 2.",
                     "Line 7, channel: Use email or sms"):
        assert expected in html, expected
    assert count() == 0
    no_consent = upload(operator, "address\nok@example.org\n", consent="because")
    assert no_consent.status_code == 422 and "How did these people agree" in no_consent.get_data(as_text=True)
    wrong_header = upload(operator, "email\nok@example.org\n")
    assert wrong_header.status_code == 422 and "must name the columns address" in wrong_header.get_data(as_text=True)
    assert count() == 0
    viewer = app.test_client()
    sign_in(viewer, make_operator("viewer"))
    page = viewer.get("/ops/subscriptions").get_data(as_text=True)
    assert "Import subscribers" not in page and "Download all as CSV" not in page
    assert viewer.post("/ops/subscriptions/import").status_code in (400, 403)
    assert viewer.get("/ops/subscriptions.csv").status_code == 403


def test_the_cli_and_the_api_import_and_the_export_imports_back_as_it_is(app, client, api, tmp_path):
    sync = incidents.create_component(db.session, actor=ACTOR, data={"name": "Sync"})
    db.session.commit()
    runner = app.test_cli_runner()
    path = tmp_path / "subs.csv"
    path.write_text("address,components\ncli@example.org,Sync\n+12065550160,\n", encoding="utf-8")
    refused = runner.invoke(args=["subscriptions", "import", str(path), "--consent", "x"])
    assert refused.exit_code == 1 and "Say how these people agreed" in refused.output
    result = runner.invoke(args=["subscriptions", "import", str(path), "--consent", CONSENT])
    assert result.exit_code == 0 and "Imported: 2 added" in result.output, result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("address\nnope\n", encoding="utf-8")
    result = runner.invoke(args=["subscriptions", "import", str(bad), "--consent", CONSENT])
    assert result.exit_code == 1 and "line 2, address: Not a valid" in result.output
    counts = runner.invoke(args=["subscriptions", "counts"])
    assert "email: 1 confirmed" in counts.output and "sms: 1 confirmed" in counts.output

    # An erased person's opt-out is only a keyed hash: still never imported.
    optouts.opt_out(db.session, Channel.EMAIL, "erased@example.org", "email:one-click")
    optouts.erase_address(db.session, Channel.EMAIL, "erased@example.org")
    db.session.commit()
    answer = api.post(f"/subscriptions/import?consent={CONSENT.replace(' ', '+')}", content_type="text/csv",
                      data="address,channel\napi@example.org,email\nErased@example.org,\n")
    assert answer.status_code == 200 and answer.get_json() == {"added": 1, "confirmed": 0, "unchanged": 0,
                                                              "opted_out": 1}
    rows = api.post(f"/subscriptions/import?consent={CONSENT.replace(' ', '+')}", content_type="text/csv",
                    data="address\nnope\n")
    assert rows.status_code == 422 and rows.get_json()["error"]["rows"] == [
        {"line": 2, "column": "address", "reason": "Not a valid phone number (use E.164, like +12065550100)."}]
    assert api.post("/subscriptions/import", content_type="text/csv", data="address\na@example.org\n") \
        .status_code == 422  # no consent
    assert api.post(f"/subscriptions/import?consent={CONSENT}", json={"address": "a@example.org"}).status_code == 415
    assert count() == 3

    # The console's CSV (audited) has the followed components and no code; it imports back as it is.
    operator = app.test_client()
    sign_in(operator, make_operator("operator", email="op2@example.com"))
    exported = operator.get("/ops/subscriptions.csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    text = exported.get_data(as_text=True)
    listed = {r["address"]: r for r in csv.DictReader(io.StringIO(text))}
    assert listed["cli@example.org"]["components"] == str(sync.id) and "code_hash" not in text
    assert db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "export.read",
                                                         AuditEntry.entity_id == "subscriptions"))
    db.session.execute(sa.delete(Subscription))
    db.session.commit()
    back = upload(operator, text)
    assert back.status_code == 303
    again = {s.address: s for s in db.session.scalars(sa.select(Subscription))}
    assert set(again) == set(listed) and again["cli@example.org"].follows_all is False
