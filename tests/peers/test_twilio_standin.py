"""The Twilio stand-in answers the official `twilio` library like Twilio does, checks every request against
Twilio's own API description, and plays the failures tests script."""
import threading
import time

import pytest
import requests
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from tests.peers.fixtures import twilio_spec, twilio_standin  # noqa: F401  (fixtures)
from tests.peers.twilio_standin import FROM_NUMBER, MESSAGING_SERVICE_SID, segments, sign, twilio_document

TO = "+15005550010"
CALLBACK = "https://status.example.com/webhooks/twilio/status"


def _send(standin, **fields):
    return standin.client(timeout=5).messages.create(**{"to": TO, "from_": FROM_NUMBER, "body": "Hi", **fields})


def _raise_code(standin, **fields) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        _send(standin, **fields)
    return caught.value


def _raw_post(standin, data, auth=True, account_sid=None):
    sid = account_sid or standin.account_sid
    return requests.post(f"{standin.base_url}/2010-04-01/Accounts/{sid}/Messages.json", data=data, timeout=5,
                         auth=(standin.account_sid, standin.auth_token) if auth else None)


class _AsTwilio(RequestsOpenAPIRequest):
    @property
    def host_url(self) -> str:
        return twilio_document()["servers"][0]["url"]


def test_the_twilio_library_creates_a_message_and_gets_a_twilio_shaped_answer(twilio_standin):
    message = _send(twilio_standin, status_callback=CALLBACK)

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert (message.status, message.to, message.from_, message.body) == ("queued", TO, FROM_NUMBER, "Hi")
    assert message.num_segments == "1" and message.date_created.tzinfo is not None
    assert message.uri == f"/2010-04-01/Accounts/{twilio_standin.account_sid}/Messages/{message.sid}.json"
    [recorded] = twilio_standin.messages
    assert (recorded["to"], recorded["from"], recorded["body"], recorded["status_callback"]) == (
        TO, FROM_NUMBER, "Hi", CALLBACK)
    assert twilio_standin.client().messages(message.sid).fetch().body == "Hi"


def test_answers_match_the_response_schema_in_twilios_description(twilio_standin, twilio_spec):
    auth = (twilio_standin.account_sid, twilio_standin.auth_token)
    created = requests.post(f"{twilio_standin.base_url}/2010-04-01/Accounts/{auth[0]}/Messages.json",
                            data={"To": TO, "MessagingServiceSid": MESSAGING_SERVICE_SID, "Body": "Hi"}, auth=auth)
    fetched = requests.get(f"{twilio_standin.base_url}{created.json()['uri']}", auth=auth)

    assert (created.status_code, fetched.status_code) == (201, 200)
    for answer in (created, fetched):
        twilio_spec.validate_response(_AsTwilio(answer.request), RequestsOpenAPIResponse(answer))
    assert created.json()["from"] is None and created.json()["messaging_service_sid"] == MESSAGING_SERVICE_SID


def test_a_request_without_to_is_refused_and_recorded_as_invalid(twilio_standin):
    error = _raise_code(twilio_standin, to=None)

    assert (error.status, error.code) == (400, 21604)
    [invalid] = twilio_standin.take_invalid()
    assert "'To' is a required property" in invalid["errors"] and twilio_standin.messages == []


def test_a_request_without_body_is_refused_and_recorded_as_invalid(twilio_standin):
    error = _raise_code(twilio_standin, body=None)

    assert (error.status, error.code) == (400, 21602)
    assert len(twilio_standin.take_invalid()) == 1 and twilio_standin.messages == []


def test_a_request_without_a_sender_is_refused_and_recorded_as_invalid(twilio_standin):
    assert _raise_code(twilio_standin, from_=None).code == 21603
    assert len(twilio_standin.take_invalid()) == 1


def test_wrong_types_misspelt_fields_and_bad_paths_are_refused_and_recorded(twilio_standin):
    bad_type = _raw_post(twilio_standin, {"To": TO, "From": FROM_NUMBER, "Body": "x", "ValidityPeriod": "soon"})
    misspelt = _raw_post(twilio_standin, {"To": TO, "From": FROM_NUMBER, "Bdy": "x"})
    bad_sid = _raw_post(twilio_standin, {"To": TO, "From": FROM_NUMBER, "Body": "x"}, account_sid="AC123")
    listing = requests.get(f"{twilio_standin.base_url}/2010-04-01/Accounts/{twilio_standin.account_sid}"
                           "/Messages.json", auth=(twilio_standin.account_sid, twilio_standin.auth_token))

    assert [r.status_code for r in (bad_type, misspelt, bad_sid, listing)] == [400, 400, 400, 501]
    assert bad_type.json()["code"] == 21000 and "integer" in bad_type.json()["message"]
    assert "Bdy" in misspelt.json()["message"]
    assert set(bad_type.json()) == {"code", "message", "more_info", "status"}
    assert len(twilio_standin.take_invalid()) == 4 and twilio_standin.messages == []


