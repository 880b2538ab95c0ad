"""/v1/chat/completions and /v1/sentiment up to the serving engine: validation, errors, no-worker 503.

The full path through a real worker is tested against the live stack (test_sdk_python.py etc.).
"""

import json
import time

import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings

from store import deploy
from store.models import Deployment
from tests.factories import bearer, make_tuned


async def collect(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


def post(client, key, body, path="/v1/chat/completions"):
    return client.post(path, data=json.dumps(body), content_type="application/json", **bearer(key))


def chat(model="acme-support", **extra):
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], **extra}


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"presence_penalty": 2.5}, "presence_penalty"),
    ({"frequency_penalty": -3}, "frequency_penalty"),
    ({"logit_bias": {"1": 2}}, "logit_bias"),
    ({"bogus_option": 1}, "bogus_option"),
    ({"temperature": 3}, "temperature"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"max_tokens": 100000}, "max_tokens"),
])
def test_it_rejects_what_it_does_not_support_naming_the_param(client, alice_deployment, alice_key, extra, param):
    response = post(client, alice_key, chat(**extra))
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param


def test_it_rejects_non_text_content_parts(client, alice_deployment, alice_key):
    body = {"model": "acme-support", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}
    response = post(client, alice_key, body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].content[0]"


def test_it_rejects_a_tool_role(client, alice_deployment, alice_key):
    body = {"model": "acme-support", "messages": [{"role": "tool", "content": "x"}]}
    assert post(client, alice_key, body).json()["error"]["param"] == "messages[0].role"


def test_it_requires_messages(client, alice_deployment, alice_key):
    response = post(client, alice_key, {"model": "acme-support"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages"


def test_it_rejects_malformed_json(client, alice_key, db):
    response = client.post("/v1/chat/completions", data="{nope", content_type="application/json",
                           **bearer(alice_key))
    assert response.status_code == 400 and "could not parse the JSON" in response.json()["error"]["message"]


def test_it_rejects_an_oversized_body_with_413(client, alice_deployment, alice_key):
    body = chat(messages=[{"role": "user", "content": "x" * 3_000_000}])
    assert post(client, alice_key, body).status_code == 413


def test_it_answers_404_for_another_organizations_deployment(client, alice_key, charlie_deployment):
    response = post(client, alice_key, chat("charlie-bot"))
    assert response.status_code == 404 and response.json()["error"]["param"] == "model"


def test_it_refuses_a_paused_deployment(client, alice_deployment, alice_key):
    deploy.set_status(alice_deployment, "paused")
    assert post(client, alice_key, chat()).status_code == 409


def test_it_points_sentiment_models_to_the_sentiment_endpoint(client, alice, alice_key, catalog):
    tuned = make_tuned(alice.organization, catalog["all-minilm-l6-v2"], "moods", task="sentiment",
                       method="full", labels=["negative", "positive"])
    deploy.create_or_update(alice.organization, "moods", deploy.ModelChoice(tuned=tuned))
    response = post(client, alice_key, chat("moods"))
    assert response.status_code == 400 and "/v1/sentiment" in response.json()["error"]["message"]


def test_sentiment_rejects_dialogue_and_base_models(client, alice_deployment, alice_key):
    for model in ("acme-support", "all-minilm-l6-v2"):
        response = post(client, alice_key, {"model": model, "input": "hi"}, "/v1/sentiment")
        assert response.status_code == 400 and response.json()["error"]["param"] == "model"


def test_sentiment_validates_its_input(client, alice_key, db):
    assert post(client, alice_key, {"model": "x", "input": []}, "/v1/sentiment").status_code == 400
    assert post(client, alice_key, {"model": "x", "input": ["a"] * 300}, "/v1/sentiment").status_code == 413
    assert post(client, alice_key, {"model": "x", "input": "hi", "extra": 1}, "/v1/sentiment").json()[
        "error"]["param"] == "extra"


@override_settings(SERVING_ACCEPT_TIMEOUT=1.0)
def test_it_answers_503_within_the_bound_when_no_worker_is_up(client, alice_deployment, alice_key):
    # The broker is a real Redis (the session's), but no inference worker consumes the queue.
    started = time.monotonic()
    response = post(client, alice_key, chat())
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_inference_worker"
    assert response["Retry-After"]
    assert elapsed < 5


@override_settings(SERVING_ACCEPT_TIMEOUT=1.0)
def test_a_stream_without_worker_ends_with_an_error_event(client, alice_deployment, alice_key):
    response = post(client, alice_key, chat(stream=True))
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    assert response["X-Accel-Buffering"] == "no"
    events = async_to_sync(collect)(response).decode().strip().split("\n\n")
    assert json.loads(events[0].removeprefix("data: "))["choices"][0]["delta"]["role"] == "assistant"
    assert json.loads(events[-2].removeprefix("data: "))["error"]["code"] == "no_inference_worker"
    assert events[-1] == "data: [DONE]"


def test_deployment_system_prompt_goes_first(alice_deployment):
    from store.api.completions import with_system_prompt

    messages = with_system_prompt([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                                  Deployment.objects.get().system_prompt)
    assert messages[0] == {"role": "system", "content": "You are Acme's assistant.\n\nBe brief."}
    assert messages[1:] == [{"role": "user", "content": "Hi"}]


def test_penalties_reach_the_engine_request():
    from store.api.completions import build_request
    from store.api.protocol import ChatCompletionRequest
    from store.api.targets import Target

    target = Target("bot", "deployment", "dialogue", "base:x", "org", 0, "x")
    body = ChatCompletionRequest.model_validate(chat(frequency_penalty=0.7, presence_penalty=-0.5))
    request = build_request(target, body)
    assert (request.frequency_penalty, request.presence_penalty) == (0.7, -0.5)
    assert build_request(target, ChatCompletionRequest.model_validate(chat())).frequency_penalty == 0.0
