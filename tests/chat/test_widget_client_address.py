"""The widget's per-address flood limits count the real client, not what a header claims."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from chat.identity import open_visitor, sign_socket_token
from tests.chat.conftest import send_message_code

pytestmark = pytest.mark.django_db(transaction=True)


async def _codes(widget, peer: str, forwarded_for: list[str], proto: bytes = b"") -> list[str]:
    """One message from a new visitor per X-Forwarded-For value, all from the direct peer `peer`."""
    from config.asgi import application

    codes = []
    for index, forwarded in enumerate(forwarded_for):
        visitor = await sync_to_async(open_visitor)(widget)
        token = await sync_to_async(sign_socket_token)(widget, visitor)
        headers = [(b"origin", b"https://testserver" if proto else b"http://testserver"), (b"host", b"testserver"),
                   (b"x-forwarded-for", forwarded.encode())]
        if proto:
            headers.append((b"x-forwarded-proto", proto))
        socket = WebsocketCommunicator(application, f"/ws/chat/widget/?token={token}", headers=headers)
        socket.scope["client"] = (peer, 40000 + index)
        connected, _ = await socket.connect()
        assert connected
        await socket.receive_json_from()
        codes.append(await send_message_code(socket, f"x{index}"))
        await socket.disconnect()
    return codes


async def test_a_forged_forwarded_for_does_not_escape_the_per_ip_limit(widget, scripted_bot, scripted_sentiment,
                                                                      settings):
    settings.CHAT_IP_MESSAGES_PER_MINUTE = 2
    settings.TRUSTED_PROXIES = []
    codes = await _codes(widget, "203.0.113.9", ["198.51.100.1", "198.51.100.2", "198.51.100.3"])
    assert codes == ["ack", "ack", "rate_limited"]


async def test_a_trusted_proxy_forwards_each_visitors_own_address(widget, scripted_bot, scripted_sentiment,
                                                                  settings):
    settings.CHAT_IP_MESSAGES_PER_MINUTE = 2
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    # Behind the proxy, three visitors are three addresses; one address is still limited.
    assert await _codes(widget, "10.0.0.1", ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) == ["ack"] * 3
    again = ["6.6.6.6, 198.51.100.1", "7.7.7.7, 198.51.100.1"]  # its own forged prefix changes nothing
    assert await _codes(widget, "10.0.0.1", again) == ["ack", "rate_limited"]


async def test_the_widget_socket_behind_a_tls_proxy_is_same_origin(widget, scripted_bot, scripted_sentiment,
                                                                   settings):
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    # The page is https://testserver; the proxy tells Daphne so (X-Forwarded-Proto), so Origin matches.
    assert await _codes(widget, "10.0.0.1", ["198.51.100.1"], proto=b"https") == ["ack"]


def _sessions(widget, peer: str, forwarded_for: list[str]) -> list[int]:
    client = Client()
    return [client.post(f"/chat/widget/{widget.public_key}/session", data=json.dumps({}),
                        content_type="application/json", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded).status_code
            for forwarded in forwarded_for]


def test_visitor_sessions_are_limited_per_real_address(widget, settings, monkeypatch):
    monkeypatch.setattr("chat.widget_views.SESSIONS_PER_IP_PER_MINUTE", 2)
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    assert _sessions(widget, "203.0.113.9", ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) == [200, 200, 429]
    assert _sessions(widget, "10.0.0.1", ["198.51.100.4", "198.51.100.5", "198.51.100.6"]) == [200, 200, 200]
