"""SmtpProvider against a real SMTP server on loopback: the email it hands over, and how failures are classified."""
import socket
import threading

import pytest

from notifications import providers
from notifications.models import Channel, Notification
from notifications.providers import ProviderError
from notifications.smtp_provider import SmtpProvider
from tests.peers.smtp_server import SmtpServer

TO = "ana@example.net"


def email(body: str = "Power is back.\n\nThank you for your patience & <care>.", html_body: str | None = None,
          id: int = 7, to: str = TO) -> Notification:
    return Notification(id=id, dedupe_key=f"broadcast:3:email:{to}", channel=Channel.EMAIL, recipient=to,
                        subject="Service restored", body=body, html_body=html_body)


def provider_for(app, server, **settings) -> SmtpProvider:
    app.config.update({**server.env(), "MAIL_FROM": "Lifeboat <status@lifeboat.example>", **settings})
    return providers.from_config(app.config)["email"]


def send_error(provider, message=None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        provider.send(message or email())
    return caught.value


def test_an_email_has_text_and_html_parts_and_unsubscribe_headers(app, smtp_server):
    sent = provider_for(app, smtp_server).send(email())

    [received] = smtp_server.messages
    message = received["message"]
    assert received["mail_from"] == "status@lifeboat.example" and received["rcpt_tos"] == [TO]
    assert message["From"] == "Lifeboat <status@lifeboat.example>" and message["Subject"] == "Service restored"
    assert message.get_body("plain").get_content().startswith("Power is back.")
    html = message.get_body("html").get_content()
    assert "<p>Power is back.</p>" in html and "&amp; &lt;care&gt;" in html
    https, mailto = message["List-Unsubscribe"].split(", ")
    assert https.startswith("<http://status.example.com/unsubscribe/") and https.endswith(">")
    assert mailto == "<mailto:status@lifeboat.example?subject=unsubscribe>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"] == f"<{sent.provider_id}>"


def test_the_html_body_is_used_when_the_message_has_one(app, smtp_server):
    provider_for(app, smtp_server).send(email(html_body="<h1>Restored</h1>"))
    assert "<h1>Restored</h1>" in smtp_server.messages[0]["message"].get_body("html").get_content()


def test_a_resend_of_the_same_row_has_the_same_message_id(app, smtp_server):
    provider = provider_for(app, smtp_server)
    first, again = provider.send(email()), provider.send(email())
    other = provider.send(email(id=8, to="bo@example.net"))

    ids = [m["message"]["Message-ID"] for m in smtp_server.messages]
    assert ids[0] == ids[1] == f"<{first.provider_id}>" and first == again
    assert ids[0].startswith("<lifeboat.7.") and ids[0].endswith("@lifeboat.example>")
    assert ids[2] != ids[0] and other.provider_id.startswith("lifeboat.8.")


def test_the_mailto_unsubscribe_can_be_left_out(app, smtp_server):
    provider_for(app, smtp_server, UNSUBSCRIBE_MAILTO="").send(email())
    assert "mailto:" not in smtp_server.messages[0]["message"]["List-Unsubscribe"]


@pytest.mark.parametrize("stage, code, retryable", [
    ("rcpt", 451, True), ("rcpt", 550, False), ("data", 451, True), ("data", 554, False),
])
def test_4xx_answers_are_retried_and_5xx_answers_fail_for_good(app, smtp_server, stage, code, retryable):
    smtp_server.refuse_next(code=code, message="refused for the test", stage=stage)
    error = send_error(provider_for(app, smtp_server))
    assert (error.code, error.retryable, error.ambiguous) == (f"smtp:{code}", retryable, False)
    assert "refused for the test" in error.message
    assert smtp_server.messages == []


def test_auth_is_used_when_a_username_is_set(app, smtp_server_auth):
    provider_for(app, smtp_server_auth).send(email())
    assert len(smtp_server_auth.messages) == 1 and smtp_server_auth.failed_logins == 0


def test_a_wrong_password_is_retried_until_the_settings_are_fixed(app, smtp_server_auth):
    error = send_error(provider_for(app, smtp_server_auth, SMTP_PASSWORD="wrong"))
    assert (error.code, error.retryable) == ("smtp:535", True)
    assert smtp_server_auth.failed_logins >= 1  # smtplib tries each mechanism


def test_starttls_is_used_when_configured(app):
    with SmtpServer(starttls=True) as server:
        provider = SmtpProvider(host=server.host, port=server.port, starttls=True,
                                mail_from="status@lifeboat.example", tls_context=server.client_tls_context())
        provider.send(email())
        assert len(server.messages) == 1


def test_an_unreachable_server_is_retried(app, smtp_server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    error = send_error(provider_for(app, smtp_server, SMTP_PORT=str(port)))
    assert (error.code, error.retryable, error.ambiguous) == ("connection", True, False)


class SilentServer:
    """A bare SMTP server that goes quiet: at once (no greeting), or after taking a whole message."""

    def __init__(self, *, greet: bool):
        self.greet, self.received = greet, False
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.sock.accept()
        with conn:
            if self.greet:
                self._talk(conn)
            self.done.wait(5)

    def _talk(self, conn):
        conn.sendall(b"220 silent ESMTP\r\n")
        buffer, in_data = b"", False
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buffer += chunk
            if in_data:
                if b"\r\n.\r\n" in buffer:
                    self.received = True
                    return  # the message is complete: never answer it
                continue
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                verb = line[:4].upper()
                if verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    in_data = True
                    break
                conn.sendall(b"250 ok\r\n")

    def close(self):
        self.done.set()
        self.sock.close()


@pytest.mark.parametrize("greet, code, retryable, ambiguous", [
    (False, "connection", True, False),  # nothing was sent: safe to try again
    (True, "timeout", False, True),  # the whole message went out, then silence: it may be delivered
])
def test_a_silent_server_is_retried_before_data_and_ambiguous_after(app, greet, code, retryable, ambiguous):
    server = SilentServer(greet=greet)
    try:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=server.port, SMTP_STARTTLS="", SMTP_USERNAME="",
                          SMTP_TIMEOUT_SECONDS=0.5, MAIL_FROM="status@lifeboat.example")
        error = send_error(providers.from_config(app.config)["email"])
    finally:
        server.close()
    assert (error.code, error.retryable, error.ambiguous) == (code, retryable, ambiguous)
    assert server.received is greet
