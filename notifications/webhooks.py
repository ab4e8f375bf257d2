"""Twilio webhooks: delivery receipts (/webhooks/twilio/status) and inbound SMS (/webhooks/twilio/inbound).

Every request must carry a valid X-Twilio-Signature, computed by Twilio over the PUBLIC address it called
(PUBLIC_BASE_URL + path + query: behind a proxy request.url is not what Twilio signed) and the form fields.
Anything else is refused with 403 and no body worth reading; when TWILIO_AUTH_TOKEN is not configured every
request is refused (a webhook nobody can verify must not be able to opt people out or read their status).
CSRF does not apply: the signature is the authentication, and a browser cannot forge one.

Delivery receipts move a notification on, never back (notifications.receipts). A receipt for a sid no
notification has yet is usually early (Twilio calls back before the worker commits the sid): it is kept as an
early receipt, which the worker applies when it records the sid.

Inbound keywords (first word, case and punctuation ignored): STOP words opt the number out and get an empty
<Response/> when sent alone, because Twilio's opt-out handling already confirms a bare STOP (two texts would
confuse); START/YES/UNSTOP opt back in, HELP/INFO and anything else get help, STATUS gets the subscriber's
recovery summary and personal link (accounts.sms_status). If the Messaging Service is set to answer HELP and
START itself, switch those replies off there, or the subscriber gets both.

The notifier owns STOP, START and HELP. Keywords about what it does not know (STATUS: recovery; ACCEPT:
offers) are answered by handlers those domains register from their init_app (`register_keyword`)."""
import logging
import string
from typing import Callable

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import IntegrityError
from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, RequestValidator, get_signature_algorithm
from twilio.twiml.messaging_response import MessagingResponse

from core.db import db, utcnow
from core.errors import ValidationError
from core.i18n import N_, language_for, t
from core.web import csrf
from notifications import masking, optouts, receipts
from notifications.models import Account, Channel, InboundMessage, Notification
from notifications.providers import TWILIO_OPT_OUT

log = logging.getLogger("lifeboat.notifier")
bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)


KEYWORDS = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "REVOKE", "OPTOUT", "CANCEL"), "stop"),
    **dict.fromkeys(("START", "YES", "UNSTOP"), "start"),
    **dict.fromkeys(("HELP", "INFO", "AYUDA"), "help"),
}  # and the words registered by other domains (register_keyword)

# keyword category -> handler(session, *, phone, body) returning the reply text
KeywordHandler = Callable[..., str]
_handlers: dict[str, KeywordHandler] = {}


def register_keyword(category: str, words, handler: KeywordHandler) -> None:
    """Let a domain answer the inbound texts whose first word is one of `words` (upper case). A new app built
    in the same process registers again: the latest wins."""
    if category in {"stop", "start", "help", "other"}:
        raise ValueError(f"the notifier answers {category!r} itself")
    KEYWORDS.update(dict.fromkeys(words, category))
    _handlers[category] = handler


REPLIES = {  # gettext msgids (translations/<lang>/LC_MESSAGES/messages.po), in the sender's language
    "help": N_("{name}: data recovery alerts. Reply STATUS for your data recovery status, STOP to stop. "
               "Msg & data rates may apply."),
    "start": N_("{name}: you will get our messages again. Reply STATUS for your data recovery status, STOP to stop."),
    "other": N_("{name}: reply STATUS for your data recovery status, HELP for help, STOP to stop."),
    "stop": N_("{name}: you will get no more messages from us. Reply START to resume."),
}


def _refuse() -> Response:
    return Response("Forbidden\n", status=403, mimetype="text/plain")


def public_url() -> str:
    """The address Twilio called, as it saw it: PUBLIC_BASE_URL + path (+ query string)."""
    url = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + request.path
    query = request.query_string.decode("latin-1")
    return f"{url}?{query}" if query else url


def signature_valid() -> bool:
    """True when X-Twilio-Signature matches this request; always False without a configured secret.

    Twilio signs with the Auth Token (HMAC-SHA1), or with a SharedKey when it sends the signature settings
    header naming the algorithm; that key is TWILIO_WEBHOOK_SHARED_KEY, and without it such requests fail."""
    signature = request.headers.get("X-Twilio-Signature", "")
    settings = request.headers.get(SIGNATURE_SETTINGS_HEADER)
    secret = current_app.config.get("TWILIO_WEBHOOK_SHARED_KEY" if settings else "TWILIO_AUTH_TOKEN")
    if not signature or not secret:
        return False
    try:
        return RequestValidator(secret).validate(public_url(), request.form, signature,
                                                 get_signature_algorithm(settings))
    except Exception:  # a malformed header or body is a forgery, never a 500
        log.warning("webhook signature check failed on %s", request.path, exc_info=True)
        return False


def twiml(reply: str) -> Response:
    """A TwiML answer: <Response><Message>reply</Message></Response>, or an empty <Response/>."""
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return Response(str(response), mimetype="text/xml")


# ---- delivery receipts ------------------------------------------------------------------------------

# A status callback's fields kept in the message's status history: all but the addresses and text, which
# live on the message (masked, erasable).
_PERSONAL_FIELDS = frozenset({"To", "From", "Body"})


def callback_payload(form) -> dict:
    """The fields of a provider callback worth keeping, each capped."""
    return {k[:64]: v[:200] for k, v in list(form.items())[:40] if k not in _PERSONAL_FIELDS}


