"""TwilioProvider against the Twilio stand-in: what reaches Twilio, and how each failure is classified."""
import socket
import threading

import pytest

from notifications import providers
from notifications.models import Channel, Notification
from notifications.providers import LogProvider, ProviderError
from notifications.smtp_provider import SmtpProvider
from notifications.twilio_provider import TwilioProvider
from tests.notifications.processes import wait_until
from tests.peers.twilio_standin import FROM_NUMBER, MESSAGING_SERVICE_SID

TO = "+15551230001"


def sms(body: str = "Service is restored in your area.", to: str = TO, id: int = 1) -> Notification:
    return Notification(id=id, dedupe_key=f"test:{id}:sms:{to}", channel=Channel.SMS, recipient=to, body=body)


@pytest.fixture
def twilio(app, twilio_standin):
    """A TwilioProvider built from settings that point at the stand-in."""
    app.config.update(twilio_standin.env())
    return providers.from_config(app.config)["sms"]


def send_error(provider, message=None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        provider.send(message or sms())
    return caught.value


def test_a_message_reaches_twilio_with_to_from_body_and_status_callback(twilio, twilio_standin):
    sent = twilio.send(sms("Power is back on Elm Street."))

    [message] = twilio_standin.messages
    assert isinstance(twilio, TwilioProvider)
    assert sent.provider_id == message["sid"] and sent.provider_id.startswith("SM")
    assert sent.segments == 1
    assert (message["to"], message["from"], message["body"]) == (TO, FROM_NUMBER, "Power is back on Elm Street.")
    assert message["status_callback"] == "http://status.example.com/webhooks/twilio/status"


def test_a_long_message_reports_the_segments_twilio_billed(twilio):
    assert twilio.send(sms("x" * 400)).segments == 3


def test_a_messaging_service_is_used_instead_of_a_from_number_when_configured(app, twilio_standin):
    app.config.update(twilio_standin.env(), TWILIO_MESSAGING_SERVICE_SID=MESSAGING_SERVICE_SID)
    providers.from_config(app.config)["sms"].send(sms())

    [message] = twilio_standin.messages
    assert message["messaging_service_sid"] == MESSAGING_SERVICE_SID
    assert message["from"] is None


def test_one_client_per_thread_is_reused_and_threads_send_side_by_side(twilio, twilio_standin):
    assert twilio.client is twilio.client
    clients, errors = [], []

    def work(n):
        try:
            clients.append(twilio.client)
            for i in range(3):
                twilio.send(sms(f"message {n}-{i}", to=f"+1555123{n:04d}"))
        except Exception as e:  # noqa: BLE001 — reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(twilio_standin.messages) == 18
    assert len({id(c) for c in clients}) == 6
    assert all(c.http_client.timeout == 10 for c in clients)


@pytest.mark.parametrize("code", [21211, 21614, 30005, 30006, 21408])
def test_invalid_or_unreachable_numbers_fail_for_good(twilio, twilio_standin, code):
    twilio_standin.fail_next(code=code, status=400)
    error = send_error(twilio)
    assert (error.code, error.retryable, error.ambiguous, error.opt_out) == (str(code), False, False, False)


def test_a_recipient_who_replied_stop_is_an_opt_out_not_a_retry(twilio, twilio_standin):
    twilio_standin.fail_for(TO, code=21610)
    error = send_error(twilio)
    assert (error.code, error.retryable, error.opt_out) == ("21610", False, True)
    assert "unsubscribed" in error.message


@pytest.mark.parametrize("script, code", [
    (lambda s: s.throttle(), "20429"),
    (lambda s: s.fail_next(code=20429, status=400), "20429"),
    (lambda s: s.server_error(status=503), "20503"),
    (lambda s: s.server_error(status=500), "20500"),
    (lambda s: s.fail_next(code=30003, status=400), "30003"),
    (lambda s: s.fail_next(code=30001, status=400), "30001"),
])
def test_throttling_server_errors_and_temporary_failures_are_retried(twilio, twilio_standin, script, code):
    script(twilio_standin)
    error = send_error(twilio)
    assert (error.code, error.retryable, error.ambiguous) == (code, True, False)
    assert twilio_standin.messages == []


def test_a_retry_after_a_throttle_goes_through(twilio, twilio_standin):
    twilio_standin.throttle()
    send_error(twilio)
    assert twilio.send(sms()).provider_id == twilio_standin.messages[0]["sid"]


def test_a_timeout_after_twilio_received_the_message_is_ambiguous(app, twilio_standin):
    app.config.update(twilio_standin.env(), TWILIO_TIMEOUT_SECONDS=0.3)
    twilio_standin.hang_after_receive(3)
    error = send_error(providers.from_config(app.config)["sms"])

    assert (error.code, error.retryable, error.ambiguous) == ("timeout", False, True)
    # Twilio did take it (the stand-in records it once it has checked the request, which on a loaded host
    # can take longer than the client's 0.3 s): a blind resend would text twice.
    wait_until(lambda: twilio_standin.messages, 10)
    assert len(twilio_standin.messages) == 1


def test_an_unreachable_api_is_retried(app, twilio_standin):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.config.update(twilio_standin.env(), TWILIO_API_BASE_URL=f"http://127.0.0.1:{port}")
    error = send_error(providers.from_config(app.config)["sms"])
    assert (error.code, error.retryable, error.ambiguous) == ("connection", True, False)


def test_wrong_credentials_are_retried_until_the_settings_are_fixed(app, twilio_standin):
    app.config.update(twilio_standin.env(), TWILIO_AUTH_TOKEN="f" * 32)
    error = send_error(providers.from_config(app.config)["sms"])
    assert (error.code, error.retryable) == ("20003", True)


def test_without_settings_each_channel_falls_back_to_the_log_provider(app):
    configured = providers.from_config(app.config)
    assert isinstance(configured["sms"], LogProvider) and isinstance(configured["email"], LogProvider)
    assert configured["sms"].send(sms()).provider_id == "log-1"


def test_twilio_without_a_sender_stays_on_the_log_provider(app, twilio_standin):
    app.config.update(twilio_standin.env(), TWILIO_FROM_NUMBER="")
    assert isinstance(providers.from_config(app.config)["sms"], LogProvider)


def test_both_channels_are_configured_side_by_side(app, twilio_standin, smtp_server):
    app.config.update({**twilio_standin.env(), **smtp_server.env()})
    configured = providers.from_config(app.config)
    assert isinstance(configured["sms"], TwilioProvider) and isinstance(configured["email"], SmtpProvider)


def test_a_connection_dropped_after_the_request_went_out_is_ambiguous(app, twilio_standin):
    server = socket.create_server(("127.0.0.1", 0))
    received = []

    def take_request_then_hang_up():
        conn, _ = server.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(body) < length:
                body += conn.recv(65536)
            received.append(body)  # the whole request arrived: then the line goes dead, no answer

    thread = threading.Thread(target=take_request_then_hang_up, daemon=True)
    thread.start()
    app.config.update(twilio_standin.env(), TWILIO_API_BASE_URL=f"http://127.0.0.1:{server.getsockname()[1]}")
    try:
        error = send_error(providers.from_config(app.config)["sms"])
    finally:
        thread.join(5)
        server.close()
    assert received and b"Body=" in received[0]
    assert (error.code, error.retryable, error.ambiguous) == ("connection_lost", False, True)


def test_pace_runs_once_right_before_the_request_leaves_and_not_sent_aborts_it(twilio, twilio_standin):
    """The rate limiter is asked as the HTTP request goes out (after the library built it), so it counts the
    moment Twilio sees; a pace that raises NotSent gives the message back with nothing sent."""
    import time

    from notifications.providers import NotSent

    twilio.warm_up()
    calls = []

    def pace():
        calls.append((time.monotonic(), len(twilio_standin.messages)))

    sent = twilio.send(sms(), pace=pace)
    assert sent.provider_id.startswith("SM") and len(calls) == 1
    assert calls[0][1] == 0 and twilio_standin.accepted_at[0] - calls[0][0] < 0.5  # asked before, just before

    def refuse():
        raise NotSent

    with pytest.raises(NotSent):
        twilio.send(sms(to="+12065550111", id=2), pace=refuse)
    assert len(twilio_standin.messages) == 1  # nothing reached Twilio
    twilio.send(sms(to="+12065550112", id=3))  # without pace, as before; a refused pace is not left behind
    assert len(twilio_standin.messages) == 2
