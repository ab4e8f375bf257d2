"""The SMTP peer is a real server: smtplib delivers to it, and its scripted refusals reach smtplib as the
exceptions a real server's 4xx/5xx answers raise."""
import shutil
import smtplib
from email.message import EmailMessage

import pytest

from tests.peers.fixtures import smtp_server, smtp_server_auth  # noqa: F401  (fixtures)
from tests.peers.smtp_server import SmtpServer

SENDER = "status@lifeboat.example"


def _message(to: str = "ana@example.com", subject: str = "Outage update") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = SENDER, to, subject
    message.set_content("We are restoring service. Ünïcode survives.")
    return message


def _send(server, message: EmailMessage, **login):
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        if login:
            client.login(login["user"], login["password"])
        return client.send_message(message)


def test_a_message_sent_with_smtplib_is_received_and_parsed(smtp_server):
    assert _send(smtp_server, _message()) == {}

    [received] = smtp_server.messages
    assert (received["mail_from"], received["rcpt_tos"]) == (SENDER, ["ana@example.com"])
    assert received["message"]["Subject"] == "Outage update"
    assert "Ünïcode survives" in received["message"].get_content()


def test_a_temporary_refusal_at_rcpt_raises_recipients_refused_with_its_code(smtp_server):
    smtp_server.refuse_next(1, code=451, message="4.3.0 Try again later")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        _send(smtp_server, _message())

    assert caught.value.recipients == {"ana@example.com": (451, b"4.3.0 Try again later")}
    assert smtp_server.messages == [] and smtp_server.refusals[0]["code"] == 451
    _send(smtp_server, _message())
    assert len(smtp_server.messages) == 1


def test_a_permanent_refusal_for_one_recipient_leaves_the_others_delivered(smtp_server):
    smtp_server.refuse_for("gone@example.com", code=550, message="5.1.1 Mailbox unavailable")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        _send(smtp_server, _message(to="gone@example.com"))
    refused = _send(smtp_server, _message(to="gone@example.com, ana@example.com"))

    assert caught.value.recipients["gone@example.com"][0] == 550
    assert refused == {"gone@example.com": (550, b"5.1.1 Mailbox unavailable")}
    assert [m["rcpt_tos"] for m in smtp_server.messages] == [["ana@example.com"]]


@pytest.mark.parametrize("code, text", [(451, "4.3.0 Try again later"), (554, "5.6.0 Message rejected")])
def test_a_refusal_at_data_raises_data_error_with_its_code(smtp_server, code, text):
    smtp_server.refuse_next(1, code=code, message=text, stage="data")

    with pytest.raises(smtplib.SMTPDataError) as caught:
        _send(smtp_server, _message())

    assert (caught.value.smtp_code, caught.value.smtp_error) == (code, text.encode())
    assert smtp_server.messages == []


def test_a_recipient_refused_at_data_fails_the_whole_message(smtp_server):
    smtp_server.refuse_for("ana@example.com", code=552, message="5.2.2 Mailbox full", stage="data")
    with pytest.raises(smtplib.SMTPDataError) as caught:
        _send(smtp_server, _message())
    assert caught.value.smtp_code == 552
    smtp_server.clear_refusals()
    _send(smtp_server, _message())
    assert len(smtp_server.messages) == 1


def test_auth_mode_requires_the_right_credentials(smtp_server_auth):
    env = smtp_server_auth.env()

    with pytest.raises(smtplib.SMTPSenderRefused) as anonymous:
        _send(smtp_server_auth, _message())
    with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
        _send(smtp_server_auth, _message(), user=env["SMTP_USERNAME"], password="nope")
    _send(smtp_server_auth, _message(), user=env["SMTP_USERNAME"], password=env["SMTP_PASSWORD"])

    assert anonymous.value.smtp_code == 530 and wrong.value.smtp_code == 535
    assert len(smtp_server_auth.messages) == 1 and smtp_server_auth.failed_logins >= 1  # smtplib tries each mechanism


@pytest.mark.skipif(not shutil.which("openssl"), reason="STARTTLS mode makes its certificate with openssl")
def test_starttls_mode_upgrades_the_connection_before_auth():
    with SmtpServer(auth=True, starttls=True) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPException):
                client.login(server.username, server.password)  # no AUTH offered before TLS
            client.starttls(context=server.client_tls_context())
            client.login(server.username, server.password)
            client.send_message(_message())
        assert len(server.messages) == 1


def test_each_client_connection_is_counted_and_each_message_notes_its_connection(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.send_message(_message())
        client.send_message(_message(subject="Second on the same connection"))
        assert smtp_server.open_connections == 1
    _send(smtp_server, _message(subject="On a connection of its own"))

    assert smtp_server.connections == 2 and smtp_server.quits == 2
    assert [m["connection"] for m in smtp_server.messages] == [1, 1, 2]
    assert smtp_server.wait_for_connections(0)


def test_dropped_connections_are_closed_without_a_word(smtp_server):
    client = smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5)
    client.send_message(_message())

    assert smtp_server.drop_connections() == 1
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.send_message(_message())
    assert smtp_server.open_connections == 0 and smtp_server.quits == 0
    assert len(smtp_server.messages) == 1
