"""Erasing one subscriber (accounts.erasure) from the API, the CLI and the console: after a subscriber has been
imported, edited, messaged, has texted us, asked for a code, accepted an offer and opted out, no text or JSON
column of any table holds their name, phone, email or account number, and no kept file does; counts, recovery
statistics, offer liability and the opt-out still hold."""
import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from accounts import selfservice, service
from accounts.models import Account
from core.db import db
from notifications import worker
from notifications.models import Notification, NotificationStatus, OptOut
from offers import grants
from offers.service import display_code
from ops import service as ops_service
from ops.audit import Actor
from ops.models import AuditEntry
from tests.accounts.factories import HEADER, RECOVERY_HEADER, make_incident, run_import
from tests.conftest import make_operator, post_form, sign_in
from tests.notifications.twilio_helpers import inbound, reply_of
from tests.offers.helpers import issue, make_program
from tests.ops.api_client import ApiClient

NAME, PHONE, EMAIL, NUMBER = "Zelda Quíxotic", "+12065559876", "zelda.q@example.org", "SKZ9931"
NEW_EMAIL = "zelda.new@example.org"
SECRETS = (NAME, PHONE, EMAIL, NEW_EMAIL, NUMBER)


class Log:
    name = "log"

    def send(self, message):
        from notifications.providers import Sent
        return Sent(provider_id=f"log-{message.id}")


def _admin_api(client):
    admin = make_operator("admin", email="root@example.com")
    _token, secret = ops_service.create_token(db.session, actor=Actor.cli("test"), operator_id=admin.id)
    db.session.commit()
    return ApiClient(client, secret)


def _a_full_life(client, api):
    """Everything a subscriber leaves behind during an outage; returns the incident."""
    incident = make_incident()
    job = run_import(incident.id, HEADER + f"{NUMBER},{NAME},{PHONE},{EMAIL},es\nOTHER1,Other Person,+12065550001,"
                     f"other@example.com,en\nBAD1,{NAME},not a phone,{EMAIL},en\n", skip_invalid=True)
    assert job.status.value == "done" and job.error_csv_path and Path(job.error_csv_path).is_file()
    # A contact change (history of old and new values), recovery with notes that name them.
    run_import(incident.id, HEADER + f"{NUMBER},{NAME},{PHONE},{NEW_EMAIL},es\n")
    run_import(incident.id, RECOVERY_HEADER + f"{NUMBER},photos,lost,,,{NAME} lost 300 photos\n"
               f"OTHER1,photos,lost,,,\n", kind="recovery")
    r = api.put(f"/incidents/{incident.id}/accounts/{NUMBER}/recovery", headers={"Idempotency-Key": "k1"},
                json={"categories": [{"category": "contacts", "state": "recovered", "note": f"Called {NAME}"}]})
    assert r.status_code == 200
    # Messages, sent, with their history.
    assert api.post(f"/incidents/{incident.id}/broadcasts",
                    json={"message": "Hello {{ name }}", "channels": ["sms", "email"]}).status_code == 201
    worker.run_once(providers={"sms": Log(), "email": Log()})
    # An offer, accepted by SMS; a STATUS text; a code; then STOP.
    program = make_program(incident.id)
    issue(program.id)
    grant = db.session.scalar(sa.select(grants.OfferGrant).join(Account, Account.id == grants.OfferGrant.account_id)
                              .where(Account.account_number == NUMBER))
    assert "ha aceptado" in reply_of(inbound(client, f"ACCEPT {display_code(grant.code)}", sender=PHONE))
    assert reply_of(inbound(client, "STATUS", sender=PHONE, sid="SM" + "2" * 32))
    selfservice.request_code(db.session, raw=NUMBER, ip="192.0.2.1")
    db.session.commit()
    inbound(client, "STOP", sender=PHONE, sid="SM" + "3" * 32)
    # They also subscribed on the status page with their new address.
    from tests.accounts.test_subscriptions import subscribe
    assert subscribe(client, NEW_EMAIL).status_code == 200
    return incident, program


def _found_anywhere() -> list[str]:
    """Every (table.column) holding any of the subscriber's values, in any text or JSON column."""
    found = []
    patterns = {p for v in SECRETS for p in (v, json.dumps(v)[1:-1], v.lower())}
    for table in db.metadata.sorted_tables:
        for column in table.columns:
            if not isinstance(column.type, (sa.String, sa.Text, sa.JSON)):
                continue
            for p in patterns:
                n = db.session.scalar(sa.select(sa.func.count()).select_from(table).where(
                    sa.cast(column, sa.Text).contains(p, autoescape=True)))
                if n:
                    found.append(f"{table.name}.{column.name} holds {p!r} ({n} rows)")
    return found


def _kept_files(app) -> list[Path]:
    root = Path(app.instance_path)
    return [p for p in root.rglob("*") if p.is_file() and p.suffix in (".csv", ".part", "")]


