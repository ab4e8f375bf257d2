"""Benchmark: email through SmtpProvider from 4 sending threads into the real aiosmtpd peer (tests/peers),
with connections reused (SMTP_MAX_PER_CONNECTION=100, the default) beside the old behaviour, a fresh
connection per email (SMTP_MAX_PER_CONNECTION=1, the baseline), in the same run, on a plain connection and
on STARTTLS + AUTH (where each new connection also costs a TLS handshake and a login).

The peer runs in a process of its own, as a real relay would: in this process it would compete with the
senders for the GIL and slow both modes alike. Also printed: the CPU cost of building one email (MIME parts
and header folding), which bounds what one process can send whatever the connections.
Usage: .venv/bin/python bench/smtp_throughput.py [N]   (N emails per part, default 2,000)"""
import json
import shutil
import subprocess
import sys
import threading
import time
import warnings

from common import ROOT

THREADS = 4

# The peer's process: start the server, say where it is, then answer "stats" / "clear" lines on stdin.
PEER = """
import json, sys, warnings
warnings.filterwarnings("ignore")
from tests.peers.smtp_server import SmtpServer
server = SmtpServer(**json.loads(sys.argv[1])).start()
print(json.dumps({"port": server.port, "cert": str(server.cert_path or ""), "username": server.username,
                  "password": server.password}), flush=True)
for line in sys.stdin:
    if line.strip() == "clear":
        server.messages.clear()
    print(json.dumps({"messages": len(server.messages), "connections": server.connections}), flush=True)
server.stop()
"""


class Peer:
    """The aiosmtpd peer in a child process."""

    def __init__(self, **kind):
        self.starttls, self.requires_auth = kind.get("starttls", False), kind.get("auth", False)
        self.process = subprocess.Popen([sys.executable, "-c", PEER, json.dumps(kind)], cwd=ROOT, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        info = json.loads(self.process.stdout.readline())
        self.host, self.port, self.cert = "127.0.0.1", info["port"], info["cert"]
        self.username, self.password = info["username"], info["password"]

    def ask(self, command: str = "stats") -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def client_tls_context(self):
        import ssl
        return ssl.create_default_context(cafile=self.cert)

    def __enter__(self) -> "Peer":
        return self

    def __exit__(self, *exc) -> None:
        self.process.stdin.close()
        self.process.wait(10)


def send_all(app, server, n: int, max_per_connection: int) -> tuple[float, int]:
    """N emails from THREADS threads through one provider; returns (emails/s, connections the server saw)."""
    from notifications.models import Channel, Notification
    from notifications.smtp_provider import SmtpProvider

    options = {}
    if server.starttls:
        options.update(starttls=True, tls_context=server.client_tls_context())
    if server.requires_auth:
        options.update(username=server.username, password=server.password)
    provider = SmtpProvider(host=server.host, port=server.port, mail_from="Lifeboat <status@lifeboat.example>",
                            max_per_connection=max_per_connection, **options)
    messages = [Notification(id=i, dedupe_key=f"bench:email:{i}", channel=Channel.EMAIL,
                             recipient=f"user{i}@example.com", subject="Your data: an update",
                             body=f"Subscriber {i}: your photos and contacts have been recovered.\n\nThank you.")
                for i in range(n)]
    before = server.ask("clear")["connections"]
    counter, lock, failures = iter(messages), threading.Lock(), []

    def sender():
        with app.app_context():  # the unsubscribe link is built from PUBLIC_BASE_URL
            while True:
                with lock:
                    message = next(counter, None)
                if message is None:
                    return
                try:
                    provider.send(message)
                except Exception as e:  # noqa: BLE001 — counted and reported, the run goes on
                    failures.append(e)

    threads = [threading.Thread(target=sender) for _ in range(THREADS)]
    t = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t
    provider.close()
    stats = server.ask()
    if failures or stats["messages"] != n:
        raise SystemExit(f"{len(failures)} sends failed ({failures[:3]}); the server got {stats['messages']} of {n}")
    return n / elapsed, stats["connections"] - before


def build_cost(app, n: int = 200) -> float:
    """Milliseconds of CPU to build one email (SmtpProvider.build + as_bytes), single thread."""
    from notifications.models import Channel, Notification
    from notifications.smtp_provider import SmtpProvider

    provider = SmtpProvider(host="127.0.0.1", mail_from="Lifeboat <status@lifeboat.example>")
    messages = [Notification(id=i, dedupe_key=f"bench:build:{i}", channel=Channel.EMAIL,
                             recipient=f"user{i}@example.com", subject="Your data: an update",
                             body="Your photos and contacts have been recovered.") for i in range(n)]
    with app.app_context():
        t = time.process_time()
        for message in messages:
            provider.build(message).as_bytes()
    return (time.process_time() - t) / n * 1000


def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), 2_000))
    sys.path.insert(0, str(ROOT))
    warnings.filterwarnings("ignore")
    from app import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "PUBLIC_BASE_URL": "http://status.example.com"})
    parts = [("plain", {})]
    if shutil.which("openssl"):
        parts.append(("STARTTLS + AUTH", {"starttls": True, "auth": True}))
    print(f"SMTP throughput, {n:,} emails per part, {THREADS} sending threads, aiosmtpd peer on loopback")
    for label, kind in parts:
        with Peer(**kind) as server:
            send_all(app, server, min(n, 100), 100)  # warm up: imports, first TLS context
            fresh, fresh_connections = send_all(app, server, n, 1)
            reused, reused_connections = send_all(app, server, n, 100)
        print(f"{label}:")
        print(f"  baseline, a fresh connection per email (SMTP_MAX_PER_CONNECTION=1): {fresh:,.0f} emails/s "
              f"({fresh_connections:,} connections)")
        print(f"  reused connections (SMTP_MAX_PER_CONNECTION=100): {reused:,.0f} emails/s "
              f"({reused_connections:,} connections)")
        print(f"  ratio: {reused / fresh:.1f}x")
    print(f"building one email costs {build_cost(app):.1f} ms of CPU in the sending process")


if __name__ == "__main__":
    main()
