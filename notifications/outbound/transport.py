"""One HTTP POST to a webhook endpoint, bounded in time and size, to the address that was checked.

urllib3's connection classes are given the checked IP to connect to, and the URL's host name for the Host
header, TLS SNI and certificate check (server_hostname / assert_hostname): the name is never resolved a second
time. A timer shuts the socket at the deadline, so connecting, waiting for the answer and reading it together
never take longer than `total_seconds` (a server trickling its answer byte by byte included). At most
`max_bytes` of the answer are read; redirects are not followed (they could lead anywhere)."""
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from notifications.outbound.targets import Refused, Resolver, resolve

USER_AGENT = "Lifeboat-Webhooks/1"
EXCERPT_CHARS = 1024


@dataclass
class Answer:
    """What happened: an HTTP status (None when none came), how long it took, the start of the answer, and
    why nothing usable came back (refused target, connection error, timeout)."""

    status: int | None
    latency_ms: int
    excerpt: str = ""
    error: str | None = None
    refused: bool = False  # the target was not allowed: nothing was sent
    truncated: bool = False  # the answer was longer than max_bytes; the rest was not read


def post(url: str, body: bytes, headers: dict, *, allow_private: bool, resolver: Resolver,
         total_seconds: float = 10.0, max_bytes: int = 64 * 1024, ca_certs: str | None = None) -> Answer:
    """POST `body` to `url` (checked again here) and read at most `max_bytes` of the answer. Certificates are
    checked against the system's CAs, or `ca_certs` (a PEM file) when given."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    parts = urlsplit(url)
    https = parts.scheme.lower() == "https"
    host, port = parts.hostname or "", parts.port or (443 if https else 80)
    try:
        if not https and not allow_private:
            raise Refused("Plain http is refused (WEBHOOKS_ALLOW_PRIVATE_TARGETS is off).")
        address = resolve(host, port, allow_private=allow_private, resolver=resolver)
    except Refused as e:
        return Answer(None, took(), error=f"{e} Not sent.", refused=True)
    remaining = max(0.1, total_seconds - (time.monotonic() - started))
    if https:
        conn = HTTPSConnection(address, port, timeout=remaining, server_hostname=host, assert_hostname=host,
                               cert_reqs="CERT_REQUIRED", ca_certs=ca_certs)
    else:
        conn = HTTPConnection(address, port, timeout=remaining)
    timed_out = threading.Event()

    def cut() -> None:  # the deadline: unblock whatever the sending thread is waiting for
        timed_out.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(remaining, cut)
    timer.daemon = True
    timer.start()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers={
            "Host": parts.netloc, "Content-Type": "application/json", "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity", **headers}, preload_content=False, decode_content=False)
        response = conn.getresponse()
        data, truncated = bytearray(), False
        while len(data) <= max_bytes:
            chunk = response.read1(min(16384, max_bytes + 1 - len(data)))
            if not chunk:
                break
            data += chunk
        if len(data) > max_bytes:
            data, truncated = data[:max_bytes], True
        if timed_out.is_set():
            raise TimeoutError
        return Answer(response.status, took(), excerpt=_excerpt(bytes(data)), truncated=truncated)
    except Exception as e:  # noqa: BLE001  every way a send can fail is an outcome to record, never a crash
        # urllib3's NewConnectionError (refused, unreachable) is a ConnectTimeoutError for old callers' sake.
        timeout = isinstance(e, (TimeoutError, socket.timeout, urllib3.exceptions.TimeoutError)) and not isinstance(
            e, urllib3.exceptions.NewConnectionError)
        if timed_out.is_set() or timeout:
            return Answer(None, took(), error=f"No complete answer within {total_seconds:g} s (timeout).")
        return Answer(None, took(), error=f"Could not connect or send: {type(e).__name__}: {e}"[:500])
    finally:
        timer.cancel()
        conn.close()


def _excerpt(data: bytes) -> str:
    """The start of an answer as text, for the delivery log (control characters but line breaks dropped)."""
    text = data[:EXCERPT_CHARS * 4].decode("utf-8", errors="replace")[:EXCERPT_CHARS]
    return "".join(c for c in text if c in "\t\n\r" or c.isprintable())
