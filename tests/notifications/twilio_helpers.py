"""Talking to the Twilio webhooks as Twilio does: signed inbound SMS and status callbacks, and the TwiML reply's
text. The `twilio_app` fixture (the app with the Twilio auth token) is in tests/conftest.py."""
import xml.etree.ElementTree as ET

from tests.peers.twilio_standin import AUTH_TOKEN, sign


PUBLIC = "http://status.example.com"  # PUBLIC_BASE_URL of the test app
ANN = "+12065550100"


def post_signed(client, path: str, params: dict, *, token: str = AUTH_TOKEN, url: str | None = None):
    signature = sign(url or PUBLIC + path, params, token)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def inbound(client, body: str, *, sid: str = "SM" + "1" * 32, sender: str = ANN):
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "0" * 32, "From": sender,
              "To": "+15005550006", "Body": body, "NumMedia": "0"}
    return post_signed(client, "/webhooks/twilio/inbound", params)


def reply_of(response) -> str:
    """The text of the TwiML <Message>, checking the document is <Response> with at most one <Message>."""
    assert response.status_code == 200 and response.mimetype == "text/xml"
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response"
    messages = root.findall("Message")
    assert len(messages) <= 1 and len(root) == len(messages)
    return messages[0].text if messages else ""


def callback(client, sid: str, status: str, error_code: str | None = None, to: str = ANN):
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "0" * 32, "From": "+15005550006", "To": to,
              "MessageStatus": status, "SmsStatus": status, "ApiVersion": "2010-04-01"}
    if error_code:
        params["ErrorCode"] = error_code
    return post_signed(client, "/webhooks/twilio/status", params)
