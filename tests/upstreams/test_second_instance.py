"""A hosted model whose upstream is a second GPT Store instance's own /v1 (the live stack: Daphne, an inference
worker and a tiny model), called through this instance's /v1: the reply is the upstream's, streamed, metered with
the usage the upstream reported; the upstream's refusals come back as clear errors."""

import json
from pathlib import Path

import openai
import pytest
from asgiref.sync import async_to_sync

from store.api_keys import create_api_key
from store.models import UsageDaily
from tests.factories import bearer, deploy_tiny_bot, organization_with_key
from tests.upstreams.conftest import host

pytestmark = pytest.mark.live

QUESTION = [{"role": "user", "content": "Tell me about shoes"}]


@pytest.fixture
def world(live, catalog, tiny_chat_base, alice):
    provider, _, provider_key = organization_with_key("Upstream Provider")
    deploy_tiny_bot(provider, tiny_chat_base, max_tokens=12)
    host(alice.organization, live.url + "/v1", "tiny-bot", api_key=provider_key)
    return {"provider": provider, "provider_key": provider_key, "url": live.url,
            "key": create_api_key(alice.organization, "alice key")[1]}


def completions(client, key, body):
    return client.post("/v1/chat/completions", data=json.dumps(body), content_type="application/json", **bearer(key))


def test_it_streams_the_second_instance_reply_and_meters_its_usage(client, world, alice):
    response = completions(client, world["key"], {"model": "hosted", "messages": QUESTION, "stream": True,
                                                  "max_tokens": 12, "temperature": 0.0,
                                                  "stream_options": {"include_usage": True}})

    async def collect():
        return b"".join([chunk async for chunk in response.streaming_content])

    events = [e[6:] for e in async_to_sync(collect)().decode().split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert not any("error" in c for c in chunks), chunks
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    # The provider, asked directly with what we sent it (our system prompt first), answers the same (greedy).
    direct = openai.OpenAI(base_url=world["url"] + "/v1", api_key=world["provider_key"], max_retries=0, timeout=120)
    same = direct.chat.completions.create(
        model="tiny-bot", max_tokens=12, temperature=0.0,
        messages=[{"role": "system", "content": "You are Alice's assistant."}, *QUESTION])
    assert text and text == same.choices[0].message.content
    usage = chunks[-1]["usage"]
    assert usage == {"prompt_tokens": same.usage.prompt_tokens, "completion_tokens": same.usage.completion_tokens,
                     "total_tokens": same.usage.total_tokens}
    ours = UsageDaily.objects.get(organization=alice.organization, model="hosted")
    assert (ours.prompt_tokens, ours.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    theirs = UsageDaily.objects.filter(organization=world["provider"], model="tiny-bot")
    assert sum(row.requests for row in theirs) == 2  # the proxied call and the direct one, on the provider's bill


def test_the_second_instance_refusals_are_clear_errors(client, world, alice):
    host(alice.organization, world["url"] + "/v1", "no-such-model", slug="missing",
         api_key=world["provider_key"])
    missing = completions(client, world["key"], {"model": "missing", "messages": QUESTION})
    assert missing.status_code == 502 and missing.json()["error"]["code"] == "upstream_error"
    assert "HTTP 404" in missing.json()["error"]["message"] and "no-such-model" in missing.json()["error"]["message"]
    host(alice.organization, world["url"] + "/v1", "tiny-bot", slug="bad-key", api_key="gpts_not_a_real_key")
    refused = completions(client, world["key"], {"model": "bad-key", "messages": QUESTION})
    assert refused.status_code == 502 and refused.json()["error"]["code"] == "upstream_auth"


def _stack_secret_key(live) -> str:
    return live.env.get("SECRET_KEY") or (Path(live.env["GPT_STORE_DATA_DIR"]) / "secret_key").read_text().strip()


def test_the_python_sdk_streams_a_hosted_model_through_daphne(world, live, alice, settings):
    """Our instance served by Daphne (the live stack) proxies to the upstream from its own event loop. The key is
    encrypted under that instance's SECRET_KEY; one encrypted under another key is a clear error, not a hang."""
    alice_sdk = openai.OpenAI(base_url=world["url"] + "/v1", api_key=world["key"], max_retries=0, timeout=120)
    if _stack_secret_key(live) != settings.SECRET_KEY:
        with pytest.raises(openai.APIError, match="cannot be decrypted"):
            list(alice_sdk.chat.completions.create(model="hosted", messages=QUESTION, max_tokens=4, stream=True))
    settings.SECRET_KEY = _stack_secret_key(live)
    host(alice.organization, world["url"] + "/v1", "tiny-bot", slug="via-daphne", api_key=world["provider_key"])
    assert "via-daphne" in [model.id for model in alice_sdk.models.list()]
    stream = alice_sdk.chat.completions.create(model="via-daphne", messages=QUESTION, max_tokens=12,
                                               temperature=0.0, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage.completion_tokens >= 1
    with pytest.raises(openai.BadRequestError):  # our own bounds apply before the upstream is called
        alice_sdk.chat.completions.create(model="via-daphne", messages=QUESTION, max_tokens=10_000)
