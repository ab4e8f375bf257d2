"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives and refuses with 4xx/5xx on demand."""
import collections
import email
import email.policy
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

USERNAME = "lifeboat"
PASSWORD = "smtp-stand-in-password"


class _Received(dict):
    """One received message; its "message" (the parsed EmailMessage) is parsed when first read, so the server
    itself does no more per message than a relay would (parsing a MIME email takes milliseconds)."""

    def __missing__(self, key):
        if key != "message":
            raise KeyError(key)
        self["message"] = email.message_from_bytes(self["raw"], policy=email.policy.default)
        return self["message"]


class _Session(SMTP):
    """aiosmtpd's protocol for one client connection, numbered and tracked by the SmtpServer."""

    number = 0

    def connection_lost(self, error):
        super().connection_lost(error)
        self.event_handler._disconnected(self)


class _Controller(Controller):
    """Binds port 0 and learns the port the kernel chose, so parallel runs never collide; one _Session per
    client connection (the factory runs once per TCP connection, STARTTLS included)."""

    def factory(self):
        session = _Session(self.handler, **self.SMTP_kwargs)
        self.handler._connected(session)
        return session

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpServer:
    """aiosmtpd on 127.0.0.1 with scripted refusals; optional AUTH (LOGIN/PLAIN) and STARTTLS."""

    def __init__(self, *, auth: bool = False, starttls: bool = False,
                 username: str = USERNAME, password: str = PASSWORD):
        # aiosmtpd offers every handler attribute named auth_* as an AUTH mechanism: hence these names.
        self.requires_auth, self.starttls = auth, starttls
        self.username, self.password = username, password
        self.messages: list[dict] = []  # {"mail_from", "rcpt_tos", "message": EmailMessage, "raw", "time",
        #                                  "connection": the number of the client connection it came on}
        self.refusals: list[dict] = []  # every refusal answered: {"stage", "rcpt", "code", "message"}
        self.failed_logins = 0
        self.connections = 0  # client connections (SMTP sessions) opened so far; each message notes its number
        self.quits = 0  # sessions the client ended politely with QUIT
        self._live: set[_Session] = set()
        self.cert_path: Path | None = None  # the self-signed certificate to trust when starttls=True
        self._script: collections.deque = collections.deque()
        self._refuse_rcpt: dict[str, tuple[str, int, str]] = {}
        self._lock = threading.Lock()
        self._controller: _Controller | None = None
        self._tmp: str | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> "SmtpServer":
        """Serve on a free loopback port in aiosmtpd's own thread."""
        kwargs: dict = {}
        if self.requires_auth:
            # AUTH is enforced in handle_MAIL rather than with auth_required=True, which makes aiosmtpd warn on
            # every plain-text connection; the client sees the same 530 either way.
            kwargs.update(authenticator=self._authenticate, auth_require_tls=self.starttls)
        if self.starttls:
            kwargs.update(tls_context=self._tls_context(), require_starttls=True)
        self._controller = _Controller(self, hostname="127.0.0.1", port=0, **kwargs)
        self._controller.start()
        with self._lock:  # aiosmtpd opened a connection of its own to check it is up: not a client's
            self.connections = 0
        return self

    def stop(self) -> None:
        """Stop serving and remove the temporary certificate."""
        if self._controller:
            self._controller.stop()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "SmtpServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self._controller.port

    @property
    def open_connections(self) -> int:
        """Client connections open right now."""
        with self._lock:
            return len(self._live)

    def drop_connections(self, timeout: float = 5.0) -> int:
        """Close every open connection from the server's side, as an idle timeout or a restart does, without a
        word to the client; returns how many were closed (once they are)."""
        with self._lock:
            sessions = [s for s in self._live if s.transport is not None]
        for session in sessions:
            self._controller.loop.call_soon_threadsafe(session.transport.close)
        deadline = time.monotonic() + timeout
        while any(s in self._live for s in sessions) and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(sessions)

    def wait_for_connections(self, n: int, timeout: float = 5.0) -> bool:
        """Wait until at most `n` client connections are open (a QUIT is answered before the socket closes)."""
        deadline = time.monotonic() + timeout
        while self.open_connections > n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.open_connections <= n

    def env(self) -> dict[str, str]:
        """Settings that point the product at this server."""
        settings = {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port), "SMTP_STARTTLS": "1" if self.starttls else ""}
        if self.requires_auth:
            settings.update(SMTP_USERNAME=self.username, SMTP_PASSWORD=self.password)
        return settings

    def client_tls_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate (and verifies it)."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def _tls_context(self) -> ssl.SSLContext:
        if not shutil.which("openssl"):
            raise RuntimeError("STARTTLS mode needs the openssl command to make a throwaway certificate")
        self._tmp = tempfile.mkdtemp(prefix="smtp-standin-")
        self.cert_path, key = Path(self._tmp, "cert.pem"), Path(self._tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", str(key), "-out", str(self.cert_path)], check=True, capture_output=True)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, key)
        return context

    # -- scripting -------------------------------------------------------------------------------------------
    def refuse_next(self, n: int = 1, code: int = 451, message: str = "4.3.0 Try again later",
                    stage: str = "rcpt") -> None:
        """Refuse the next `n` recipients (stage "rcpt") or messages (stage "data") with `code message`."""
        assert stage in ("rcpt", "data"), stage
        with self._lock:
            self._script.extend([(stage, code, message)] * n)

    def refuse_for(self, rcpt: str, code: int = 550, message: str = "5.1.1 Mailbox unavailable",
                   stage: str = "rcpt") -> None:
        """Always refuse mail to `rcpt` (at RCPT, or at DATA when it is among the recipients)."""
        assert stage in ("rcpt", "data"), stage
        with self._lock:
            self._refuse_rcpt[rcpt.lower()] = (stage, code, message)

    def clear_refusals(self) -> None:
        """Forget scripted refusals."""
        with self._lock:
            self._script.clear()
            self._refuse_rcpt.clear()

    def _take(self, stage: str, rcpts: list[str]) -> tuple[int, str] | None:
        with self._lock:
            if self._script and self._script[0][0] == stage:
                _, code, message = self._script.popleft()
                return code, message
            for rcpt in rcpts:
                rule = self._refuse_rcpt.get(rcpt.lower())
                if rule and rule[0] == stage:
                    return rule[1], rule[2]
        return None

    def _refuse(self, stage: str, rcpt: str | None, refusal: tuple[int, str]) -> str:
        with self._lock:
            self.refusals.append({"stage": stage, "rcpt": rcpt, "code": refusal[0], "message": refusal[1]})
        return f"{refusal[0]} {refusal[1]}"

    def _connected(self, session: _Session) -> None:
        with self._lock:
            self.connections += 1
            session.number = self.connections
            self._live.add(session)

    def _disconnected(self, session: _Session) -> None:
        with self._lock:
            self._live.discard(session)

    # -- aiosmtpd handler hooks ------------------------------------------------------------------------------
    async def handle_QUIT(self, server, session, envelope):
        with self._lock:
            self.quits += 1
        return "221 Bye"

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword)
              and (auth_data.login, auth_data.password) == (self.username.encode(), self.password.encode()))
        if not ok:
            with self._lock:
                self.failed_logins += 1
        # handled=False: aiosmtpd answers 535 itself (handled=True would leave the client waiting).
        return AuthResult(success=ok, handled=False)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.requires_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from, envelope.mail_options = address, list(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self._take("rcpt", [address])
        if refusal:
            return self._refuse("rcpt", address, refusal)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        refusal = self._take("data", envelope.rcpt_tos)
        if refusal:
            return self._refuse("data", None, refusal)
        raw = envelope.original_content or envelope.content
        with self._lock:
            self.messages.append(_Received(mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos), raw=raw,
                                           time=time.time(), connection=server.number))
        return "250 Message accepted for delivery"
