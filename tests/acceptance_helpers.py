"""Shared steps for the end-to-end acceptance tests: the operator files an incident and imports accounts
through the console, the real notifier worker sends to the real peers (Twilio stand-in, aiosmtpd), and
subscribers read what those peers received and answer through the signed webhook or their personal page.

Nothing here replaces product code: every step goes through an HTTP route, the worker, or a peer."""
import re

from core.db import db
from notifications import worker
from tests.accounts.uploads import started_job, upload, wait_for_job
from tests.conftest import post_form
from tests.notifications.twilio_helpers import PUBLIC, inbound, reply_of

LINK = re.compile(re.escape(PUBLIC) + r"/m/([A-Za-z0-9_-]+)")

__all__ = ["PUBLIC", "LINK", "connect_peers", "deliver", "file_incident", "import_csv", "sms_bodies", "emails_to",
           "email_text", "personal_link", "open_link", "text_us", "reply_of"]


def connect_peers(app, standin, smtp, **settings) -> None:
    """Point the product at the Twilio stand-in and the SMTP server, as an operator's .env would; rates are
    high so the tests do not wait for the pacing (its own tests measure it)."""
    app.config.update({**standin.env(), **smtp.env(), "MAIL_FROM": "Lifeboat <status@lifeboat.example>",
                       "SMS_RATE_PER_SECOND": 1000, "EMAIL_RATE_PER_SECOND": 1000, **settings})


def deliver() -> int:
    """One pass of the real notifier worker with the configured providers; returns messages attempted."""
    attempted = worker.run_once(db.session)
    db.session.expire_all()
    return attempted


def file_incident(client, *, name: str, categories: str, message: str = "We are investigating.") -> int:
    """The operator files an incident in the console and chooses its data categories; returns its id."""
    created = post_form(client, "/ops/incidents/new", {"name": name, "impact": "critical",
                                                       "status": "investigating", "message": message})
    assert created.status_code == 302, created.get_data(as_text=True)[:2000]
    incident_id = int(created.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    saved = post_form(client, f"/ops/incidents/{incident_id}/recovery", {"categories": categories},
                      action=f"/ops/incidents/{incident_id}/recovery/categories")
    assert saved.status_code == 303, saved.get_data(as_text=True)[:2000]
    return incident_id


def import_csv(client, incident_id: int, text: str, kind: str) -> None:
    """Upload a CSV in the console and wait for its background job to finish cleanly."""
    job = wait_for_job(started_job(upload(client, incident_id, text.encode("utf-8"), kind=kind)))
    assert job.status.value == "done", (job.message, job.errors)
    page = client.get(f"/ops/imports/{job.id}")
    assert page.status_code == 200


def sms_bodies(standin, phone: str) -> list[str]:
    """The texts the stand-in accepted for `phone`, oldest first: what the subscriber's phone shows."""
    return [m["body"] for m in standin.messages if m["to"] == phone]


def emails_to(smtp, address: str) -> list:
    """The emails (parsed) the SMTP server received for `address`, oldest first."""
    return [m["message"] for m in smtp.messages if address in m["rcpt_tos"]]


def email_text(message) -> str:
    return message.get_body("plain").get_content()


def personal_link(text: str) -> str:
    """The path of the personal link (/m/<token>) in a message, as a subscriber would tap it."""
    match = LINK.search(text)
    assert match, f"no personal link in {text!r}"
    return f"/m/{match.group(1)}"


def open_link(subscriber, text: str) -> str:
    """Follow the personal link in `text` like a phone's browser and return the personal page's HTML."""
    opened = subscriber.get(personal_link(text))
    assert opened.status_code == 303 and opened.headers["Location"].endswith("/my/account"), opened.status_code
    page = subscriber.get("/my/account")
    assert page.status_code == 200
    return page.get_data(as_text=True)


_sids = iter(range(1, 10**6))


def text_us(client, phone: str, body: str) -> str:
    """The subscriber texts `body` from `phone`: Twilio's signed inbound webhook; returns our TwiML reply."""
    return reply_of(inbound(client, body, sender=phone, sid=f"SM{next(_sids):032d}"))
