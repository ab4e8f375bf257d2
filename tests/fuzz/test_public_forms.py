"""Hypothesis properties of the unauthenticated POST endpoints: never a server error, whatever is sent.

Forms: /my (check my account), /my/verify (the code), /ops/sign-in, /my/sign-out, /my/offers/<id>/<action>,
/unsubscribe/<token> (RFC 8058 one-click and the confirm form), /m/<token> (personal link), and Twilio's
signed webhooks /webhooks/twilio/inbound and /status (signed correctly, so the fields get judged).

Each field is sent as a browser would (urlencoded), as a multipart text part, as a multipart FILE part,
twice, or not at all; values are hostile text: NUL, controls, every line ending, BOMs, formula prefixes,
confusable letters, very long strings, and lone surrogates as the only bytes that can carry one (the
UTF-8-forbidden ED A0 80), with a valid CSRF token most of the time so the handler itself runs."""
import secrets
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from accounts import links
from core.db import db
from notifications.unsubscribe import unsubscribe_token
from offers.models import OfferGrant
from tests.conftest import csrf_from
from tests.fuzz import strategies as hs
from tests.fuzz.findings import crash_site, exception_key
from tests.fuzz.seed import seed
from tests.fuzz.settings import fuzz_settings
from tests.peers.twilio_standin import AUTH_TOKEN, sign

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = 15  # per form and way of sending its main field
PUBLIC = "http://status.example.com"  # PUBLIC_BASE_URL of the test app
BOUNDARY = "fuzzb0undaryQ7e2"

# How a field travels: a browser's urlencoded field, a multipart text part, a multipart file part, twice
# (a text part, then a file part of the same name), or not at all. Each form's test runs its property once per
# way for its main field (so every way is sure to be tried); the other fields draw theirs, mostly "text".
# "nameless" sends it as a multipart text part next to a part whose Content-Disposition has no name.
CHANNELS = ["text", "multipart", "file", "twice", "nameless"]
HOW = st.integers(0, 9).map(lambda n: "text" if n < 5 else ["multipart", "file", "twice", "missing", "missing"][n - 5])


