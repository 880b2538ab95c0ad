"""The client's address and scheme: one rule for pages, the API and sockets.

Anyone can send `X-Forwarded-For` and `X-Forwarded-Proto`. They are believed only when the direct
peer is one of TRUSTED_PROXIES (env `TRUSTED_PROXIES`: comma-separated addresses or CIDR networks,
empty by default). Then the client is the right-most address in `X-Forwarded-For` that is not a
trusted proxy: each trusted proxy appends the peer it saw, so everything left of that entry was
written by the client itself and may be forged.

Daphne runs without `--proxy-headers` (which believes the left-most entry from anyone);
`ProxyHeadersMiddleware` applies this rule to every HTTP and WebSocket scope instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:  # settings.py imports this module: keep it free of django.http at import time
    from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN = "unknown"


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """`["10.0.0.1", "fd00::/8"]` -> networks; a malformed entry stops start-up naming it."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES: {entry!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/8)."
            ) from None
    return tuple(networks)


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(entries)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def is_trusted_proxy(peer: str) -> bool:
    address = _address(peer)
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def resolve(peer: str, forwarded_for: str) -> str:
    """The client's address, from the direct peer and the X-Forwarded-For it sent (may be empty)."""
    peer = peer or UNKNOWN
    if not forwarded_for or not is_trusted_proxy(peer):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    # Every hop ours: the request started inside the network, at the left-most one.
    client = next((hop for hop in reversed(hops) if not is_trusted_proxy(hop)), hops[0] if hops else peer)
    # A trusted proxy wrote that entry, so it is an address unless the proxy chain is misconfigured:
    # then the proxy itself is the best we know (and its clients share its limits).
    address = _address(client)
    return str(address) if address is not None else peer


def for_request(request: HttpRequest) -> str:
    return resolve(request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR", ""))


def _headers(scope, name: bytes) -> str:
    # Repeated headers count as one comma-separated list, as in Django's request.META.
    return ",".join(value.decode("latin-1") for key, value in scope.get("headers", []) if key.lower() == name)


def _peer(scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def for_scope(scope) -> str:
    """The client's address of an ASGI (HTTP or WebSocket) scope."""
    return resolve(_peer(scope), _headers(scope, b"x-forwarded-for"))


def forwarded_scheme(scope) -> str | None:
    """`http`/`https` as the trusted proxy in front saw it, or None to keep the connection's own."""
    if not is_trusted_proxy(_peer(scope)):
        return None
    values = [v.strip().lower() for v in _headers(scope, b"x-forwarded-proto").split(",") if v.strip()]
    # The right-most value is the one our nearest proxy wrote.
    return values[-1] if values and values[-1] in ("http", "https") else None


class ProxyHeadersMiddleware:
    """ASGI middleware: the scope's client and scheme are those the trusted proxies report.

    Django's REMOTE_ADDR and request.is_secure() (SECURE_SSL_REDIRECT, secure cookies) and the widget
    socket's same-origin check then see the visitor's real connection behind a TLS-terminating proxy.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and is_trusted_proxy(_peer(scope)):
            scheme = forwarded_scheme(scope)
            scope = dict(scope, client=(for_scope(scope), 0))
            if scheme is not None:
                secure = scheme == "https"
                scope["scheme"] = ("wss" if secure else "ws") if scope["type"] == "websocket" else scheme
        return await self.app(scope, receive, send)
