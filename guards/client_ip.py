"""The one place that decides who the client is: the socket peer, or what trusted proxies say.

Handlers read the answer with core.request_facts.facts_of(...).client_ip.

uvicorn must run with `proxy_headers=False`, so that it never rewrites the peer before we see it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from core.request_facts import set_client

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Headers that steer addresses or URLs; dropped from untrusted peers so nothing downstream
# (Gradio's root-URL logic reads X-Forwarded-Host/-Proto from anyone) can be fooled.
_FORWARDING_HEADERS = {
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"x-forwarded-prefix",
}
# Never honoured, even from a trusted proxy: only X-Forwarded-For is configured.
_IGNORED_HEADERS = {b"x-real-ip", b"forwarded", b"true-client-ip", b"cf-connecting-ip"}


def parse_ip(text: str) -> IPAddress | None:
    """Parse one address as proxies write it (bare, `[v6]`, `v4:port`, `[v6]:port`); None if not one."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (text[end + 1 :] and not _is_port(text[end + 1 :])):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 has at least two colons
        text, port = text.split(":")
        if not port.isdigit():
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 for every rule
    return address


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit()


def resolve_client(
    peer: str | None, forwarded_for: list[str], trusted: tuple[IPNetwork, ...]
) -> str | None:
    """Return the client address: the peer, or the right-most untrusted X-Forwarded-For hop.

    A malformed entry stops the walk and the last trusted hop is the answer: it is the nearest
    address we can vouch for, and we never guess past garbage (nor ever take the left-most entry).
    """
    peer_ip = parse_ip(peer) if peer else None
    if peer_ip is None:
        return peer  # not an IP (a test client, a unix socket): nothing to trust
    current = peer_ip
    if not _trusted(current, trusted):
        return str(current)
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            break
        current = address
        if not _trusted(current, trusted):
            break
    return str(current)


def _trusted(address: IPAddress, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in trusted)


class ClientAddressMiddleware:
    """Rewrite scope["client"] to the real client, so request.client and gr.Request agree everywhere."""

    def __init__(self, app: ASGIApp, trusted_proxies: Iterable[IPNetwork | str] = ()) -> None:
        self.app = app
        self.trusted = tuple(ipaddress.ip_network(n, strict=False) for n in trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        peer_host, peer_port = scope.get("client") or (None, 0)
        peer_ip = parse_ip(peer_host) if peer_host else None
        from_proxy = peer_ip is not None and _trusted(peer_ip, self.trusted)
        forwarded_for = [
            v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"
        ]
        proto = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-proto"]
        client = resolve_client(peer_host, forwarded_for if from_proxy else [], self.trusted)

        dropped = _IGNORED_HEADERS if from_proxy else _IGNORED_HEADERS | _FORWARDING_HEADERS
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k not in dropped]
        if from_proxy and proto:
            # The right-most value is the one our trusted peer wrote.
            scheme = proto[-1].split(",")[-1].strip().lower()
            if scheme in ("http", "https"):
                secure = scheme == "https"
                if scope["type"] == "websocket":
                    scope["scheme"] = "wss" if secure else "ws"
                else:
                    scope["scheme"] = scheme
        same_peer = client == (str(peer_ip) if peer_ip else peer_host)
        scope["client"] = (client, peer_port if same_peer else 0) if client else None
        set_client(scope, client, str(peer_ip) if peer_ip else peer_host)
        await self.app(scope, receive, send)