def raw(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")  # a lone surrogate becomes the bytes UTF-8 forbids


def as_received(value: str) -> str:
    """What the server reads from those bytes (invalid UTF-8 is replaced), e.g. to sign a webhook."""
    return raw(value).decode("utf-8", "replace")


def encode(fields: list[tuple[str, str, str]]) -> tuple[bytes, str]:
    """(body, Content-Type) for [(name, value, how)]: urlencoded unless a field needs multipart."""
    fields = [f for f in fields if f[2] != "missing"]
    if all(how == "text" for _n, _v, how in fields):
        body = "&".join(f"{quote(raw(n))}={quote(raw(v))}" for n, v, _how in fields)
        return body.encode("ascii"), "application/x-www-form-urlencoded"
    parts = []
    for name, value, how in fields:
        for kind in {"twice": ["multipart", "file"], "nameless": ["multipart", "nameless"]}.get(how, [how]):
            head = b'Content-Disposition: form-data; name="' + raw(name) + b'"'
            if kind == "nameless":
                head = b"Content-Disposition: form-data"
            if kind == "file":
                head += b'; filename="field.txt"\r\nContent-Type: text/plain'
            parts.append(b"--" + BOUNDARY.encode() + b"\r\n" + head + b"\r\n\r\n" + raw(value) + b"\r\n")
    return b"".join(parts) + b"--" + BOUNDARY.encode() + b"--\r\n", f"multipart/form-data; boundary={BOUNDARY}"


def fields_with(draw, how: str, values: dict[str, st.SearchStrategy], csrf: str | None):
    """[(name, value, how)]: the first of `values` travels `how`; a valid CSRF token as a text field unless the
    draw says otherwise (Hypothesis favours 0: the valid token); now and then an extra field."""
    out = []
    if csrf is not None:
        variant = draw(st.integers(0, 7))
        token = csrf if variant < 5 else draw(hs.text(40))
        out.append(("csrf_token", token, ["text", "multipart", "file", "missing"][max(0, variant - 4)]))
    for n, (name, strategy) in enumerate(values.items()):
        out.append((name, draw(strategy), how if n == 0 else draw(HOW)))
    if draw(st.integers(0, 4)) == 4:  # an extra field nobody asked for
        out.append((draw(hs.text(12)) or "x", draw(hs.hostile_text()), draw(HOW)))
    return out


class Sender:
    """Posts encoded bodies and records every 5xx as a finding, with the server's traceback."""

    def __init__(self, app, findings, form: str):
        self.app, self.findings, self.form = app, findings, form

    def send(self, client, method: str, url: str, fields=(), headers=None):
        body, content_type = encode(list(fields)) if fields else (b"", None)
        self.app.fuzz_errors.clear()
        response = client.open(url, method=method, data=body, headers={
            **({"Content-Type": content_type} if content_type else {}), **(headers or {})})
        if response.status_code >= 500:
            tb = self.app.fuzz_errors[-1] if self.app.fuzz_errors else ""
            exception, site = crash_site(tb)
            shown = [(n, "<the page's token>" if n == "csrf_token" and len(v) > 80 else
                      v if len(v) <= 80 else v[:40] + f"...({len(v)} chars)", how) for n, v, how in fields]
            self.findings.add((self.form, response.status_code, exception_key(tb)),
                              f"{self.form}: {response.status_code}",
                              f"{method} {url[:200]} fields={shown!r}", f"{exception}\n    at {site}")
        return response


def csrf_of(client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    return csrf_from(page.get_data(as_text=True))


IDENTIFIERS = ["A1001", "B-7/8", "+12065550100", "(206) 555-0100", "nobody", "A1001\x00", " A1001 "]


def identifiers():
    return st.one_of(st.sampled_from(IDENTIFIERS), hs.hostile_text(80))


# ---- the subscriber's pages ----------------------------------------------------------------------

def test_check_my_account_form(fuzz_app, findings):
    seed()
    sender = Sender(fuzz_app, findings, "POST /my")

    @fuzz_settings(MAX_EXAMPLES)
    @given(data=st.data())
    def prop(how, data):
        client = fuzz_app.test_client()
        fields = fields_with(data.draw, how, {"identifier": identifiers()}, csrf_of(client, "/my"))
        response = sender.send(client, "POST", "/my", fields)
        if response.status_code == 303:
            sender.send(client, "GET", "/my/verify")

    for how in CHANNELS:
        prop(how)


def test_code_form(fuzz_app, findings):
    seed()
    sender = Sender(fuzz_app, findings, "POST /my/verify")

    @fuzz_settings(MAX_EXAMPLES)
    @given(data=st.data())
    def prop(how, data):
        client = fuzz_app.test_client()
        asked = client.post("/my", data={"identifier": "A1001", "csrf_token": csrf_of(client, "/my")})
        assert asked.status_code == 303, asked.status_code
        code = st.one_of(st.sampled_from(["123456", " 12 34 56 ", "12-34-56", "１２３４５６", "٣٣٣٣٣٣", "1234567"]),
                         hs.hostile_text(30))
        response = sender.send(client, "POST", "/my/verify", fields_with(data.draw, how, {"code": code},
                                                                         csrf_of(client, "/my/verify")))
        if response.status_code == 303:
            sender.send(client, "GET", response.headers["Location"])

    for how in CHANNELS:
        prop(how)


def test_personal_link_sign_out_and_offer_answers(fuzz_app, findings):
    seeded = seed()
    incident_id = seeded.ids["incident_id"][0]
    grant = db.session.scalar(sa.select(OfferGrant).order_by(OfferGrant.id))
    number = db.session.scalar(sa.text("SELECT account_number FROM accounts WHERE id = :id"), {"id": grant.account_id})
    db.session.commit()
    sender = Sender(fuzz_app, findings, "personal page")

    @fuzz_settings(MAX_EXAMPLES * 2 // 3)  # three requests an example
    @given(data=st.data())
    def prop(how, data):
        client = fuzz_app.test_client()
        if data.draw(st.booleans()):
            url = links.issue_link_for(db.session, incident_id=incident_id, account_number=number)
            db.session.commit()
            path = url.split(PUBLIC, 1)[1]
        else:
            path = "/m/" + quote(raw(data.draw(hs.hostile_text(60))), safe="")
        opened = sender.send(client, "GET", path)
        csrf = csrf_of(client, "/my/account") if opened.status_code == 303 else csrf_of(client, "/my")
        grant_id = data.draw(st.one_of(st.just(grant.id), st.sampled_from([0, 2**31 - 1, 2**31, 10**20])))
        action = data.draw(st.sampled_from(["accept", "decline"]))
        sender.send(client, "POST", f"/my/offers/{grant_id}/{action}", fields_with(data.draw, how, {"answer": hs.hostile_text()}, csrf))
        sender.send(client, "POST", "/my/sign-out", fields_with(data.draw, how, {"next": hs.hostile_text()}, csrf))

    for how in CHANNELS:
        prop(how)


def test_unsubscribe_links(fuzz_app, findings):
    seed()
    sender = Sender(fuzz_app, findings, "unsubscribe")

    @fuzz_settings(MAX_EXAMPLES)
    @given(data=st.data())
    def prop(how, data):
        client = fuzz_app.test_client()
        if data.draw(st.booleans()):  # a token we signed, for a hostile address
            channel = data.draw(st.sampled_from(["sms", "email"]))
            address = data.draw(st.one_of(st.sampled_from(["ann@example.com", "+12065550100", "ANN@Example.com"]),
                                          hs.hostile_text(60, surrogates=False)))  # we can only sign UTF-8
            token = unsubscribe_token(channel, address)
        else:
            token = quote(raw(data.draw(hs.hostile_text(60))), safe="")
        sender.send(client, "GET", f"/unsubscribe/{token}")
        fields = fields_with(data.draw, how, {"List-Unsubscribe": st.sampled_from(["One-Click", ""])}, None)
        sender.send(client, "POST", f"/unsubscribe/{token}", fields)

    for how in CHANNELS:
        prop(how)


def test_subscribe_forms(fuzz_app, findings):
    """/subscribe (email, phone, what to follow), the SMS code page (a code or "send a new one"), and the
    confirmation and manage pages, with tokens we signed and hostile ones."""
    from accounts import subscriptions
    from accounts.models import Subscription

    seed()
    fuzz_app.config.update(SUBSCRIBE_PER_IP=(10**6, 3600), SUBSCRIBE_PER_ADDRESS=(10**6, 3600),
                           SUBSCRIBE_GLOBAL=(10**6, 3600), SUBSCRIBE_SMS_GLOBAL=(10**6, 3600))
    with fuzz_app.test_request_context():  # one pending subscription per channel: their pages always exist
        subscriptions.request(db.session, email="fuzz@example.org", component_ids=None, language="en", ip="x")
        subscriptions.request_sms(db.session, phone="+12065550199", component_ids=None, language="en", ip="x")
        db.session.commit()
    seeded = {s.channel: s.id for s in db.session.scalars(sa.select(Subscription))}
    sender = Sender(fuzz_app, findings, "subscribe")
    emails = st.one_of(st.sampled_from(["ann@example.com", "ANN@Example.com", "a@b", ""]), hs.hostile_text(300))
    phones = st.one_of(st.sampled_from(["+12065550100", "(206) 555-0100", "+44 20 7946 0958", "12", ""]),
                       hs.hostile_text(40))
    components = st.one_of(st.sampled_from(["1", "2", "0", "99999999999", "-1"]), hs.hostile_text(12))

    @fuzz_settings(MAX_EXAMPLES)
    @given(data=st.data())
    def form(how, data):
        client = fuzz_app.test_client()
        fields = fields_with(data.draw, how, {"email": emails, "phone": phones,
                                              "follow": st.sampled_from(["all", "some", "", "\x00"]),
                                              "component": components}, csrf_of(client, "/subscribe"))
        response = sender.send(client, "POST", "/subscribe", fields)
        if response.status_code == 303:
            sender.send(client, "GET", response.headers["Location"])

    @fuzz_settings(MAX_EXAMPLES)
    @given(data=st.data())
    def page(how, kind, data):
        client = fuzz_app.test_client()
        which = data.draw(st.sampled_from(["email", "sms", "newest", "hostile"]))
        hostile = quote(raw(data.draw(hs.hostile_text(60))), safe="")
        sub = None if which == "hostile" else \
            db.session.scalar(sa.select(Subscription).order_by(Subscription.id.desc()).limit(1)) \
            if which == "newest" else db.session.get(Subscription, seeded[which])
        if sub is None:  # a hostile token, or the subscription was unsubscribed by an earlier example
            path = f"/subscribe/{kind}/{hostile}"
        else:
            with fuzz_app.test_request_context():
                url = {"verify": subscriptions.verify_token, "confirm": subscriptions.confirm_url,
                       "manage": subscriptions.manage_url}[kind](sub)
            path = f"/subscribe/{kind}/{url.rsplit('/', 1)[-1]}"
            db.session.commit()
        got = sender.send(client, "GET", path)
        html = got.get_data(as_text=True)
        csrf = csrf_from(html) if 'name="csrf_token"' in html else csrf_of(client, "/subscribe")
        main = {"verify": ("code", st.one_of(st.sampled_from(["123456", " 12 34 56 ", "１２３４５６"]),
                                             hs.hostile_text(30))),
                "confirm": ("action", hs.hostile_text(20)),
                "manage": ("follow", st.sampled_from(["all", "some", "", "\x00"]))}[kind]
        sender.send(client, "POST", path, fields_with(data.draw, how, {
            main[0]: main[1], "action": st.sampled_from(["", "save", "resend", "unsubscribe", "\x00"]),
            "component": components}, csrf))

    for how in CHANNELS:
        form(how)
        for kind in ("verify", "confirm", "manage"):
            page(how, kind)


# ---- the console's sign-in -----------------------------------------------------------------------

def test_sign_in_form(fuzz_app, findings):
    seeded = seed()
    sender = Sender(fuzz_app, findings, "POST /ops/sign-in")

    @fuzz_settings(MAX_EXAMPLES)
    @given(data=st.data())
    def prop(how, data):
        client = fuzz_app.test_client()
        fields = fields_with(data.draw, how, {
            "email": st.one_of(st.just(seeded.admin_email), st.just(seeded.admin_email.upper()), hs.hostile_text(300)),
            "password": hs.hostile_text(1100),
            "remember": st.sampled_from(["y", "", "on", "\x00"]),
        }, csrf_of(client, "/ops/sign-in"))
        next_ = quote(raw(data.draw(st.one_of(st.just("/ops/"), hs.hostile_text(60)))), safe="")
        response = sender.send(client, "POST", f"/ops/sign-in?next={next_}", fields)
        assert response.status_code != 302 or "/ops/sign-in" in response.headers.get("Location", ""), \
            "a hostile password signed in"

    for how in CHANNELS:
        prop(how)


# ---- Twilio's webhooks, signed as Twilio signs them ------------------------------------------------

def test_twilio_webhooks(fuzz_app, findings):
    seed()
    fuzz_app.config["TWILIO_AUTH_TOKEN"] = AUTH_TOKEN
    sender = Sender(fuzz_app, findings, "Twilio webhooks")
    phones = st.one_of(st.sampled_from(["+12065550100", "+12065550101", "12345", "AlphaSender", ""]),
                       hs.hostile_text(40))
    bodies = st.one_of(st.sampled_from(["STOP", "start", "HELP", "STATUS", "ACCEPT", "accept ABCD-1234", "stop!"]),
                       hs.hostile_text(200))

    @fuzz_settings(MAX_EXAMPLES * 3)
    @given(data=st.data())
    def prop(data):
        client = fuzz_app.test_client()
        sid = data.draw(st.one_of(st.just("SM" + secrets.token_hex(16)), hs.hostile_text(70)))
        if data.draw(st.booleans()):
            path = "/webhooks/twilio/inbound"
            params = {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": data.draw(phones),
                      "To": data.draw(phones), "Body": data.draw(bodies), "NumMedia": "0"}
        else:
            path = "/webhooks/twilio/status"
            params = {"MessageSid": sid, "To": data.draw(phones), "MessageStatus": data.draw(st.one_of(
                st.sampled_from(["delivered", "undelivered", "failed", "sent", "queued"]), hs.hostile_text(30))),
                "ErrorCode": data.draw(st.one_of(st.sampled_from(["", "30003", "21610", "30007"]),
                                                 hs.hostile_text(20)))}
        signature = sign(PUBLIC + path, {k: as_received(v) for k, v in params.items()}, AUTH_TOKEN)
        fields = [(k, v, "text") for k, v in params.items()]
        sender.send(client, "POST", path, fields, headers={"X-Twilio-Signature": signature})

    prop()
