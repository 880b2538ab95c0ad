"""The widget answers from knowledge: the reply carries its sources; "I don't know" hands over; the console
sees the passages and confidence, marks a reply wrong, and saves an agent's reply as an answer."""

import pytest
from asgiref.sync import sync_to_async

from chat.handoff import BOT_DID_NOT_KNOW
from chat.models import Conversation, Message
from chat.widgets import create_widget
from knowledge import deployments, sources
from knowledge.models import AnswerPolicy, KnowledgeSource, SourceKind
from knowledge.policy import DONT_KNOW_HANDOFF
from store import deploy
from tests.chat.conftest import customer_writes, receive_bot_reply, receive_until
from tests.knowledge.conftest import SMALL_FAQ, embed_live

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_model]


@pytest.fixture
def knowledge_widget(alice, tiny_chat_base, knowledge_base, encoder_engine, worker_retrieval):
    sources.add_text(knowledge_base, "FAQ", SMALL_FAQ, url="https://alice.example/help")
    embed_live(knowledge_base, encoder_engine)
    bot = deploy.create_or_update(alice.organization, "bot", deploy.ModelChoice(base=tiny_chat_base))
    deployments.configure(bot, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.5)
    return create_widget(alice.organization, bot, None, ["https://shop.alice.example"], title="Alice help")


async def test_the_reply_shows_where_it_comes_from(knowledge_widget):
    socket = await customer_writes(knowledge_widget, "How much does express shipping cost?")
    frames = await receive_bot_reply(socket)
    reply = frames[-1]["message"]
    assert "$12.95" in reply["text"]
    assert reply["sources"][0] == {"title": "Shipping › How much does shipping cost?",
                                   "url": "https://alice.example/help"}
    assert "knowledge" not in reply and "confidence" not in str(reply)  # the customer sees sources only
    tokens = "".join(f["text"] for f in frames if f["type"] == "token")
    assert tokens == reply["text"]
    await socket.disconnect()


async def test_under_an_answer_the_customer_is_offered_the_next_closest_entries(knowledge_widget, alice):
    await quote_at(knowledge_widget, threshold=0.0)  # every entry found is confident enough to offer
    socket = await customer_writes(knowledge_widget, "How much does express shipping cost?")
    reply = (await receive_bot_reply(socket))[-1]["message"]
    quoted = {source["title"].split(" › ")[-1] for source in reply["sources"]}
    offered = [entry["question"] for entry in reply["related"]]
    headings = {"How much does shipping cost?", "How long does delivery take?", "What is your return policy?"}
    assert offered and set(offered) <= headings - quoted and len(set(offered)) == len(offered)
    assert reply["related"] == [{"question": question} for question in offered]  # the question only, no scores
    await socket.disconnect()
    # The agent reading the conversation sees what the customer was offered.
    conversation = await sync_to_async(Conversation.objects.get)()
    page = (await sync_to_async(alice.client.get)(f"/console/{conversation.pk}/")).content.decode()
    assert "Offered under it: " + ", ".join(f"“{question}”" for question in offered) in page


async def quote_at(widget, threshold: float) -> None:
    """The widget's bot quotes from its knowledge base at this confidence threshold."""
    knowledge_base = await sync_to_async(lambda: widget.deployment.knowledge.knowledge_base)()
    await sync_to_async(deployments.configure)(widget.deployment, knowledge_base=knowledge_base,
                                               policy=AnswerPolicy.QUOTE, threshold=threshold)


async def test_when_the_knowledge_does_not_cover_it_the_bot_says_so_and_hands_over(knowledge_widget):
    await quote_at(knowledge_widget, threshold=1.0)
    socket = await customer_writes(knowledge_widget, "Do you have a store in Paris?")
    frames = await receive_bot_reply(socket)
    assert frames[-1]["message"]["text"] == DONT_KNOW_HANDOFF and frames[-1]["message"]["sources"] == []
    assert frames[-1]["message"]["related"] == []  # "I don't know" offers no other entries
    status = (await receive_until(socket, "status"))[-1]
    assert status["status"] == "needs_human"
    conversation = await sync_to_async(Conversation.objects.get)()
    assert conversation.escalation_reason == BOT_DID_NOT_KNOW
    await socket.disconnect()


