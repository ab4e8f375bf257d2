"""Email through smtplib: text + HTML parts, a stable Message-ID, one-click unsubscribe headers."""
import email.policy
import hashlib
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from markupsafe import escape

from notifications.models import Notification
from notifications.providers import ProviderError, Sent, flag

DEFAULT_PORT = 25
DEFAULT_TIMEOUT_SECONDS = 15.0
# CRLF line ends, and headers folded only past SMTP's own 998-character limit: the default 78 would wrap the
# long unsubscribe URL into an RFC 2047 encoded word, which mail clients do not read as a List-Unsubscribe link.
POLICY = email.policy.SMTP.clone(max_line_length=998)


class _Smtp(smtplib.SMTP):
    """smtplib.SMTP that notes when the message content has been fully handed over after DATA.

    Before that point a failure means the server cannot have accepted the message (it needs the final
    "." line), so a retry is safe; after it, the server may have queued the message: ambiguous."""

    in_data = content_sent = False

    def send(self, s):
        super().send(s)
        if self.in_data and isinstance(s, bytes):  # putcmd sends str; only the message body is bytes
            self.content_sent = True


class SmtpProvider:
    """Sends one email per message through an SMTP relay (plain, STARTTLS, optional AUTH)."""

    name = "smtp"

    def __init__(self, *, host: str, mail_from: str, port: int = DEFAULT_PORT, username: str = "",
                 password: str = "", starttls: bool = False, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 unsubscribe_mailto: str | None = None, tls_context: ssl.SSLContext | None = None):
        if not timeout or timeout <= 0:
            raise ValueError("an SMTP timeout must be a positive number of seconds")
        self.host, self.port, self.timeout = host, port, timeout
        self.username, self.password, self.starttls = username, password, starttls
        self.mail_from = mail_from
        self.from_address = parseaddr(mail_from)[1]
        self.domain = self.from_address.rpartition("@")[2] or "localhost"
        # Where "mailto" unsubscribe requests go; "" leaves the mailto form out (the https one stays).
        self.unsubscribe_mailto = self.from_address if unsubscribe_mailto is None else unsubscribe_mailto
        self.tls_context = tls_context

    @classmethod
    def from_config(cls, config) -> "SmtpProvider":
        """Build from SMTP_* and MAIL_FROM settings (MAIL_FROM defaults to lifeboat@ the public host)."""
        mail_from = config.get("MAIL_FROM") or default_mail_from(config.get("PUBLIC_BASE_URL") or "")
        return cls(host=config["SMTP_HOST"], port=int(config.get("SMTP_PORT") or DEFAULT_PORT),
                   username=config.get("SMTP_USERNAME") or "", password=config.get("SMTP_PASSWORD") or "",
                   starttls=flag(config.get("SMTP_STARTTLS")), mail_from=mail_from,
                   timeout=float(config.get("SMTP_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT_SECONDS),
                   unsubscribe_mailto=config.get("UNSUBSCRIBE_MAILTO"))

    def build(self, message: Notification) -> EmailMessage:
        """The email for one outbox row: same Message-ID on every attempt, so a resend is recognisable."""
        from notifications.unsubscribe import unsubscribe_url

        email = EmailMessage(policy=POLICY)
        email["From"] = self.mail_from
        email["To"] = message.recipient
        email["Subject"] = message.subject or ""
        email["Date"] = formatdate(localtime=False)
        email["Message-ID"] = message_id(message, self.domain)
        links = [f"<{unsubscribe_url('email', message.recipient)}>"]
        if self.unsubscribe_mailto:
            links.append(f"<mailto:{self.unsubscribe_mailto}?subject=unsubscribe>")
        email["List-Unsubscribe"] = ", ".join(links)
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
        email["Auto-Submitted"] = "auto-generated"
        email.set_content(message.body or "")
        email.add_alternative(message.html_body or text_to_html(message.body or ""), subtype="html")
        return email

    def send(self, message: Notification) -> Sent:
        """Deliver to the relay; returns the Message-ID, or raises a classified ProviderError."""
        if not message.body:
            raise ProviderError("empty", "the message has no text to send", retryable=False)
        email = self.build(message)
        smtp = _Smtp(timeout=self.timeout)
        smtp._host = self.host  # STARTTLS checks the certificate against it; only __init__(host) would set it
        try:
            smtp.connect(self.host, self.port)
            if self.starttls:
                smtp.starttls(context=self.tls_context or ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
            smtp.ehlo_or_helo_if_needed()
            code, reply = smtp.mail(self.from_address)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, self.from_address)
            code, reply = smtp.rcpt(message.recipient)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({message.recipient: (code, reply)})
            smtp.in_data = True
            code, reply = smtp.data(email.as_bytes())
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
        except Exception as e:  # noqa: BLE001 — every failure becomes a classified ProviderError
            raise classify(e, content_sent=smtp.content_sent) from e
        finally:
            _quit(smtp)
        return Sent(provider_id=email["Message-ID"].strip("<>")[:64])


def classify(error: Exception, *, content_sent: bool) -> ProviderError:
    """Sort an SMTP failure: 5xx permanent, 4xx retryable, lost after the content went out ambiguous."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(error.recipients.values()))
        return _by_code(code, reply)
    if isinstance(error, smtplib.SMTPAuthenticationError) or (
            isinstance(error, smtplib.SMTPResponseException) and error.smtp_code == 530):
        # Our credentials or settings are wrong, not this message: retry with backoff until someone fixes them.
        return ProviderError(f"smtp:{error.smtp_code}", _text(error.smtp_error), retryable=True)
    if isinstance(error, smtplib.SMTPResponseException):  # sender refused, DATA refused, any other reply
        return _by_code(error.smtp_code, error.smtp_error)
    if isinstance(error, (smtplib.SMTPException, OSError)):  # timeouts, refused or dropped connections
        if content_sent:
            return ProviderError("timeout", f"no answer from the mail server after sending: {error}",
                                 retryable=False, ambiguous=True)
        return ProviderError("connection", f"could not hand the email over: {error}", retryable=True)
    return ProviderError("error", f"{type(error).__name__}: {error}", retryable=False)


def _by_code(code: int, reply) -> ProviderError:
    return ProviderError(f"smtp:{code}", _text(reply), retryable=not 500 <= code < 600)


def _text(reply) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        if smtp.sock:
            smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def message_id(message: Notification, domain: str) -> str:
    """<lifeboat.{id}.{hash of dedupe key}@domain>: the same for every attempt at the same outbox row."""
    digest = hashlib.sha256((message.dedupe_key or "").encode()).hexdigest()[:16]
    return f"<lifeboat.{message.id}.{digest}@{domain}>"


def text_to_html(text: str) -> str:
    """A plain HTML version of a text email: escaped, paragraphs kept, line breaks kept."""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    body = "\n".join("<p>" + str(escape(p)).replace("\n", "<br>\n") + "</p>" for p in paragraphs)
    return f'<!doctype html>\n<html><body style="font-family: sans-serif; line-height: 1.5">\n{body}\n</body></html>\n'


def default_mail_from(public_base_url: str) -> str:
    """lifeboat@<host of PUBLIC_BASE_URL>, for installs that did not set MAIL_FROM."""
    host = public_base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "localhost"
    return str(Address("Lifeboat", "lifeboat", host))
