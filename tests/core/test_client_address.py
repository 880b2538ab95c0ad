"""The one rule for the client's address and scheme (core/client_address.py)."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from core import client_address
from core.client_address import ProxyHeadersMiddleware, parse_networks, resolve


@pytest.fixture
def proxies(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.1", "10.1.0.0/16", "fd00::/8"]


def test_it_ignores_forwarding_headers_from_an_untrusted_peer(proxies):
    assert resolve("203.0.113.9", "198.51.100.1") == "203.0.113.9"
    assert resolve("203.0.113.9", "10.0.0.1, 198.51.100.1") == "203.0.113.9"


def test_it_trusts_nobody_by_default(settings):
    settings.TRUSTED_PROXIES = []
    assert resolve("10.0.0.1", "198.51.100.1") == "10.0.0.1"


def test_it_takes_the_right_most_untrusted_hop_behind_a_trusted_proxy(proxies):
    assert resolve("10.0.0.1", "198.51.100.1") == "198.51.100.1"
    # The client wrote "1.2.3.4" itself; our proxies appended the rest.
    assert resolve("10.0.0.1", "1.2.3.4, 198.51.100.1, 10.1.2.3") == "198.51.100.1"
    assert resolve("fd00::5", "2001:db8::7") == "2001:db8::7"
    assert resolve("::ffff:10.0.0.1", "198.51.100.1") == "198.51.100.1"


def test_it_takes_the_left_most_hop_when_every_hop_is_a_trusted_proxy(proxies):
    assert resolve("10.0.0.1", "10.1.0.4, 10.1.0.5") == "10.1.0.4"


def test_it_falls_back_to_the_proxy_when_the_chain_is_not_addresses(proxies):
    assert resolve("10.0.0.1", "not-an-address") == "10.0.0.1"
    assert resolve("10.0.0.1", " , ") == "10.0.0.1"
    assert resolve("", "") == "unknown"


def test_it_reads_django_requests_and_asgi_scopes_the_same_way(proxies):
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.1")
    assert client_address.for_request(request) == "198.51.100.1"
    scope = {"client": ("10.0.0.1", 5000), "headers": [(b"x-forwarded-for", b"1.2.3.4"),
                                                        (b"x-forwarded-for", b"198.51.100.1")]}
    assert client_address.for_scope(scope) == "198.51.100.1"
    assert client_address.for_scope({"client": ("203.0.113.9", 5000), "headers": scope["headers"]}) == "203.0.113.9"


def test_a_malformed_trusted_proxy_setting_stops_start_up():
    assert [str(n) for n in parse_networks(["10.0.0.1", "10.1.0.0/16"])] == ["10.0.0.1/32", "10.1.0.0/16"]
    with pytest.raises(ImproperlyConfigured, match="'10.0.0.300' is not an IP address or network"):
        parse_networks(["10.0.0.300"])


async def _scope_seen(scope: dict) -> dict:
    seen = {}

    async def app(inner_scope, receive, send):
        seen.update(inner_scope)

    await ProxyHeadersMiddleware(app)(scope, None, None)
    return seen


FORWARDED = [(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-proto", b"https")]


async def test_the_middleware_applies_a_trusted_proxys_address_and_scheme(proxies):
    seen = await _scope_seen({"type": "http", "scheme": "http", "client": ("10.0.0.1", 5000), "headers": FORWARDED})
    assert seen["client"] == ("198.51.100.1", 0) and seen["scheme"] == "https"
    seen = await _scope_seen({"type": "websocket", "scheme": "ws", "client": ("10.0.0.1", 5000),
                              "headers": FORWARDED})
    assert seen["client"] == ("198.51.100.1", 0) and seen["scheme"] == "wss"


async def test_the_middleware_leaves_an_untrusted_peers_scope_alone(proxies):
    scope = {"type": "http", "scheme": "http", "client": ("203.0.113.9", 5000), "headers": FORWARDED}
    seen = await _scope_seen(dict(scope))
    assert seen["client"] == ("203.0.113.9", 5000) and seen["scheme"] == "http"


def test_daphne_does_not_believe_forwarding_headers_from_anyone():
    from pathlib import Path

    procfile = (Path(__file__).resolve().parents[2] / "Procfile").read_text()
    web = next(line for line in procfile.splitlines() if line.startswith("web:"))
    assert "--proxy-headers" not in web  # Daphne's own option takes the left-most, forgeable entry
