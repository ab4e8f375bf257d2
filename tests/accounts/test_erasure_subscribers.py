"""Erasing a status-page subscriber who is not an affected account (accounts.erasure.erase_subscriber), from the
API, the CLI and the console: after they subscribed by SMS with a code, got updates, texted us and were removed,
no text or JSON column of any table holds their number; the opt-out still holds as a keyed hash; an address an
account holds is refused (erase the account instead), and an unknown one is 404."""
import json

import pytest
import sqlalchemy as sa

from accounts.models import Subscription
from core.db import db
from notifications import optouts
from notifications.models import Channel, Notification, NotificationStatus, StagedMessage
from ops.models import AuditEntry
from tests.acceptance_helpers import connect_peers, deliver, text_us
from tests.accounts.factories import HEADER, make_incident, run_import
from tests.accounts.test_erasure import _admin_api
from tests.accounts.test_subscriptions import post_update
from tests.accounts.test_subscriptions_sms import ask, code_page, enter, texted_code
from tests.conftest import make_operator, sign_in

NUMBER = "+12065554321"


def _found_anywhere(value: str) -> list[str]:
    found = []
    for table in db.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, (sa.String, sa.Text, sa.JSON)):
                for p in {value, json.dumps(value)[1:-1]}:
                    if db.session.scalar(sa.select(sa.func.count()).select_from(table).where(
                            sa.cast(column, sa.Text).contains(p, autoescape=True))):
                        found.append(f"{table.name}.{column.name}")
    return found


@pytest.mark.parametrize("inline_max", [20_000, 0], ids=["in-the-request", "staged"])
def test_an_sms_subscriber_is_erased_everywhere_and_stays_opted_out(app, client, twilio_standin, smtp_server,
                                                                    twilio_app, inline_max):
    # "staged": the update still queued at the erasure is a staged row (notifications.staging), not yet in the
    # outbox: the erasure must find it there too.
    connect_peers(app, twilio_standin, smtp_server, BROADCAST_INLINE_MAX=inline_max)
    incident = make_incident()
    run_import(incident.id, HEADER + "SK1,Ana,+12065550100,ana@example.org,en\n")
    path = code_page(ask(client, phone=NUMBER))
    assert enter(client, path, texted_code(twilio_standin, NUMBER)).status_code == 200
    post_update(incident.id, "We found the cause.")
    deliver()
    text_us(client, NUMBER, "HELP")
    post_update(incident.id, "Queued, not sent yet.")  # still queued when they are erased
    assert _found_anywhere(NUMBER)  # the test would see it
    staged = db.session.scalar(sa.select(sa.func.count()).select_from(StagedMessage))
    assert staged == (3 if inline_max == 0 else 0)  # Ana's text and email, and the subscriber's text

    api = _admin_api(client)
    erased = api.post("/subscriptions/erase", json={"channel": "sms", "address": "(206) 555-4321"})
    assert erased.status_code == 200, erased.get_json()
    counts = erased.get_json()["erased"]
    assert counts["subscriptions"] == 1 and counts["messages"] >= 4 and counts["inbound_sms"] == 1
    assert _found_anywhere(NUMBER) == []
    # The unsent update is suppressed, counts stay (the rows stay), and the address stays opted out by hash.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.status == NotificationStatus.SUPPRESSED, Notification.error_code == "erased")) >= 1
    optouts.opt_out(db.session, Channel.SMS, NUMBER, "sms:STOP")  # (as if they had said STOP before)
    db.session.commit()
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "subscription.erase"))
    assert entry.after["subscriptions"] == 1 and NUMBER not in json.dumps(entry.after)
    # Again: nothing is held any more.
    assert api.post("/subscriptions/erase", json={"channel": "sms", "address": NUMBER}).status_code == 404
    # An address an affected account holds is that account's to erase.
    refused = api.post("/subscriptions/erase", json={"channel": "email", "address": "ana@example.org"})
    assert refused.status_code == 409 and "SK1" in refused.get_json()["error"]["message"]
    assert api.post("/subscriptions/erase", json={"channel": "fax", "address": "x"}).status_code == 422


def test_the_cli_and_the_console_erase_an_email_subscriber(app, client, smtp_server):
    from tests.accounts.test_subscriptions import _peers, confirm, subscribe

    _peers(app, smtp_server)
    for address in ("one@example.org", "two@example.org"):
        subscribe(client, address)
        confirm(client, smtp_server, address)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["subscriptions", "erase", "email", "one@example.org"], input="n\n").exit_code == 1
    done = runner.invoke(args=["subscriptions", "erase", "email", "One@Example.org", "--yes"])
    assert done.exit_code == 0 and "1 subscriptions" in done.output, done.output
    assert _found_anywhere("one@example.org") == []

    sub_id = db.session.scalar(sa.select(Subscription.id).where(Subscription.address == "two@example.org"))
    operator = app.test_client()
    sign_in(operator, make_operator("operator", email="op@example.com"))
    assert "Erase…" not in operator.get("/ops/subscriptions").get_data(as_text=True)
    assert operator.get(f"/ops/subscriptions/{sub_id}/erase").status_code == 403
    admin = app.test_client()
    sign_in(admin, make_operator("admin", email="root@example.com"))
    assert "Erase…" in admin.get("/ops/subscriptions").get_data(as_text=True)
    page = admin.get(f"/ops/subscriptions/{sub_id}/erase")
    assert page.status_code == 200 and "cannot be undone" in page.get_data(as_text=True)
    from tests.conftest import csrf_from
    gone = admin.post(f"/ops/subscriptions/{sub_id}/erase",
                      data={"csrf_token": csrf_from(page.get_data(as_text=True))}, follow_redirects=True)
    assert "Erased: " in gone.get_data(as_text=True)
    assert _found_anywhere("two@example.org") == []
