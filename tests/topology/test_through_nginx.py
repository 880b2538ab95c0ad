"""nginx in front of the Daphne processes, configured by deploy/nginx.conf: pages, static files, /v1 (its
streams too) and the widget socket all work through it, and the app sees the caller's address, not the
proxy's, even when the caller forges X-Forwarded-For."""

from __future__ import annotations

import json

import pytest
import redis

from tests.topology.clients import WidgetTab, api, data_events, frames_of, open_stream, request

pytestmark = pytest.mark.topology

CALLER = "127.0.0.2"  # the caller's loopback address; nginx reaches Daphne from 127.0.0.1
FORGED = "203.0.113.9"


def buckets(client: redis.Redis, address: str) -> list[bytes]:
    """The chat rate-limit buckets kept for a client address (keyed by what the app took as the client)."""
    return sorted(client.scan_iter(match=f"rl:chat:*:{address}"))


def test_pages_static_files_and_the_api_work_through_nginx(shop, topo):
    status, headers, body = request(topo.url + "/", source=CALLER)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"<html" in body and headers.get("content-security-policy")  # the app's page, not an nginx one
    # Static files come from STATIC_ROOT, served by nginx itself (its cache header, the collected bytes).
    status, headers, body = request(topo.url + "/static/chat/widget.js", source=CALLER)
    assert status == 200 and headers["cache-control"] == "max-age=3600"
    assert body == (topo.static_root / "chat" / "widget.js").read_bytes()

    status, _, body = api(topo.url, shop["key"], "/v1/models", source=CALLER)
    assert status == 200 and "chatty-bot" in {model["id"] for model in json.loads(body)["data"]}
    response = open_stream(topo.url, shop["key"], {"model": "chatty-bot", "max_tokens": 5,
                                                   "messages": [{"role": "user", "content": "Hi"}]}, source=CALLER)
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    events = data_events(response.read())
    assert events[-1] == "[DONE]" and all('"error"' not in event for event in events)
    assert sum('"content"' in event for event in events) >= 1


def test_the_widget_works_through_nginx_and_the_app_sees_the_callers_address(shop, topo):
    client = redis.Redis.from_url(topo.redis_url)
    for bucket in client.scan_iter(match="rl:chat:*"):  # other tests' chats, made from 127.0.0.1
        client.delete(bucket)
    key = shop["widget"].public_key
    # A forged X-Forwarded-For is the left-most entry: the app takes the right-most one nginx wrote.
    status, _, _ = request(f"{topo.url}/chat/widget/{key}/session", "POST", {},
                           {"X-Forwarded-For": FORGED}, source=CALLER)
    assert status == 200
    tab = WidgetTab(topo.url, key, source=CALLER).open()
    tab.wait_for(frames_of("hello"))
    tab.say("Hello through the proxy")
    tab.wait_for(lambda frames: tab.messages("bot"), timeout=60)
    assert tab.message_frames("bot") == 1
    tab.close()

    assert buckets(client, CALLER) == [f"rl:chat:ip:{CALLER}".encode(), f"rl:chat:session:{CALLER}".encode()]
    assert buckets(client, "127.0.0.1") == [] and buckets(client, FORGED) == []
    client.close()
