"""A hosted model through /v1, the playground and the widget, against a real loopback server: streamed, metered
from the upstream's usage (else estimated), and every upstream failure a clear error (never a hang)."""

import json
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async

from chat.models import Conversation
from knowledge.replies import Served, stream_reply
from store.api_keys import create_api_key
from store.models import UsageDaily
from tests.chat.conftest import receive_until, widget_socket
from tests.factories import bearer
from tests.upstreams.conftest import UPSTREAM_KEY, host
from tests.upstreams.fake_upstream import PIECES, USAGE

pytestmark = pytest.mark.django_db(transaction=True)


def post(client, key, body):
    return client.post("/v1/chat/completions", data=json.dumps(body), content_type="application/json", **bearer(key))


def ask(model_name="hosted", **extra):
    return {"model": model_name, "messages": [{"role": "user", "content": "Hi there"}], **extra}


def sse_events(response) -> list:
    async def collect():
        return b"".join([chunk async for chunk in response.streaming_content])

    lines = [line[6:] for line in async_to_sync(collect)().decode().split("\n\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


@pytest.fixture
def hosted(alice, fake_upstream):
    def make(mode: str):
        return host(alice.organization, fake_upstream.url, mode, slug=mode.replace("_", "-"))[1]

    return make


def test_it_streams_the_upstream_reply_and_meters_its_usage(client, alice_key, hosted, fake_upstream):
    hosted("streams")
    response = post(client, alice_key, ask("streams", stream=True, stream_options={"include_usage": True},
                                           max_tokens=40, temperature=0.0))
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"])
    assert text == "".join(PIECES)
    assert events[-2]["usage"]["prompt_tokens"] == USAGE["prompt_tokens"]
    sent = fake_upstream.received[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent["body"]["model"] == "streams" and sent["body"]["stream"] is True
    assert sent["body"]["stream_options"] == {"include_usage": True} and sent["body"]["max_tokens"] == 40
    assert sent["body"]["messages"][0] == {"role": "system", "content": "You are Alice's assistant."}
    row = UsageDaily.objects.get(model="streams")
    assert (row.requests, row.prompt_tokens, row.completion_tokens) == (1, 17, 3)


def test_without_upstream_usage_it_counts_characters(client, alice_key, hosted):
    hosted("streams_without_usage")
    body = post(client, alice_key, ask("streams-without-usage")).json()
    assert body["choices"][0]["message"]["content"] == "".join(PIECES)
    # characters / 4, rounded up: "Hello from upstream." is 20 characters
    assert body["usage"]["completion_tokens"] == 5 and body["usage"]["prompt_tokens"] > 0


def test_usage_an_upstream_cannot_have_is_estimated_instead(client, alice_key, hosted):
    hosted("lies_about_usage")
    body = post(client, alice_key, ask("lies-about-usage")).json()
    assert body["usage"]["completion_tokens"] == 1 and body["usage"]["prompt_tokens"] > 0


def test_an_upstream_that_ignores_stream_answers_too(client, alice_key, hosted):
    hosted("answers_json")
    body = post(client, alice_key, ask("answers-json")).json()
    assert body["choices"][0]["message"]["content"] == "Plain JSON."
    assert body["choices"][0]["finish_reason"] == "length" and body["usage"]["total_tokens"] == 20


@pytest.mark.parametrize(("mode", "status", "code", "words"), [
    ("rate_limited", 429, "upstream_rate_limited", "Slow down, please"),
    ("fails", 502, "upstream_error", "HTTP 500: the GPU caught fire"),
    ("refuses_the_key", 502, "upstream_auth", "refused our API key"),
    ("malformed", 502, "upstream_bad_response", "not the OpenAI chat completions format"),
    ("wrong_shape", 502, "upstream_bad_response", "no `choices` list"),
    ("nested", 502, "upstream_bad_response", "not the OpenAI chat completions format"),
])
def test_upstream_failures_are_openai_shaped_errors(client, alice_key, hosted, mode, status, code, words):
    hosted(mode)
    response = post(client, alice_key, ask(mode.replace("_", "-")))
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"]
    if mode == "rate_limited":
        assert response["Retry-After"] == "7"
    assert UPSTREAM_KEY not in response.content.decode()
    assert not UsageDaily.objects.exists()


@pytest.mark.parametrize("mode", ["hangs", "trickles"])
def test_a_silent_or_endless_upstream_times_out(client, alice_key, hosted, monkeypatch, mode):
    monkeypatch.setattr("core.bounds.UPSTREAM_READ_SECONDS", 0.5)
    monkeypatch.setattr("core.bounds.UPSTREAM_REPLY_SECONDS", 1.0)
    hosted(mode)
    started = time.monotonic()
    response = post(client, alice_key, ask(mode))
    assert response.status_code == 504 and response.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 10


def test_a_refused_connection_is_a_502(client, alice_key, alice):
    from tests.conftest import free_port

    host(alice.organization, f"http://127.0.0.1:{free_port()}/v1", "m", slug="down")
    response = post(client, alice_key, ask("down"))
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_unreachable"


def test_a_failure_mid_stream_ends_with_an_error_event_then_done(client, alice_key, hosted):
    hosted("malformed")
    events = sse_events(post(client, alice_key, ask("malformed", stream=True)))
    assert events[-1] == "[DONE]" and events[-2]["error"]["code"] == "upstream_bad_response"
    assert "Half" in "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-2] if e.get("choices"))


def test_its_tokens_count_against_the_key_limit(client, alice, hosted):
    hosted("streams")
    key = create_api_key(alice.organization, "small", tokens_per_minute=100)[1]
    first = post(client, key, ask("streams"))
    assert first.status_code == 200
    for _ in range(5):
        post(client, key, ask("streams"))
    refused = post(client, key, ask("streams"))
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "tokens"


def test_the_playground_path_serves_it(alice, hosted):
    deployment = hosted("streams")

    async def run():
        return [e async for e in stream_reply(Served.deployment(deployment), [{"role": "user", "content": "Hi"}],
                                              source="playground")]

    events = async_to_sync(run)()
    assert "".join(e.text for e in events if e.kind == "text") == "".join(PIECES)
    assert UsageDaily.objects.get(source="playground").completion_tokens == USAGE["completion_tokens"]


def test_another_organization_cannot_call_it(client, charlie, hosted):
    hosted("streams")
    key = create_api_key(charlie.organization, "charlie key")[1]
    response = post(client, key, ask("streams"))
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"


@pytest.fixture
def hosted_widget(alice, catalog, hosted, scripted_sentiment):
    from chat.widgets import create_widget
    from store import deploy
    from tests.factories import make_tuned

    bot = hosted("rate_limited")
    moods = deploy.create_or_update(alice.organization, "moods", deploy.ModelChoice(
        tuned=make_tuned(alice.organization, catalog["all-minilm-l6-v2"], "moods", task="sentiment", method="full",
                         labels=["negative", "neutral", "positive"])))
    return create_widget(alice.organization, bot, moods, ["https://shop.alice.example"], title="Alice help")


async def test_an_upstream_failure_in_the_widget_hands_over_to_a_human(hosted_widget, fake_upstream):
    socket, *_ = await widget_socket(hosted_widget)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "message", "text": "Where is my parcel?", "client_id": "u"})
    frames = await receive_until(socket, "status", timeout=10)
    assert {"type": "status", "status": "needs_human", "assignee": None} in frames
    status = await sync_to_async(lambda: Conversation.objects.get().status)()
    assert status == "needs_human" and fake_upstream.received[-1]["body"]["model"] == "rate_limited"
    await socket.disconnect()
