"""A real HTTP receiver for outbound webhooks, on loopback (http.server in a thread): it keeps every request
(headers and the exact body bytes) and answers with the statuses the test scripted, then 200. Tests verify
the signatures with the standardwebhooks library, as a real receiver would."""
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    def verify(self, secret: str):
        """The JSON the signature covers, checked with standardwebhooks (raises if the signature is wrong)."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    answers: list = field(default_factory=list)  # (status, body bytes, delay seconds), used in order
    received: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def answer(self, status: int, body: bytes = b"", delay: float = 0.0) -> None:
        self.answers.append((status, body, delay))


def start(tls: tuple[str, str] | None = None) -> Receiver:
    """Serve on 127.0.0.1; with `tls` (certificate file, key file), over https."""
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802  (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.received.append(Received(self.path, {k: v for k, v in self.headers.items()}, body))
            status, answer, delay = receiver.answers.pop(0) if receiver.answers else (200, b"ok", 0.0)
            if delay:
                time.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            try:
                self.wfile.write(answer)
            except OSError:  # the sender stopped reading (the size cap)
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    receiver = Receiver(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver
