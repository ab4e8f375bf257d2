"""Signed unsubscribe links: the confirm page, RFC 8058 one-click POSTs without CSRF, forged tokens refused."""
from urllib.parse import urlsplit

import sqlalchemy as sa
from itsdangerous import URLSafeSerializer

from accounts.models import Account
from core.db import db
from notifications import optouts, providers
from notifications.models import Channel, Notification, OptOut
from notifications.unsubscribe import unsubscribe_url
from tests.conftest import post_form

ADDRESS = "ana@example.net"


def path_of(url: str) -> str:
    return urlsplit(url).path


def opt_out_rows():
    return db.session.execute(sa.select(OptOut.channel, OptOut.address, OptOut.source)).all()


def test_the_link_is_signed_and_under_the_public_base_url(app):
    url = unsubscribe_url("email", ADDRESS)
    assert url.startswith("http://status.example.com/unsubscribe/")
    assert ADDRESS not in url  # signed, not readable as a plain parameter
    assert unsubscribe_url("email", ADDRESS) == url  # stable: every email to the address carries the same link


def test_opening_the_link_asks_first_and_changes_nothing(client):
    page = client.get(path_of(unsubscribe_url("email", ADDRESS)))
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert ADDRESS in html and "Unsubscribe" in html
    assert opt_out_rows() == []  # link scanners and previews open links: they must not unsubscribe anyone


def test_a_one_click_post_without_csrf_opts_the_address_out(client):
    account = Account(account_number="A-1", email=ADDRESS)
    db.session.add(account)
    db.session.commit()

    response = client.post(path_of(unsubscribe_url("email", ADDRESS)), data="List-Unsubscribe=One-Click",
                           content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert "You are unsubscribed" in response.get_data(as_text=True)
    assert opt_out_rows() == [(Channel.EMAIL, ADDRESS, "email:one-click")]
    assert optouts.is_opted_out(db.session, "email", ADDRESS)
    db.session.refresh(account)
    assert account.email_opt_out is True


def test_a_repeated_one_click_post_is_harmless(client):
    path = path_of(unsubscribe_url("email", ADDRESS))
    for _ in range(2):
        assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert len(opt_out_rows()) == 1


def test_the_confirm_form_unsubscribes_too(client):
    path = path_of(unsubscribe_url("email", ADDRESS))
    response = post_form(client, path, {})
    assert response.status_code == 200
    assert opt_out_rows() == [(Channel.EMAIL, ADDRESS, "email:one-click")]


def test_a_forged_or_damaged_token_is_refused_without_unsubscribing_anyone(app, client):
    forged = URLSafeSerializer("not our secret", salt="unsubscribe").dumps(["email", ADDRESS])
    good = unsubscribe_url("email", ADDRESS).rsplit("/", 1)[1]
    wrong_salt = URLSafeSerializer(app.config["SECRET_KEY"], salt="other").dumps(["email", ADDRESS])
    wrong_shape = URLSafeSerializer(app.config["SECRET_KEY"], salt="unsubscribe").dumps(["fax", ADDRESS])
    for token in (forged, good[:-3] + "abc", "nonsense", wrong_salt, wrong_shape):
        for response in (client.get(f"/unsubscribe/{token}"),
                         client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})):
            assert response.status_code == 404
            assert "not recognised" in response.get_data(as_text=True)
    assert opt_out_rows() == []


def test_the_list_unsubscribe_header_of_a_sent_email_works_end_to_end(app, client, smtp_server):
    app.config.update({**smtp_server.env(), "MAIL_FROM": "status@lifeboat.example"})
    message = Notification(id=1, dedupe_key="test:1", channel=Channel.EMAIL, recipient=ADDRESS,
                           subject="Service restored", body="Power is back.")
    providers.from_config(app.config)["email"].send(message)

    header = smtp_server.messages[0]["message"]["List-Unsubscribe"]
    one_click = header.split(",")[0].strip().strip("<>")
    assert client.post(path_of(one_click), data="List-Unsubscribe=One-Click",
                       content_type="application/x-www-form-urlencoded").status_code == 200
    assert optouts.is_opted_out(db.session, "email", ADDRESS)


def test_an_sms_unsubscribe_link_opts_the_number_out(client):
    assert client.post(path_of(unsubscribe_url("sms", "+15551230001"))).status_code == 200
    assert opt_out_rows() == [(Channel.SMS, "+15551230001", "sms:link")]
