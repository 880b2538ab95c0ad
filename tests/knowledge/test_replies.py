"""Serving a deployment with knowledge: the one path the widget, the playground and /v1 share.

Retrieval runs the real worker code on a real engine with the real all-MiniLM-L6-v2. Generation, the
engine's other boundary, is scripted where a test needs exact words.
"""

import pytest
from asgiref.sync import async_to_sync

from knowledge import deployments, sources
from knowledge.models import AnswerPolicy, WhenUnsure
from knowledge.policy import DEFAULT_THRESHOLD, DONT_KNOW_CONTINUE, DONT_KNOW_HANDOFF
from knowledge.replies import Outcome, Served, stream_reply
from store import deploy
from store.inference.client import StreamEvent
from store.models import UsageDaily
from tests.knowledge.conftest import ACME_FAQ, SMALL_FAQ, embed_live

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_model]


@pytest.fixture
def bot(alice, tiny_chat_base, knowledge_base, encoder_engine, worker_retrieval):
    sources.add_text(knowledge_base, "FAQ", SMALL_FAQ, url="https://alice.example/help")
    embed_live(knowledge_base, encoder_engine)
    deployment = deploy.create_or_update(alice.organization, "bot", deploy.ModelChoice(base=tiny_chat_base),
                                         system_prompt="You are Alice's assistant.")
    deployments.configure(deployment, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.5)
    return deployment


def configure(bot, **changes):
    current = deployments.snapshot(bot)
    values = {"knowledge_base": bot.knowledge.knowledge_base, "policy": current["policy"],
              "threshold": current["threshold"], "when_unsure": current["when_unsure"], **changes}
    deployments.configure(bot, **values)


def reply(bot, *texts, source="playground"):
    turns = []
    for text in texts:
        turns.append({"role": "user", "content": text})
    events = []

    async def run():
        async for event in stream_reply(Served.deployment(bot), turns, source=source):
            events.append(event)

    async_to_sync(run)()
    return "".join(e.text for e in events if e.kind == "text"), events[-1].result


@pytest.fixture
def scripted_model(monkeypatch):
    """The model says `.text` (in pieces), whatever it is asked; `.requests` keeps what it was asked."""

    class Model:
        text = ""
        requests: list = []

        async def stream(self, request):
            self.requests.append(request)
            for piece in self.text.split(" "):
                yield StreamEvent("text", piece + " ")
            yield StreamEvent("done", info={"text": self.text, "finish_reason": "stop", "prompt_tokens": 40,
                                            "completion_tokens": 9})

    model = Model()
    model.requests = []
    monkeypatch.setattr("knowledge.replies.stream_generation", model.stream)
    return model


def test_quote_answers_with_the_passage_its_heading_and_its_citation(bot):
    text, result = reply(bot, "What does express shipping cost?")
    assert result.outcome == Outcome.QUOTED and result.text == text
    assert result.citations and len(result.citations) <= 2
    for cited, passage in zip(result.citations, result.passages, strict=True):
        assert cited["url"] == "https://alice.example/help" and cited["passage_id"] == passage.passage_id
        assert cited["title"].split(" › ")[-1] in text
        assert passage.text in text and passage.text in SMALL_FAQ  # the business's own words, untouched
    usage = UsageDaily.objects.get(organization=bot.organization, model="bot")
    assert usage.requests == 1 and usage.prompt_tokens > 0 and usage.completion_tokens == 0


def test_below_the_threshold_it_says_it_does_not_know_and_offers_a_person(bot):
    configure(bot, threshold=1.0)
    text, result = reply(bot, "Who founded Alice Shoes?")
    assert text == DONT_KNOW_HANDOFF and result.outcome == Outcome.DID_NOT_KNOW and result.handoff
    assert result.citations == []
    configure(bot, when_unsure=WhenUnsure.CONTINUE)
    text, result = reply(bot, "Who founded Alice Shoes?")
    assert text == DONT_KNOW_CONTINUE and not result.handoff


def test_just_below_the_threshold_it_shows_the_closest_entry_and_offers_a_person(bot):
    from knowledge.policy import NOT_SURE_HANDOFF, NOT_SURE_OPENING, UNSURE_BAND

    _, answered = reply(bot, "What does express shipping cost?")
    assert answered.outcome == Outcome.QUOTED and answered.confidence < 1.0
    configure(bot, threshold=min(1.0, answered.confidence + UNSURE_BAND / 2))  # now just short of it
    text, result = reply(bot, "What does express shipping cost?")
    assert result.outcome == Outcome.NOT_SURE and result.handoff and result.text == text
    assert text.startswith(NOT_SURE_OPENING) and text.endswith(NOT_SURE_HANDOFF)
    closest = result.passages[0]
    assert closest.text in text and closest.text in SMALL_FAQ and "$12.95" in text
    assert result.citations[0]["url"] == "https://alice.example/help"
    assert result.grounding()["outcome"] == "not_sure"


