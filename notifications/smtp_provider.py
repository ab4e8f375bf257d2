"""Email through smtplib: text + HTML parts, a stable Message-ID, one-click unsubscribe headers, and one SMTP
connection per sending thread, reused for its next emails."""
import email.policy
import hashlib
import smtplib
import ssl
import threading
import time
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from markupsafe import escape

from notifications.models import Notification
from notifications.providers import ProviderError, Sent, flag

DEFAULT_PORT = 25
DEFAULT_TIMEOUT_SECONDS = 15.0
DEFAULT_IDLE_SECONDS = 30.0  # SMTP_IDLE_SECONDS: close a connection unused this long (servers drop them anyway)
DEFAULT_MAX_PER_CONNECTION = 100  # SMTP_MAX_PER_CONNECTION: then QUIT and start afresh (servers cap sessions)
PROBE_AFTER_SECONDS = 5.0  # a connection idle longer is checked with NOOP before its next email
SWEEP_EVERY_SECONDS = 1.0
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


class _Connection:
    """One open SMTP session, used by one sending thread at a time (its lock is held during a send)."""

    def __init__(self, smtp: _Smtp, now: float):
        self.smtp, self.last_used, self.messages, self.closed = smtp, now, 0, False
        self.lock = threading.Lock()


class _DeadConnection(Exception):
    """A reused connection turned out closed before the email was handed over: nothing was sent."""


