"""/v1: chat completions answer from knowledge with citations; embeddings in OpenAI's shape.

The engine is real and in-process (the Celery hop is replaced by a direct call); the official SDKs
against the live stack are in test_sdk.py.
"""

import asyncio
import base64
import json
import struct

import pytest
from asgiref.sync import async_to_sync

from knowledge import deployments, sources
from knowledge.models import AnswerPolicy
from store import deploy
from store.api_keys import create_api_key
from tests.factories import bearer
from tests.knowledge.conftest import SMALL_FAQ, embed_live

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_model]


@pytest.fixture
def key(alice):
    return create_api_key(alice.organization, "test key")[1]


@pytest.fixture
def engine_embeddings(encoder_engine, monkeypatch):
    from knowledge.worker import _Answer
    from store.inference.client import InferenceError
    from store.inference.protocol import EngineError

    async def embed(request):  # what store.inference.client.embed gets back from a worker
        def run():
            answer = _Answer()
            encoder_engine.submit_embedding(request, answer)
            try:
                return answer.wait()
            except EngineError as error:
                raise InferenceError(error.code, error.message) from None

        return await asyncio.to_thread(run)

    monkeypatch.setattr("store.api.views.embed", embed)
    return encoder_engine


@pytest.fixture
def knowledge_bot(alice, tiny_chat_base, knowledge_base, encoder_engine, worker_retrieval):
    sources.add_text(knowledge_base, "FAQ", SMALL_FAQ, url="https://alice.example/help")
    embed_live(knowledge_base, encoder_engine)
    bot = deploy.create_or_update(alice.organization, "bot", deploy.ModelChoice(base=tiny_chat_base))
    deployments.configure(bot, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.5)
    return bot


def post(client, key, body, path):
    return client.post(path, data=json.dumps(body), content_type="application/json", **bearer(key))


def test_a_knowledge_deployment_answers_with_citations_and_grounding(client, key, knowledge_bot):
    response = post(client, key, {"model": "bot", "messages": [{"role": "user", "content": "How long is delivery?"}]},
                    "/v1/chat/completions")
    assert response.status_code == 200
    body = response.json()
    assert "3–5 business days" in body["choices"][0]["message"]["content"]
    assert body["citations"][0]["title"] == "Shipping › How long does delivery take?"
    assert body["citations"][0]["url"] == "https://alice.example/help"
    assert body["grounding"]["outcome"] == "quoted" and body["grounding"]["confidence"] >= 0.5
    assert body["usage"]["prompt_tokens"] > 0
    assert "searched" not in body["grounding"]  # spelt as the help centre spells it


def test_an_answer_names_the_related_entries_the_widget_offers(client, key, knowledge_bot):
    knowledge_base = knowledge_bot.knowledge.knowledge_base
    deployments.configure(knowledge_bot, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.0)
    body = post(client, key, {"model": "bot", "messages": [{"role": "user", "content": "What is your return policy?"}]},
                "/v1/chat/completions").json()
    cited = {citation["title"] for citation in body["citations"]}
    related = body["grounding"]["related"]
    assert related and all(entry["title"] not in cited for entry in related)
    assert {entry["question"] for entry in related} <= {"How much does shipping cost?", "How long does delivery take?"}
    assert all(set(entry) == {"passage_id", "title", "question"} for entry in related)


def test_a_misspelt_question_is_answered_and_the_response_says_how_it_was_searched(client, key, knowledge_bot):
    response = post(client, key, {"model": "bot", "messages": [{"role": "user", "content": "wat is ur retrun polcy"}]},
                    "/v1/chat/completions")
    assert response.status_code == 200
    body = response.json()
    assert body["grounding"]["searched"] == "what is your return policy"
    assert "30 days" in body["choices"][0]["message"]["content"]


def test_a_streamed_answer_carries_its_citations_on_the_last_chunk(client, key, knowledge_bot):
    response = post(client, key, {"model": "bot", "stream": True,
                                  "messages": [{"role": "user", "content": "What is your return policy?"}]},
                    "/v1/chat/completions")

    async def collect():
        return b"".join([chunk async for chunk in response.streaming_content])

    events = [line[6:] for line in async_to_sync(collect)().decode().split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert "30 days" in text
    last = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
    assert last["citations"][0]["title"] == "Returns › What is your return policy?"
    assert last["grounding"]["outcome"] == "quoted"


def test_embeddings_come_as_floats_or_base64_little_endian_float32(client, key, catalog, engine_embeddings):
    texts = ["How much is express shipping?", "Returns are free within 30 days."]
    floats = post(client, key, {"model": "all-minilm-l6-v2", "input": texts}, "/v1/embeddings").json()
    assert floats["object"] == "list" and floats["model"] == "all-minilm-l6-v2"
    assert [item["index"] for item in floats["data"]] == [0, 1]
    vector = floats["data"][0]["embedding"]
    assert len(vector) == 384 and abs(sum(v * v for v in vector) - 1.0) < 1e-4
    assert floats["usage"]["prompt_tokens"] == floats["usage"]["total_tokens"] > 0
    encoded = post(client, key, {"model": "all-minilm-l6-v2", "input": texts[0], "encoding_format": "base64"},
                   "/v1/embeddings").json()
    decoded = struct.unpack("<384f", base64.b64decode(encoded["data"][0]["embedding"]))
    assert decoded == pytest.approx(vector, abs=1e-6)


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"model": "all-minilm-l6-v2", "input": []}, 400, "input"),
    ({"model": "all-minilm-l6-v2", "input": [1, 2, 3]}, 400, "input"),
    ({"model": "all-minilm-l6-v2", "input": ["ok", "  "]}, 400, "input[1]"),
    ({"model": "all-minilm-l6-v2", "input": ["x"] * 2049}, 413, "input"),
    ({"model": "all-minilm-l6-v2", "input": "hi", "dimensions": 128}, 400, "dimensions"),
    ({"model": "all-minilm-l6-v2", "input": "hi", "encoding_format": "hex"}, 400, "encoding_format"),
    ({"model": "smollm2-135m-instruct", "input": "hi"}, 400, "model"),
    ({"model": "no-such-model", "input": "hi"}, 404, "model"),
    ({"model": "all-minilm-l6-v2", "input": "word " * 600}, 400, "input"),
])
def test_bad_embedding_requests_get_a_clear_error(client, key, catalog, engine_embeddings, body, status, param):
    response = post(client, key, body, "/v1/embeddings")
    assert response.status_code == status, response.content
    assert response.json()["error"]["param"] == param


def test_an_outsider_key_cannot_use_another_organization_s_deployment(client, charlie, knowledge_bot):
    outsider = create_api_key(charlie.organization, "charlie key")[1]
    response = post(client, outsider, {"model": "bot", "messages": [{"role": "user", "content": "Hi"}]},
                    "/v1/chat/completions")
    assert response.status_code == 404