@pytest.fixture
def acme_bot(alice, tiny_chat_base, knowledge_base, encoder_engine, worker_retrieval):
    """A quoting bot on Acme's help centre at the default threshold."""
    sources.add_file(knowledge_base, ACME_FAQ.read_bytes(), ACME_FAQ.name)
    embed_live(knowledge_base, encoder_engine)
    deployment = deploy.create_or_update(alice.organization, "acme", deploy.ModelChoice(base=tiny_chat_base))
    deployments.configure(deployment, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE,
                          threshold=DEFAULT_THRESHOLD)
    return deployment


def test_a_follow_up_the_entry_before_may_answer_gets_that_entry_as_not_sure(acme_bot):
    """With the real retrieval model: "are duties included?" on its own matches nothing confidently; after
    "Do you ship to Canada?" the bot shows the entry the conversation is about, says it is not sure and
    offers a person; a new question asked the same way is not pulled to it."""
    _, alone = reply(acme_bot, "are duties included?")
    assert alone.outcome == Outcome.DID_NOT_KNOW
    text, result = reply(acme_bot, "Do you ship to Canada?", "are duties included?")
    assert result.outcome == Outcome.NOT_SURE and result.handoff
    assert "duties and taxes are included" in text and result.passages[0].title.endswith("Where do you ship?")
    _, switched = reply(acme_bot, "Do you ship to Canada?", "what year was it founded?")
    assert switched.outcome == Outcome.DID_NOT_KNOW
    # "what about…" says it continues: the entry the conversation is about, though alone it finds another
    text, result = reply(acme_bot, "how much is shipping", "what about if my order is $30?")
    assert result.outcome == Outcome.NOT_SURE and "$4.95" in text


def test_the_entry_the_conversation_points_at_is_kept_among_the_candidates(acme_bot, encoder_engine):
    """Even when the message alone ranks it below the k passages asked for (here k = 1)."""
    from knowledge import worker
    from knowledge.policy import retrieval_queries

    turns = [{"role": "user", "content": "how much is shipping"},
             {"role": "user", "content": "what about if my order is $30?"}]
    payload = {"knowledge_base": acme_bot.knowledge.knowledge_base.pk, **retrieval_queries(turns).payload(), "k": 1}
    [found] = worker.retrieve(payload, encoder_engine)["candidates"]
    assert found["title"].endswith("How much does shipping cost?") and found["context_confidence"] >= 0.5
    assert found["confidence"] < 0.5  # the message alone does not find it confidently


def test_a_question_for_a_specific_the_passages_do_not_state_gets_i_dont_know(bot):
    configure(bot, threshold=0.0)  # every passage is confident enough: what decides is what it states
    text, result = reply(bot, "What year was Alice Shoes founded?")
    assert text == DONT_KNOW_HANDOFF and result.outcome == Outcome.DID_NOT_KNOW and result.handoff
    assert result.unstated == "year" and result.grounding()["unstated"] == "year" and result.candidates
    text, result = reply(bot, "How much is express shipping?")
    assert result.outcome == Outcome.QUOTED and "$12.95" in text and "unstated" not in result.grounding()


def test_small_talk_is_answered_without_a_lookup(bot):
    text, result = reply(bot, "thanks!")
    assert result.outcome == Outcome.SMALL_TALK and "welcome" in text


def test_a_grounded_reply_streams_only_checked_sentences(bot, scripted_model):
    configure(bot, policy=AnswerPolicy.GROUNDED)
    scripted_model.text = "Sure! Express shipping costs $12.95, and standard shipping is $4.95."
    text, result = reply(bot, "How much is express shipping?")
    assert result.outcome == Outcome.GROUNDED and text.strip() == result.text == scripted_model.text
    [request] = scripted_model.requests
    system = request.messages[0]["content"]
    assert request.messages[0]["role"] == "system" and "<passages>" in system and "$12.95" in system
    assert result.prompt_tokens > 40 and result.completion_tokens == 9


def test_a_grounded_reply_with_an_invented_specific_is_replaced_before_anyone_sees_it(bot, scripted_model):
    configure(bot, policy=AnswerPolicy.GROUNDED)
    scripted_model.text = "Happy to help. Express shipping costs $9.99 and arrives tomorrow."
    text, result = reply(bot, "How much is express shipping?")
    assert "$9.99" not in text and "9.99" not in result.text
    assert result.outcome == Outcome.REPLACED and result.unsupported == ["$9.99"]
    assert text.startswith("Happy to help.")  # what passed the check stays; the quote answer follows
    assert result.passages[0].text in text


def test_without_knowledge_the_model_answers_on_its_own(bot, scripted_model):
    configure(bot, policy=AnswerPolicy.OFF)
    scripted_model.text = "We are open all night."
    text, result = reply(bot, "When are you open?")
    assert text.strip() == "We are open all night." and result.outcome == Outcome.GENERATED
    assert result.citations == []