def test_erasing_a_subscriber_leaves_none_of_their_data_and_every_count_right(app, client, twilio_app, api):
    incident, program = _a_full_life(client, api)
    assert _found_anywhere()  # the scan finds them before...
    summary = service.recovery_summary(db.session, incident_id=incident.id)
    offer_counts = grants.counts_by_program(db.session, incident.id)
    sent = db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.status == NotificationStatus.SENT))

    admin = _admin_api(client)
    assert api.post(f"/accounts/{NUMBER}/erase").status_code == 403  # an operator's token: admins only
    r = admin.post(f"/accounts/{NUMBER}/erase")
    assert r.status_code == 200, r.get_json()
    erased = r.get_json()["erased"]
    assert erased["messages"] >= 2 and erased["opt_outs_hashed"] == 1 and erased["inbound_sms"] >= 2

    db.session.expire_all()
    assert _found_anywhere() == []  # ... and nowhere after
    for path in _kept_files(app):
        text = path.read_bytes()
        assert not any(v.encode() in text for v in SECRETS), path
    # What must keep working still works.
    assert service.recovery_summary(db.session, incident_id=incident.id) == summary
    assert grants.counts_by_program(db.session, incident.id) == offer_counts
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.status == NotificationStatus.SENT)) == sent
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "account.erase"))
    assert entry.actor.startswith("root@example.com") and entry.after["messages"] == erased["messages"]
    assert admin.post(f"/accounts/{NUMBER}/erase").status_code == 404  # gone

    # The opt-out still holds: the same phone imported again under a new account is not texted.
    [hashed] = db.session.scalars(sa.select(OptOut.address)).all()
    assert hashed.startswith("erased:") and PHONE not in hashed
    run_import(incident.id, HEADER + f"NEW1,Someone New,{PHONE},,en\n")
    assert api.post(f"/incidents/{incident.id}/broadcasts",
                    json={"message": "Update", "channels": ["sms"], "audience": {"states": ["unknown"]}}
                    ).status_code == 201
    worker.run_once(providers={"sms": Log(), "email": Log()})
    to_phone = db.session.scalars(sa.select(Notification.status).where(Notification.recipient == PHONE)).all()
    assert to_phone and set(to_phone) == {NotificationStatus.SUPPRESSED}
    # ... until that number texts START.
    inbound(client, "START", sender=PHONE, sid="SM" + "4" * 32)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OptOut)) == 0


def test_the_cli_erases_after_confirmation(app, runner):
    incident = make_incident()
    run_import(incident.id, HEADER + f"{NUMBER},{NAME},{PHONE},{EMAIL},en\n")
    refused = runner.invoke(args=["accounts", "erase", NUMBER], input="n\n")
    assert refused.exit_code == 1 and db.session.scalar(sa.select(Account.name).where(
        Account.account_number == NUMBER)) == NAME
    result = runner.invoke(args=["accounts", "erase", NUMBER, "--yes"])
    assert result.exit_code == 0, result.output
    assert f"Erased account {NUMBER}" in result.output
    db.session.expire_all()
    assert _found_anywhere() == []
    assert runner.invoke(args=["accounts", "erase", NUMBER, "--yes"]).exit_code == 1


def test_the_console_erases_for_admins_after_the_number_is_typed(app, client):
    incident = make_incident()
    run_import(incident.id, HEADER + f"{NUMBER},{NAME},{PHONE},{EMAIL},en\n")
    sign_in(client, make_operator("operator"))
    assert client.get(f"/ops/accounts/{NUMBER}/erase").status_code == 403
    admin_client = app.test_client()
    sign_in(admin_client, make_operator("admin"))
    page = admin_client.get(f"/ops/incidents/{incident.id}/accounts/{NUMBER}").get_data(as_text=True)
    assert f"/ops/accounts/{NUMBER}/erase" in page
    wrong = post_form(admin_client, f"/ops/accounts/{NUMBER}/erase", {"confirm": "SK"})
    assert wrong.status_code == 422 and f"Type {NUMBER} exactly" in wrong.get_data(as_text=True)
    assert db.session.scalar(sa.select(Account.name).where(Account.account_number == NUMBER)) == NAME
    done = post_form(admin_client, f"/ops/accounts/{NUMBER}/erase", {"confirm": NUMBER}, follow_redirects=True)
    assert done.status_code == 200 and f"Erased account {NUMBER}" in done.get_data(as_text=True)
    db.session.expire_all()
    assert _found_anywhere() == []


@pytest.mark.parametrize("number", ["NOPE", "A%2FB"])
def test_erasing_an_unknown_account_is_404(app, client, number):
    admin = _admin_api(client)
    assert admin.post(f"/accounts/{number}/erase").status_code == 404
    assert not re.search("erase", " ".join(db.session.scalars(sa.select(AuditEntry.action)).all()))


def test_a_phone_shared_with_another_account_stays_that_accounts(app, client, twilio_app):
    incident = make_incident()
    run_import(incident.id, HEADER + f"{NUMBER},{NAME},{PHONE},{EMAIL},en\nFAMILY1,Family Member,{PHONE},,en\n")
    inbound(client, "STOP", sender=PHONE)
    admin = _admin_api(client)
    assert admin.post(f"/accounts/{NUMBER}/erase").status_code == 200
    db.session.expire_all()
    family = db.session.scalar(sa.select(Account).where(Account.account_number == "FAMILY1"))
    assert family.phone == PHONE and family.sms_opt_out
    assert db.session.scalar(sa.select(OptOut.address)) == PHONE  # still theirs, in plain
    found = _found_anywhere()
    assert found and all(PHONE in f or "+12065559876" in f for f in found)  # only the shared phone remains
    assert not any(v in " ".join(found) for v in (NAME, EMAIL, NUMBER))
