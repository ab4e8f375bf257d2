"""Where a webhook may go: https only, and only to public addresses (no private, loopback, link-local,
multicast, reserved or unspecified ones), so an operator's URL cannot reach into our own network (SSRF).

The URL is checked when it is registered, and the addresses its host resolves to are checked again at every
send; the send then connects to the address that was checked (transport.py), so DNS cannot answer one address
to the check and another to the connection (rebinding). WEBHOOKS_ALLOW_PRIVATE_TARGETS lifts both rules
(private addresses and plain http), for tests and private deployments."""
import ipaddress
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from urllib.parse import urlsplit

URL_MAX = 2000
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")

Resolver = Callable[..., list]  # socket.getaddrinfo's signature


class Refused(Exception):
    """A target we will not send to; the message says why, for the operator."""


class Unresolved(Refused):
    """A host name that does not resolve (now): refused at send time, accepted at registration."""


def address_refusal(address: str) -> str | None:
    """Why `address` is not a public one ("a loopback address"), or None when it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for test, what in ((ip.is_unspecified, "an unspecified"), (ip.is_loopback, "a loopback"),
                       (ip.is_link_local, "a link-local"), (ip.is_multicast, "a multicast"),
                       (ip.is_private, "a private"), (ip.is_reserved, "a reserved")):
        if test:
            return f"{what} address"
    if not ip.is_global:  # shared (100.64/10), documentation and other special-purpose ranges
        return "not a public address"
    return None


def check_url(url: str, *, allow_private: bool, resolver: Resolver | None = socket.getaddrinfo) -> str:
    """The URL, stripped, if it may be registered; Refused with the reason otherwise. A host name is also
    resolved now (at most REGISTRATION_LOOKUP_SECONDS; resolver None skips it): one that points at a private
    address is refused at once, though only the check at every send is a guarantee (DNS answers change)."""
    url = (url or "").strip()
    if not url:
        raise Refused("Give the endpoint's URL.")
    if len(url) > URL_MAX:
        raise Refused(f"At most {URL_MAX} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("This is not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise Refused("Use an https:// URL.")
    if scheme == "http" and not allow_private:
        raise Refused("Use https: plain http is refused (WEBHOOKS_ALLOW_PRIVATE_TARGETS allows it for private "
                      "deployments).")
    host = parts.hostname
    if not host:
        raise Refused("The URL has no host name.")
    if parts.username is not None or parts.password is not None:
        raise Refused("Put no user name or password in the URL (the signature authenticates us).")
    if port == 0:
        raise Refused("Port 0 cannot be reached.")
    if allow_private:
        return url
    if host.rstrip(".").lower() in _LOCAL_NAMES or host.rstrip(".").lower().endswith(".localhost"):
        raise Refused(f"{host} is this machine: give a public address.")
    try:
        ipaddress.ip_address(host)
    except ValueError:  # a name: its addresses are checked now if DNS answers quickly, and at every send
        if resolver is not None:
            _early_lookup(host, port or (443 if scheme == "https" else 80), resolver)
        return url
    if (why := address_refusal(host)) is not None:
        raise Refused(f"{host} is {why}: give a public address.")
    return url


REGISTRATION_LOOKUP_SECONDS = 2.0


def _early_lookup(host: str, port: int, resolver: Resolver) -> None:
    """Refuse a name that resolves to a non-public address now; a name that does not resolve (yet), or not
    within the time allowed (a thread, as getaddrinfo takes no timeout), is accepted: the send-time check decides."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-dns")
    try:
        pool.submit(resolve, host, port, allow_private=False, resolver=resolver).result(
            timeout=REGISTRATION_LOOKUP_SECONDS)
    except (FutureTimeout, Unresolved):
        return
    except Refused as e:
        raise Refused(f"{e} Give a public address.") from None
    finally:
        pool.shutdown(wait=False)  # a lookup still running ends on its own


def resolve(host: str, port: int, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo) -> str:
    """The address to connect to for host:port: every address the name resolves to must be public (unless
    allowed), so that no answer of a round-robin or rebinding DNS can reach a private one. Refused otherwise."""
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise Unresolved(f"{host} could not be resolved ({e}).") from None
    addresses = [info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not addresses:
        raise Unresolved(f"{host} has no IPv4 or IPv6 address.")
    if not allow_private:
        for address in addresses:
            if (why := address_refusal(address)) is not None:
                raise Refused(f"{host} resolves to {address}, {why}.")
    return addresses[0]