async def test_just_short_of_the_threshold_the_customer_reads_the_closest_entry_and_a_person_is_offered(
        knowledge_widget, alice):
    from knowledge.policy import NOT_SURE_HANDOFF, NOT_SURE_OPENING

    # The return policy entry matches this question at 0.9-1.0 confidence: in the band below a threshold of 1.0.
    await quote_at(knowledge_widget, threshold=1.0)
    socket = await customer_writes(knowledge_widget, "What is your return policy?")
    frames = await receive_bot_reply(socket)
    message = frames[-1]["message"]
    assert message["text"].startswith(NOT_SURE_OPENING) and message["text"].endswith(NOT_SURE_HANDOFF)
    assert "30 days" in message["text"] and [s["title"].split(" › ")[-1] for s in message["sources"]] == [
        "What is your return policy?"]
    assert (await receive_until(socket, "status"))[-1]["status"] == "needs_human"
    await socket.disconnect()
    conversation = await sync_to_async(Conversation.objects.get)()
    assert conversation.escalation_reason == BOT_DID_NOT_KNOW
    insights = (await sync_to_async(alice.client.get)("/console/insights/")).content.decode()
    assert '"not sure" (closest entry shown): <strong>1</strong>' in insights


async def test_a_question_for_a_year_the_passages_do_not_state_is_handed_over_and_the_console_says_why(
        knowledge_widget, alice):
    await quote_at(knowledge_widget, threshold=0.0)
    socket = await customer_writes(knowledge_widget, "What year was Alice Shoes founded?")
    frames = await receive_bot_reply(socket)
    assert frames[-1]["message"]["text"] == DONT_KNOW_HANDOFF and frames[-1]["message"]["sources"] == []
    assert (await receive_until(socket, "status"))[-1]["status"] == "needs_human"
    await socket.disconnect()
    conversation = await sync_to_async(Conversation.objects.get)()
    page = (await sync_to_async(alice.client.get)(f"/console/{conversation.pk}/")).content.decode()
    assert "The customer asked for a year; the passages found state none" in page


async def test_the_console_shows_passages_and_confidence_and_agents_correct_the_bot(knowledge_widget, alice):
    socket = await customer_writes(knowledge_widget, "What is your return policy?")
    await receive_bot_reply(socket)
    await socket.disconnect()
    conversation = await sync_to_async(Conversation.objects.get)()
    page = (await sync_to_async(alice.client.get)(f"/console/{conversation.pk}/")).content.decode()
    assert "Quoted from the knowledge base" in page and "confidence" in page and "30 days" in page

    bot_reply = await sync_to_async(lambda: conversation.messages.get(author="bot"))()
    await sync_to_async(alice.client.post)(f"/console/{conversation.pk}/mark-wrong/",
                                           {"seq": bot_reply.seq})
    await sync_to_async(bot_reply.refresh_from_db)()
    assert bot_reply.marked_wrong_at is not None and bot_reply.marked_wrong_by_id == alice.user.pk

    await sync_to_async(alice.client.post)(f"/console/{conversation.pk}/reply/",
                                           {"text": "Worn shoes can't be returned, but defects are covered."})
    agent_reply = await sync_to_async(lambda: conversation.messages.filter(author="agent").last())()
    await sync_to_async(alice.client.post)(f"/console/{conversation.pk}/save-answer/",
                                           {"seq": agent_reply.seq})
    saved = await sync_to_async(KnowledgeSource.objects.get)(kind=SourceKind.SAVED_ANSWER)
    passage = await sync_to_async(lambda: saved.versions.get().passages.get())()
    assert (passage.question, passage.text) == ("What is your return policy?",
                                                "Worn shoes can't be returned, but defects are covered.")
    insights = (await sync_to_async(alice.client.get)("/console/insights/")).content.decode()
    assert "marked wrong by agents: <strong>1</strong>" in insights


async def test_a_misspelt_question_is_answered_and_the_console_says_how_it_was_searched(knowledge_widget, alice):
    socket = await customer_writes(knowledge_widget, "wat is ur retrun polcy")
    frames = await receive_bot_reply(socket)
    assert "30 days" in frames[-1]["message"]["text"]
    assert "searched" not in str(frames[-1]["message"])  # the customer sees the answer and its sources only
    await socket.disconnect()
    conversation = await sync_to_async(Conversation.objects.get)()
    page = (await sync_to_async(alice.client.get)(f"/console/{conversation.pk}/")).content.decode()
    assert "Searched as “what is your return policy” (spelling corrected)" in page


async def test_an_agent_can_only_mark_bot_replies_and_save_agent_replies(knowledge_widget, alice):
    socket = await customer_writes(knowledge_widget, "What is your return policy?")
    await receive_bot_reply(socket)
    await socket.disconnect()
    conversation = await sync_to_async(Conversation.objects.get)()
    customer = await sync_to_async(lambda: conversation.messages.get(author="customer"))()
    response = await sync_to_async(alice.client.post)(f"/console/{conversation.pk}/save-answer/",
                                                      {"seq": customer.seq})
    assert response.status_code == 302
    assert not await sync_to_async(KnowledgeSource.objects.filter(kind=SourceKind.SAVED_ANSWER).exists)()
    await sync_to_async(alice.client.post)(f"/console/{conversation.pk}/mark-wrong/",
                                           {"seq": customer.seq})
    assert not await sync_to_async(Message.objects.filter(marked_wrong_at__isnull=False).exists)()
