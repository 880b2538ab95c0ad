"""The streaming path end to end on the live stack: SSE framing, client disconnect, shared limits."""

import http.client
import json
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from tests.conftest import REPO, celery_client, free_port
from tests.factories import deploy_tiny_bot, organization_with_key

pytestmark = pytest.mark.live


@pytest.fixture(scope="session")
def chatty_folder(tmp_path_factory):
    from tests.tiny_models import build_tiny_chat_model, silence_end_of_turn

    return silence_end_of_turn(build_tiny_chat_model(tmp_path_factory.mktemp("chatty"), seed=3))


def engine_stats(live) -> dict:
    return celery_client(live.redis_url).send_task("store.serving.tasks.engine_stats", queue="inference").get(
        timeout=30)["counters"]


def open_stream(url: str, key: str, body: dict) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.request("POST", "/v1/chat/completions", body=json.dumps(body),
                       headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    return connection.getresponse()


def test_leaving_mid_stream_stops_the_generation(live, chatty_folder):
    from store.catalog import import_model

    organization, _, key = organization_with_key()
    deploy_tiny_bot(organization, import_model(str(chatty_folder), slug="chatty"), slug="chatty-bot")
    before = engine_stats(live)
    response = open_stream(live.url, key, {"model": "chatty-bot", "max_tokens": 440, "stream": True,
                                           "messages": [{"role": "user", "content": "Talk forever"}]})
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    assert response.getheader("X-Accel-Buffering") == "no"
    events = [response.readline() for _ in range(8)]
    assert sum(line.startswith(b"data: {") for line in events) >= 3
    response.close()  # the customer closed the tab
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stats = engine_stats(live)
        if stats["cancelled"] > before["cancelled"]:
            break
        time.sleep(0.3)
    assert stats["cancelled"] == before["cancelled"] + 1
    time.sleep(1)
    after = engine_stats(live)
    assert after["decoded_tokens"] == stats["decoded_tokens"], "nothing is decoded for the departed client"
    assert after["decoded_tokens"] - before["decoded_tokens"] < 440


def test_rate_limits_are_shared_by_two_web_processes(live):
    _, _, key = organization_with_key(requests_per_minute=3)
    port = free_port()
    env = dict(live.env, REDIS_URL=live.redis_url)
    second = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                               "config.asgi:application"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        other = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/healthz")
                break
            except OSError:
                time.sleep(0.2)

        def status(base: str) -> tuple[int, str | None]:
            parts = urlsplit(base)
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            connection.request("GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})
            response = connection.getresponse()
            response.read()
            return response.status, response.getheader("Retry-After")

        results = [status(live.url), status(other), status(live.url), status(other)]
        assert [code for code, _ in results] == [200, 200, 200, 429]
        assert int(results[-1][1]) >= 1
    finally:
        second.terminate()
        second.wait(10)

