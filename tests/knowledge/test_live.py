"""Knowledge through the real topology: the inference worker embeds a source, Daphne serves /v1 answers
with citations, the official Python SDK reads them and makes embeddings."""

import time

import openai
import pytest

from knowledge import deployments, sources
from knowledge.models import AnswerPolicy, VersionStatus
from tests.factories import deploy_tiny_bot, organization_with_key
from tests.knowledge.conftest import SMALL_FAQ

pytestmark = [pytest.mark.live, pytest.mark.real_model]


def wait_until_live(source, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        version = source.versions.get()
        if version.status in (VersionStatus.LIVE, VersionStatus.FAILED):
            assert version.status == VersionStatus.LIVE, version.error
            return
        assert time.monotonic() < deadline, f"still {version.status} ({version.embedded_count}/{version.passage_count})"
        time.sleep(0.2)


def test_the_sdk_gets_a_cited_answer_and_embeddings(live, catalog, tiny_chat_base):
    organization, _, key = organization_with_key("Knowledge Live")
    knowledge_base = sources.create_knowledge_base(organization, "Help")
    source = sources.add_text(knowledge_base, "FAQ", SMALL_FAQ, url="https://live.example/help")
    wait_until_live(source)  # a real inference worker took the task and embedded every passage
    bot = deploy_tiny_bot(organization, tiny_chat_base, slug="help-bot")
    deployments.configure(bot, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.5)
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0, timeout=120)

    reply = client.chat.completions.create(model="help-bot", messages=[
        {"role": "user", "content": "how much do you charge for express delivery??"}])
    assert "$12.95" in reply.choices[0].message.content
    citations = reply.model_extra["citations"]
    assert citations[0]["title"] == "Shipping › How much does shipping cost?"
    assert citations[0]["url"] == "https://live.example/help"
    assert reply.model_extra["grounding"]["outcome"] == "quoted"

    unknown = client.chat.completions.create(model="help-bot", messages=[
        {"role": "user", "content": "What year was your company founded?"}])
    assert "don't know" in unknown.choices[0].message.content
    assert unknown.model_extra["grounding"]["outcome"] == "did_not_know" and unknown.model_extra["citations"] == []

    default = client.embeddings.create(model="all-minilm-l6-v2", input=["hello", "express shipping"])  # base64
    floats = client.embeddings.create(model="all-minilm-l6-v2", input="hello", encoding_format="float")
    assert len(default.data) == 2 and len(default.data[0].embedding) == 384
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert default.usage.prompt_tokens > 0
    with pytest.raises(openai.BadRequestError) as error:
        client.embeddings.create(model="help-bot", input="hello")
    assert error.value.body["param"] == "model"