def test_missing_credentials_are_invalid_and_wrong_ones_answer_401(twilio_standin):
    anonymous = _raw_post(twilio_standin, {"To": TO, "From": FROM_NUMBER, "Body": "x"}, auth=False)
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, 20003)
    assert len(twilio_standin.take_invalid()) == 1

    wrong = twilio_standin.client(auth_token="f" * 32)
    with pytest.raises(TwilioRestException) as caught:
        wrong.messages.create(to=TO, from_=FROM_NUMBER, body="x")
    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert twilio_standin.invalid_requests == [] and twilio_standin.messages == []


def test_scripted_errors_come_in_the_order_they_were_scripted(twilio_standin):
    twilio_standin.throttle(1)
    twilio_standin.fail_next(1, code=21211)
    twilio_standin.server_error(1, status=500)
    twilio_standin.server_error(1)

    outcomes = [(e.status, e.code) for e in (_raise_code(twilio_standin) for _ in range(4))]

    assert outcomes == [(429, 20429), (400, 21211), (500, 20500), (503, 20503)]
    assert _send(twilio_standin).status == "queued" and len(twilio_standin.messages) == 1


def test_a_recipient_can_be_refused_every_time(twilio_standin):
    twilio_standin.fail_for("+15005550020", code=21610)

    for _ in range(2):
        assert _raise_code(twilio_standin, to="+15005550020").code == 21610
    assert _send(twilio_standin).to == TO
    twilio_standin.clear_failures()
    assert _send(twilio_standin, to="+15005550020").status == "queued"


def test_latency_slows_every_answer(twilio_standin):
    twilio_standin.latency = 0.2
    started = time.monotonic()
    _send(twilio_standin)
    assert time.monotonic() - started >= 0.2


def test_a_timeout_after_receiving_leaves_an_ambiguous_send(twilio_standin):
    twilio_standin.hang_after_receive(5)
    with pytest.raises(requests.exceptions.Timeout):
        twilio_standin.client(timeout=0.3).messages.create(to=TO, from_=FROM_NUMBER, body="Did it go?")
    # The client gave up, yet Twilio had the message: the product must not blindly resend.
    assert [m["body"] for m in twilio_standin.messages] == ["Did it go?"]
    assert _send(twilio_standin).status == "queued"


def test_concurrent_sends_are_all_recorded_and_metered(twilio_standin):
    client = twilio_standin.client(timeout=10)

    def send_five(worker):
        for i in range(5):
            client.messages.create(to=f"+1500555{worker:02d}{i:02d}", from_=FROM_NUMBER, body=f"{worker}/{i}")

    workers = [threading.Thread(target=send_five, args=(w,)) for w in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()

    assert len({m["sid"] for m in twilio_standin.messages}) == 30 == len(twilio_standin.accepted_at)
    assert twilio_standin.rate() > 1


def test_segments_follow_gsm7_and_ucs2_rules(twilio_standin):
    assert [segments(b) for b in ("a" * 160, "a" * 161, "€" * 80, "€" * 81, "é" * 160, "ł" * 70, "ł" * 71)] == [
        1, 2, 1, 2, 1, 1, 2]
    assert _send(twilio_standin, body="a" * 161).num_segments == "2"


def test_status_moves_on_and_the_callback_is_signed_like_twilios(twilio_standin):
    message = _send(twilio_standin, status_callback=CALLBACK)
    twilio_standin.set_status(message.sid, "undelivered", error_code=30003)

    fetched = twilio_standin.client().messages(message.sid).fetch()
    url, params, headers = twilio_standin.status_callback(message.sid)

    assert (fetched.status, fetched.error_code) == ("undelivered", 30003)
    assert url == CALLBACK and params["MessageStatus"] == "undelivered" and params["ErrorCode"] == "30003"
    validator = RequestValidator(twilio_standin.auth_token)
    assert validator.validate(url, params, headers["X-Twilio-Signature"])
    assert not validator.validate(url, {**params, "MessageStatus": "delivered"}, headers["X-Twilio-Signature"])
    assert sign(url, params, twilio_standin.auth_token) == headers["X-Twilio-Signature"]


def test_fetching_an_unknown_message_is_a_twilio_404(twilio_standin):
    with pytest.raises(TwilioRestException) as caught:
        twilio_standin.client().messages("SM" + "0" * 32).fetch()
    assert (caught.value.status, caught.value.code) == (404, 20404)


def test_a_reused_verdict_never_hides_a_bad_value_in_a_checked_field(twilio_standin):
    good = _raw_post(twilio_standin, {"To": TO, "MessagingServiceSid": MESSAGING_SERVICE_SID, "Body": "a"})
    same_shape = _raw_post(twilio_standin, {"To": "+15005550011", "MessagingServiceSid": MESSAGING_SERVICE_SID,
                                            "Body": "other text"})
    bad = _raw_post(twilio_standin, {"To": TO, "MessagingServiceSid": "MG" + "z" * 32, "Body": "a"})

    assert [r.status_code for r in (good, same_shape, bad)] == [201, 201, 400]
    assert "does not match" in bad.json()["message"]
    assert len(twilio_standin.take_invalid()) == 1 and len(twilio_standin.messages) == 2
    assert [r["status"] for r in twilio_standin.requests] == [201, 201, 400]
