"""SmtpProvider against a real SMTP server on loopback: the email it hands over, and how failures are classified."""
import socket
import threading

import pytest

from core.db import db
from notifications import providers, service, worker
from notifications.models import Channel, Notification, NotificationStatus
from notifications.providers import LogProvider, ProviderError
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


def provider_at(server, **options) -> SmtpProvider:
    """A provider for `server` built directly, for the connection options (idle, cap, clock)."""
    if server.starttls:
        options.update(starttls=True, tls_context=server.client_tls_context())
    if server.requires_auth:
        options.update(username=server.username, password=server.password)
    return SmtpProvider(host=server.host, port=server.port, mail_from="status@lifeboat.example", **options)


class Clock:
    """A monotonic clock the test moves on."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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
    """A bare SMTP server that goes quiet: at once (no greeting), or after taking a whole message (after
    answering the first `answered` messages of the connection)."""

    def __init__(self, *, greet: bool, answered: int = 0):
        self.greet, self.received, self.answered, self.messages = greet, False, answered, 0
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
                    self.messages += 1
                    if self.messages > self.answered:
                        self.received = True
                        return  # the message is complete: never answer it
                    conn.sendall(b"250 queued\r\n")
                    buffer, in_data = buffer.split(b"\r\n.\r\n", 1)[1], False
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


# ---- connections ---------------------------------------------------------------------------------------

def test_many_emails_share_one_connection_until_close(app, smtp_server):
    provider = provider_at(smtp_server)
    for i in range(25):
        provider.send(email(id=i, to=f"p{i}@example.net"))

    assert len(smtp_server.messages) == 25 and smtp_server.connections == 1
    assert {m["connection"] for m in smtp_server.messages} == {1} and smtp_server.quits == 0
    provider.close()
    assert smtp_server.quits == 1 and smtp_server.wait_for_connections(0)
    provider.send(email())  # still works after close(): a new connection
    assert smtp_server.connections == 2 and len(smtp_server.messages) == 26


def test_each_sending_thread_has_its_own_connection(app, smtp_server):
    provider = provider_at(smtp_server)

    def send_ten(t):
        with app.app_context():  # the unsubscribe link is built from the app's PUBLIC_BASE_URL
            for i in range(10):
                provider.send(email(id=100 * t + i, to=f"t{t}.{i}@example.net"))

    threads = [threading.Thread(target=send_ten, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    per_connection = {}
    for m in smtp_server.messages:
        per_connection[m["connection"]] = per_connection.get(m["connection"], 0) + 1
    assert smtp_server.connections == 4 and sorted(per_connection.values()) == [10, 10, 10, 10]
    provider.close()
    assert smtp_server.quits == 4


def test_a_connection_is_closed_after_the_cap_and_a_new_one_opened(app, smtp_server):
    provider = provider_at(smtp_server, max_per_connection=3)
    for i in range(7):
        provider.send(email(id=i))

    assert [m["connection"] for m in smtp_server.messages] == [1, 1, 1, 2, 2, 2, 3]
    assert smtp_server.quits == 2  # politely, right after the third email of each


def test_the_cap_of_one_is_a_connection_per_email(app, smtp_server):
    app.config["SMTP_MAX_PER_CONNECTION"] = "1"
    provider = provider_for(app, smtp_server)
    for i in range(3):
        provider.send(email(id=i))
    assert smtp_server.connections == 3 and smtp_server.quits == 3 and smtp_server.wait_for_connections(0)


@pytest.mark.parametrize("idle", [0.0, 6.0])  # reused at once (MAIL finds it gone), or after NOOP finds it gone
def test_a_connection_the_server_dropped_is_replaced_without_failing_the_email(app, smtp_server, idle):
    clock = Clock()
    provider = provider_at(smtp_server, clock=clock)
    provider.send(email(id=1))
    assert smtp_server.drop_connections() == 1
    clock.now += idle

    provider.send(email(id=2))  # no ProviderError: nothing had been handed over on the dead connection

    assert [m["connection"] for m in smtp_server.messages] == [1, 2]
    provider.send(email(id=3))
    assert smtp_server.connections == 2


def test_a_421_on_a_reused_connection_is_retried_on_a_fresh_one(app, smtp_server):
    provider = provider_at(smtp_server)
    provider.send(email(id=1))
    smtp_server.refuse_next(code=421, message="4.4.2 Closing connection")
    provider.send(email(id=2))
    assert [m["connection"] for m in smtp_server.messages] == [1, 2]


def test_a_dead_connection_and_an_unreachable_server_is_one_retryable_failure(app):
    server = SmtpServer().start()
    provider = provider_at(server)
    provider.send(email(id=1))
    server.stop()
    error = send_error(provider, email(id=2))
    assert (error.code, error.retryable, error.ambiguous) == ("connection", True, False)


def test_a_connection_idle_past_smtp_idle_seconds_is_closed_and_replaced(app, smtp_server):
    clock = Clock()
    app.config["SMTP_IDLE_SECONDS"] = "10"
    provider = provider_for(app, smtp_server)
    provider.clock, provider._last_sweep = clock, clock.now

    def send_once():  # a thread that then stops sending
        with app.app_context():
            provider.send(email(id=1))

    other = threading.Thread(target=send_once)
    other.start(), other.join(10)
    provider.send(email(id=2))
    assert smtp_server.connections == 2 and smtp_server.quits == 0
    clock.now += 9
    provider.send(email(id=3))  # not idle long enough: the same connection
    clock.now += 11

    provider.send(email(id=4))  # both idle connections are QUIT; this email goes on a new one

    assert [m["connection"] for m in smtp_server.messages] == [1, 2, 2, 3]
    assert smtp_server.quits == 2 and smtp_server.wait_for_connections(1)


@pytest.mark.parametrize("stage, code, retryable", [("rcpt", 550, False), ("data", 451, True), ("rcpt", 452, True)])
def test_a_refusal_on_a_reused_connection_is_classified_and_the_connection_kept(app, smtp_server, stage, code,
                                                                                 retryable):
    provider = provider_at(smtp_server)
    provider.send(email(id=1))
    smtp_server.refuse_next(code=code, message="refused for the test", stage=stage)

    error = send_error(provider, email(id=2))
    provider.send(email(id=3))

    assert (error.code, error.retryable, error.ambiguous) == (f"smtp:{code}", retryable, False)
    assert [m["connection"] for m in smtp_server.messages] == [1, 1] and smtp_server.connections == 1


def test_silence_after_data_on_a_reused_connection_is_ambiguous_and_not_resent(app):
    server = SilentServer(greet=True, answered=1)
    try:
        provider = SmtpProvider(host="127.0.0.1", port=server.port, mail_from="status@lifeboat.example", timeout=0.5)
        provider.send(email(id=1))
        error = send_error(provider, email(id=2))
    finally:
        server.close()
    assert (error.code, error.retryable, error.ambiguous) == ("timeout", False, True)
    assert server.messages == 2  # sent once, over the reused connection: no blind second try


def test_starttls_and_auth_are_done_once_per_connection(app):
    with SmtpServer(auth=True, starttls=True) as server:
        provider = provider_at(server)
        for i in range(3):
            provider.send(email(id=i))
        server.drop_connections()
        provider.send(email(id=3))  # the fresh connection does STARTTLS and AUTH again
        assert [m["connection"] for m in server.messages] == [1, 1, 1, 2]
        assert server.failed_logins == 0


def test_the_worker_reuses_connections_and_closes_them_when_it_stops(app, smtp_server):
    provider = provider_at(smtp_server)
    for run in range(2):  # the same provider, run after run
        for i in range(6):
            service.enqueue(db.session, dedupe_key=f"r{run}:{i}", channel=Channel.EMAIL, recipient=f"p{i}@example.net",
                            subject="Update", body="Your photos are back.", urgent=True)
        db.session.commit()
        assert worker.run_once(db.session, providers={"sms": LogProvider(), "email": provider},
                               concurrency=2, email_rate=1000) == 6
        assert smtp_server.wait_for_connections(0)  # close(): every connection ended with QUIT

    statuses = db.session.scalars(db.select(Notification.status)).all()
    assert statuses == [NotificationStatus.SENT] * 12 and len(smtp_server.messages) == 12
    assert smtp_server.connections <= 4 and smtp_server.quits == smtp_server.connections