class SmtpProvider:
    """Sends email through an SMTP relay (plain, STARTTLS, optional AUTH), keeping one connection per sending
    thread open between emails: a new session costs a TCP (and TLS, and AUTH) handshake per email otherwise."""

    name = "smtp"

    def __init__(self, *, host: str, mail_from: str, port: int = DEFAULT_PORT, username: str = "",
                 password: str = "", starttls: bool = False, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 unsubscribe_mailto: str | None = None, tls_context: ssl.SSLContext | None = None,
                 idle_seconds: float = DEFAULT_IDLE_SECONDS, max_per_connection: int = DEFAULT_MAX_PER_CONNECTION,
                 probe_after: float = PROBE_AFTER_SECONDS, clock=time.monotonic):
        if not timeout or timeout <= 0:
            raise ValueError("an SMTP timeout must be a positive number of seconds")
        if idle_seconds <= 0 or max_per_connection < 1:
            raise ValueError("SMTP_IDLE_SECONDS must be positive and SMTP_MAX_PER_CONNECTION at least 1")
        self.host, self.port, self.timeout = host, port, timeout
        self.username, self.password, self.starttls = username, password, starttls
        self.mail_from = mail_from
        self.from_address = parseaddr(mail_from)[1]
        self.domain = self.from_address.rpartition("@")[2] or "localhost"
        # Where "mailto" unsubscribe requests go; "" leaves the mailto form out (the https one stays).
        self.unsubscribe_mailto = self.from_address if unsubscribe_mailto is None else unsubscribe_mailto
        self.tls_context = tls_context
        self.idle_seconds, self.max_per_connection, self.probe_after = idle_seconds, max_per_connection, probe_after
        self.clock = clock
        self._local = threading.local()  # .connection: this thread's _Connection
        self._open: set[_Connection] = set()  # every open connection, for the idle sweep and close()
        self._open_lock = threading.Lock()
        self._last_sweep = clock()

    @classmethod
    def from_config(cls, config) -> "SmtpProvider":
        """Build from SMTP_* and MAIL_FROM settings (MAIL_FROM defaults to lifeboat@ the public host)."""
        mail_from = config.get("MAIL_FROM") or default_mail_from(config.get("PUBLIC_BASE_URL") or "")
        return cls(host=config["SMTP_HOST"], port=int(config.get("SMTP_PORT") or DEFAULT_PORT),
                   username=config.get("SMTP_USERNAME") or "", password=config.get("SMTP_PASSWORD") or "",
                   starttls=flag(config.get("SMTP_STARTTLS")), mail_from=mail_from,
                   timeout=float(config.get("SMTP_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT_SECONDS),
                   unsubscribe_mailto=config.get("UNSUBSCRIBE_MAILTO"),
                   idle_seconds=float(config.get("SMTP_IDLE_SECONDS") or DEFAULT_IDLE_SECONDS),
                   max_per_connection=int(config.get("SMTP_MAX_PER_CONNECTION") or DEFAULT_MAX_PER_CONNECTION))

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
        content, sent = email.as_bytes(), Sent(provider_id=email["Message-ID"].strip("<>")[:64])
        self._close_idle()
        connection = self._reusable()
        if connection is not None:
            try:
                self._deliver(connection, message.recipient, content, reused=True)
                return sent
            except _DeadConnection:
                pass  # closed by the server while idle: nothing was sent, so once more on a fresh connection
            finally:
                connection.lock.release()
        connection = self._connect()
        try:
            self._deliver(connection, message.recipient, content, reused=False)
        finally:
            connection.lock.release()
        return sent

    def close(self) -> None:
        """QUIT every open connection (waiting for a send in progress on it); a later send connects again."""
        with self._open_lock:
            connections, self._open = list(self._open), set()
        for connection in connections:
            with connection.lock:
                if not connection.closed:
                    self._discard(connection, polite=True)

    # -- connections ---------------------------------------------------------------------------------------
    def _connect(self) -> _Connection:
        """A new session for this thread (connected, TLS, logged in), returned locked."""
        smtp = _Smtp(timeout=self.timeout)
        smtp._host = self.host  # STARTTLS checks the certificate against it; only __init__(host) would set it
        try:
            smtp.connect(self.host, self.port)
            if self.starttls:
                smtp.starttls(context=self.tls_context or ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
            smtp.ehlo_or_helo_if_needed()
        except Exception as e:  # noqa: BLE001 — every failure becomes a classified ProviderError
            _quit(smtp)
            raise classify(e, content_sent=False) from e
        connection = _Connection(smtp, self.clock())
        connection.lock.acquire()
        with self._open_lock:
            self._open.add(connection)
        self._local.connection = connection
        return connection

    def _reusable(self) -> _Connection | None:
        """This thread's connection, locked, if it is still worth using; else None (and it is closed)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            return None
        connection.lock.acquire()
        idle = self.clock() - connection.last_used
        if not connection.closed and idle > self.idle_seconds:
            self._discard(connection, polite=True)
        elif not connection.closed and idle > self.probe_after and not _answers(connection.smtp.noop):
            self._discard(connection)
        if connection.closed:
            connection.lock.release()
            return None
        return connection

    def _deliver(self, connection: _Connection, recipient: str, content: bytes, *, reused: bool) -> None:
        """One MAIL/RCPT/DATA transaction on an open connection; raises a classified ProviderError, or
        _DeadConnection when a reused connection was found closed before the content went out."""
        smtp = connection.smtp
        smtp.in_data = smtp.content_sent = False
        connection.messages += 1
        try:
            code, reply = smtp.mail(self.from_address)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, self.from_address)
            code, reply = smtp.rcpt(recipient)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
            smtp.in_data = True
            code, reply = smtp.data(content)
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
        except Exception as e:  # noqa: BLE001 — every failure becomes a classified ProviderError
            connection.last_used = self.clock()
            if reused and not smtp.content_sent and _closed_by_server(e):
                self._discard(connection)
                raise _DeadConnection() from e
            self._after_refusal(connection, e)
            raise classify(e, content_sent=smtp.content_sent) from e
        connection.last_used = self.clock()
        if connection.messages >= self.max_per_connection:
            self._discard(connection, polite=True)

    def _after_refusal(self, connection: _Connection, error: Exception) -> None:
        """Keep a connection whose server refused the email (after RSET, which ends the transaction); drop it
        after anything else (a timeout, a dropped connection: its state is unknown)."""
        answered = isinstance(error, (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused))
        if not answered or _closed_by_server(error):
            self._discard(connection)
        elif connection.messages >= self.max_per_connection:
            self._discard(connection, polite=True)
        elif not _answers(connection.smtp.rset):
            self._discard(connection)

    def _discard(self, connection: _Connection, *, polite: bool = False) -> None:
        """Close a connection (QUIT when `polite`, i.e. it is healthy) and forget it."""
        connection.closed = True
        with self._open_lock:
            self._open.discard(connection)
        if polite:
            _quit(connection.smtp)
        else:
            connection.smtp.close()

    def _close_idle(self) -> None:
        """Now and then, QUIT connections idle past SMTP_IDLE_SECONDS, such as those of threads that stopped."""
        now = self.clock()
        if now - self._last_sweep < SWEEP_EVERY_SECONDS:
            return
        self._last_sweep = now
        with self._open_lock:
            idle = [c for c in self._open if now - c.last_used > self.idle_seconds]
        for connection in idle:
            if connection.lock.acquire(blocking=False):  # in use right now: not idle after all
                try:
                    if not connection.closed:
                        self._discard(connection, polite=True)
                finally:
                    connection.lock.release()


def _answers(command) -> bool:
    """True when an SMTP command (NOOP, RSET) gets 250: the session is alive and usable."""
    try:
        return command()[0] == 250
    except (smtplib.SMTPException, OSError):
        return False


def _closed_by_server(error: Exception) -> bool:
    """The server had gone (closed, reset) or is closing the session (421), rather than refusing the email.

    Not a timeout (smtplib reports one as SMTPServerDisconnected too): a server that hangs is no dead
    connection, and waiting for it a second time would only hold the send up."""
    if isinstance(error.__context__, TimeoutError) or isinstance(error, TimeoutError):
        return False
    if isinstance(error, (smtplib.SMTPServerDisconnected, ConnectionError)):
        return True
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return any(code == 421 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code == 421


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
    return ProviderError(f"smtp:{code}", _text(reply), retryable=not 500 <= code < 600,
                         raw={"smtp_code": code, "reply": _text(reply)[:500]})


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