def record_status(session, *, sid: str, status: str, error_code: str = "", to: str = "",
                  payload: dict | None = None) -> str:
    """Apply one status callback; returns what happened: "updated", "ignored", "early" (no notification has
    this sid yet: kept as an early receipt for the worker, notifications.receipts) or "unknown"."""
    moved = receipts.apply_status(session, provider_id=sid, status=status, error_code=error_code, payload=payload)
    outcome = "updated" if moved else "ignored"
    notification = session.scalar(sa.select(Notification).where(Notification.provider_id == sid,
                                                                 Notification.channel == Channel.SMS))
    if notification is None:
        # Usually the worker has not committed the sid yet (Twilio calls back within milliseconds).
        outcome = "early" if receipts.store_early(session, sid, status, error_code or None) else "unknown"
        log.info("status callback for unknown message %s (%s): %s", sid, status,
                 "kept until the worker records it" if outcome == "early" else "nothing to keep")
    if error_code == TWILIO_OPT_OUT:
        address = notification.recipient if notification is not None else to
        if address:
            try:
                optouts.opt_out(session, Channel.SMS, address, f"twilio:{TWILIO_OPT_OUT}")
            except ValidationError:  # a 21610 for a To that is no phone number: nothing to opt out
                log.warning("status callback %s: cannot opt out %r", sid, address)
    return outcome


@bp.post("/twilio/status")
def twilio_status():
    if not signature_valid():
        return _refuse()
    sid, status = request.form.get("MessageSid", "").strip(), request.form.get("MessageStatus", "").strip().lower()
    if not sid or not status:
        return Response("MessageSid and MessageStatus are required\n", status=400, mimetype="text/plain")
    outcome = record_status(db.session, sid=sid, status=status, error_code=request.form.get("ErrorCode", "").strip(),
                            to=request.form.get("To", "").strip(), payload=callback_payload(request.form))
    db.session.commit()
    if outcome == "early":
        # The worker may have committed the sid while the receipt was being stored, and looked for the receipt
        # before it was committed: look once more now that it is (receipts._serialize says why this suffices).
        receipts.settle(db.session, sid)
        db.session.commit()
    return twiml("")  # any 2xx ends it: Twilio would retry an error; an early receipt waits for the worker


# ---- inbound SMS ------------------------------------------------------------------------------------

def keyword_of(body: str) -> str:
    """The category of an inbound text from its first word (case and punctuation ignored)."""
    words = (body or "").split()
    first = words[0].strip(string.punctuation + "¡¿").upper() if words else ""
    return KEYWORDS.get(first, "other")


def answer(session, *, from_number: str, keyword: str, single_word: bool = True, body: str = "") -> str:
    """Act on a keyword and return the reply text ('' for a bare STOP, which Twilio confirms)."""
    lang = _language_for_phone(session, from_number)
    name = current_app.config.get("SMS_SERVICE_NAME") or "Lifeboat"
    if keyword == "stop":
        optouts.opt_out(session, Channel.SMS, from_number, "sms:STOP")
        # Twilio's (Advanced) Opt-Out answers a bare STOP word itself, so a reply of ours would be a second text.
        # It ignores "stop sending me these": we honour that too, and then nobody else confirms it.
        return "" if single_word else t(lang, REPLIES["stop"], name=name)
    if keyword == "start":
        optouts.opt_in(session, Channel.SMS, from_number, "sms:START")
        return t(lang, REPLIES["start"], name=name)
    if keyword in _handlers:
        return _handlers[keyword](session, phone=from_number, body=body)
    return t(lang, REPLIES[keyword if keyword == "help" else "other"], name=name)


def _language_for_phone(session, phone: str) -> str:
    """'en' or 'es' for the first account with this phone number ('en' when none has it)."""
    language = session.scalar(sa.select(Account.language).where(Account.phone == (phone or "").strip())
                              .order_by(Account.id).limit(1))
    return language_for(language) if language is not None else "en"


def _stored_reply(session, sid: str) -> str | None:
    return session.scalar(sa.select(InboundMessage.reply).where(InboundMessage.provider_id == sid))


@bp.post("/twilio/inbound")
def twilio_inbound():
    if not signature_valid():
        return _refuse()
    form = request.form
    sid, from_number = form.get("MessageSid", "").strip(), form.get("From", "").strip()
    if not sid or not from_number:
        return Response("MessageSid and From are required\n", status=400, mimetype="text/plain")
    replayed = _stored_reply(db.session, sid)
    if replayed is not None:  # Twilio retried: answer the same, act on nothing
        if masking.MASKED in replayed:  # the answer carried a personal link, stored masked: a fresh one
            replayed = _answer(db.session, from_number, form.get("Body", ""))
            db.session.commit()
        return twiml(replayed)
    body = form.get("Body", "")
    message = InboundMessage(provider_id=sid[:64], from_number=from_number[:32], to_number=form.get("To", "")[:32],
                             body=body, keyword=keyword_of(body), reply="", received_at=utcnow())
    db.session.add(message)
    try:
        db.session.flush()  # claim the MessageSid before acting, so a concurrent replay cannot act twice
        reply = _answer(db.session, from_number, body)
        # The log keeps the answer without the personal link it may carry (notifications.masking).
        message.reply = masking.mask(reply, db.session.info.get(masking.ISSUED))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return twiml(_stored_reply(db.session, sid) or "")
    return twiml(reply)


def _answer(session, from_number: str, body: str) -> str:
    try:
        return answer(session, from_number=from_number, keyword=keyword_of(body),
                      single_word=len(body.split()) == 1, body=body)
    except ValidationError:  # From is no E.164 number (short code, alphanumeric): just help
        return answer(session, from_number=from_number, keyword="help")
