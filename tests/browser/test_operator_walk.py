"""An operator's walk in a real browser: sign in, file an incident, choose its data categories, import accounts
and recovery by uploading CSV files, message subscribers through the preview and its confirmation, then create
an offer, preview it, issue it and announce it, each mass action confirmed on its own page. At 1280 px and
360 px; every page checked by axe-core and for JavaScript errors."""
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core.db import db, utcnow
from notifications.models import Account, Broadcast
from offers.models import OfferGrant
from tests.conftest import PASSWORD, make_operator

pytestmark = pytest.mark.browser
ACCOUNTS = "account_number,name,phone,email,locale\n" + "".join(
    f"SK1000{i:02d},Person {i},+1206555{i:04d},p{i}@example.com,{'es' if i % 3 == 0 else 'en'}\n" for i in range(1, 13))
RECOVERY = "account_number,category,state,items_total,items_recovered,note\n" + "".join(
    f"SK1000{i:02d},photos,{'lost' if i % 2 else 'recovered'},100,{0 if i % 2 else 100},\n" for i in range(1, 13))


def upload(b, tmp_path, link: str, name: str, text: str) -> None:
    b.click(link)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    b.page.set_input_files("input[type=file]", str(path))
    b.click("Upload and import", role="button", check=f"{name} importing")
    b.page.wait_for_function("() => !document.querySelector('[data-poll]')", timeout=30_000)
    b.check(f"{name} imported")
    assert re.search(r"\b12\b", b.page.inner_text("main")), b.page.inner_text("main")[:500]


def sign_in_as(b, email: str) -> None:
    b.goto("/ops/sign-in", "sign in")
    b.page.get_by_label("Email").fill(email)
    b.page.get_by_label("Password").fill(PASSWORD)
    b.click("Sign in", role="button", check="console home")


def back_to_incident(b, name: str) -> None:
    b.click("Incidents")
    b.click(name, check="incident page")


def test_an_operator_files_imports_broadcasts_and_offers(browser, tmp_path):
    b = browser
    make_operator("operator", email="ops@example.com")
    sign_in_as(b, "ops@example.com")

    b.click("Incidents")
    b.click("File an incident")
    b.page.get_by_label("Name").fill("Sidekick data loss")
    b.page.locator("input[name=impact][value=critical]").check()
    b.page.get_by_label("Public message").fill("We are restoring **personal data** for affected subscribers.")
    assert b.page.get_by_label("Notify subscribers").is_disabled()  # nobody to notify yet, and it says why
    b.click("File incident", role="button", check="incident filed")
    assert "Incident filed" in b.page.inner_text("main")

    b.click("Recovery", exact=True)
    b.page.get_by_role("textbox", name="Data categories").fill("contacts photos")
    b.click("Save categories", role="button", check="categories saved")
    back_to_incident(b, "Sidekick data loss")
    upload(b, tmp_path, "Import accounts", "accounts.csv", ACCOUNTS)
    back_to_incident(b, "Sidekick data loss")
    upload(b, tmp_path, "Import recovery", "recovery.csv", RECOVERY)

    back_to_incident(b, "Sidekick data loss")
    b.click("Message subscribers")
    b.page.get_by_label("Message", exact=True).fill("We found most photos. Check your page for yours.")
    b.click("Preview", role="button", exact=True, check="broadcast preview")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Broadcast)) == 0  # a preview sends nothing
    b.click("Send 24 messages", role="button", check="broadcast progress")
    assert db.session.scalars(sa.select(Broadcast)).one().recipients == 24

    back_to_incident(b, "Sidekick data loss")
    b.click("Compensation offers")
    b.page.get_by_label("Name").fill("Lost photos")
    b.page.get_by_label("Description (shown to subscribers)").fill("A **$100 gift card** for lost photos.")
    b.page.get_by_label("Value per grant").fill("100.00")
    b.page.locator("input[name=eligible_states][value=lost]").check()
    b.page.get_by_label("Valid until (UTC)").fill((utcnow() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M"))
    b.click("Preview", role="button", exact=True, check="offer preview")
    assert "6 accounts are eligible" in b.page.inner_text("main")
    b.click("Create offer", role="button", check="offer created")
    b.click("Issue to newly eligible accounts", role="button", check="issue confirmation")
    assert "6 new offers" in b.page.inner_text("main") and db.session.scalar(
        sa.select(sa.func.count()).select_from(OfferGrant)) == 0
    b.click("Issue the offers", role="button", check="offers issued")
    b.click("Tell subscribers (SMS and email)", role="button", check="announce confirmation")
    assert re.search(r"12:\s+6 SMS, 6 email", b.page.inner_text("main"))
    b.click("Queue the messages", role="button", check="offers announced")
    assert "Queued 12 messages." in b.page.inner_text("main")

    # -- The message log: search one subscriber's messages and read one's history.
    b.click("Messages", exact=True, check="message log")
    b.page.get_by_label("Recipient or account number").fill("SK100001")
    b.click("Search", role="button", exact=True, check="messages of one account")
    rows = b.page.locator("main tbody tr")
    assert rows.count() >= 2 and all("SK100001" in rows.nth(i).inner_text() for i in range(rows.count()))
    rows.first.get_by_role("link").first.click()
    b.page.wait_for_load_state("load")
    b.check("message detail")
    assert "History" in b.page.inner_text("main") and "Queued" in b.page.inner_text("main")


def test_an_admin_erases_a_subscriber_who_asks_to_be_forgotten(browser, tmp_path):
    from tests.accounts.factories import make_incident, run_import

    b = browser
    make_operator("admin", email="root@example.com")
    incident = make_incident()
    run_import(incident.id, ACCOUNTS)
    sign_in_as(b, "root@example.com")
    b.goto(f"/ops/incidents/{incident.id}/accounts/SK100003", "account page")
    b.click("Erase this subscriber's personal data…", check="erase confirmation")
    assert "Person 3" in b.page.inner_text("main") and "cannot be undone" in b.page.inner_text("main")
    b.page.get_by_label("Type the account number to confirm").fill("SK1000")
    b.expect_status(422)  # a wrong confirmation is refused, and says what to type
    b.click("Erase this subscriber", role="button", exact=True, check="erase refused")
    assert "Type SK100003 exactly" in b.page.inner_text("main")
    b.page.get_by_label("Type the account number to confirm").fill("SK100003")
    b.click("Erase this subscriber", role="button", exact=True, check="erased")
    assert "Erased account SK100003" in b.page.inner_text("main")
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Account).where(Account.name == "Person 3")) == 0


def test_an_operator_imports_subscribers_and_finds_one(browser, tmp_path):
    b = browser
    make_operator("operator", email="ops@example.com")
    sign_in_as(b, "ops@example.com")
    b.goto("/ops/subscriptions", "subscriptions")
    b.page.get_by_text("Import subscribers").click()
    path = tmp_path / "subscribers.csv"
    path.write_text("address,channel\nnews@example.org,email\n+12065550188,sms\n", encoding="utf-8")
    b.page.get_by_label("CSV file").set_input_files(str(path))
    b.page.get_by_label("How did these people agree to get updates?").fill("Opted in on the 2026 portal form")
    b.click("Import", role="button", exact=True, check="subscribers imported")
    assert "Imported: 2 added" in b.page.inner_text("main")
    b.page.get_by_label("Email address or phone number").fill("(206) 555-0188")
    b.click("Search", role="button", exact=True, check="subscription found")
    assert "+12065550188" in b.page.inner_text("main") and "news@example.org" not in b.page.inner_text("main")
