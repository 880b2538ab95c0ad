"""/v1/chat/completions when the reply fails after it started (the worker died mid-reply): a stream ends
with an OpenAI-shaped `error` event and `data: [DONE]`, never a broken chunked response; a plain request
gets a 503 in OpenAI's error shape."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync

from store.inference.client import InferenceUnavailable, StreamEvent
from tests.factories import bearer

WORKER_DIED = "The inference worker serving this request stopped (it crashed or was restarted). Retry."


def failing_mid_reply(error: Exception):
    async def stream_generation(request):
        yield StreamEvent("start", info={})
        yield StreamEvent("text", "Hel")
        raise error

    return stream_generation


async def collect(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


def post(client, key, **extra):
    body = {"model": "acme-support", "messages": [{"role": "user", "content": "Hi"}], **extra}
    return client.post("/v1/chat/completions", data=json.dumps(body), content_type="application/json",
                       **bearer(key))


def events_of(response) -> list[str]:
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    return [event.removeprefix("data: ") for event in async_to_sync(collect)(response).decode().strip().split("\n\n")]


def test_a_stream_whose_worker_dies_ends_with_an_error_event_then_done(client, alice_deployment, alice_key,
                                                                        monkeypatch):
    monkeypatch.setattr("knowledge.replies.stream_generation", failing_mid_reply(InferenceUnavailable(WORKER_DIED)))
    events = events_of(post(client, alice_key, stream=True))
    assert json.loads(events[1])["choices"][0]["delta"] == {"content": "Hel"}
    assert json.loads(events[-2]) == {"error": {"message": WORKER_DIED, "type": "server_error", "param": None,
                                                "code": "no_inference_worker"}}
    assert events[-1] == "[DONE]"


def test_an_unexpected_failure_mid_stream_still_ends_with_an_error_event_then_done(client, alice_deployment,
                                                                                    alice_key, monkeypatch):
    monkeypatch.setattr("knowledge.replies.stream_generation", failing_mid_reply(ConnectionError("redis went away")))
    events = events_of(post(client, alice_key, stream=True))
    error = json.loads(events[-2])["error"]
    assert error["type"] == "server_error" and error["code"] == "internal"
    assert "redis went away" not in error["message"]  # server internals stay in the log
    assert events[-1] == "[DONE]"


@pytest.mark.parametrize("stream", [False, None])
def test_a_plain_request_whose_worker_dies_gets_a_503(client, alice_deployment, alice_key, monkeypatch, stream):
    monkeypatch.setattr("knowledge.replies.stream_generation", failing_mid_reply(InferenceUnavailable(WORKER_DIED)))
    response = post(client, alice_key, **({} if stream is None else {"stream": stream}))
    assert response.status_code == 503 and response["Retry-After"]
    assert response.json() == {"error": {"message": WORKER_DIED, "type": "server_error", "param": None,
                                         "code": "no_inference_worker"}}
