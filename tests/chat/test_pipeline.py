"""The message pipeline's shortcuts stay correct: cached widget rules follow edits, and a socket
that keeps its conversation copes with that conversation being deleted."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from chat import pipeline
from chat.models import Conversation, Message
from tests.chat.conftest import BOT_PIECES, customer_writes, receive_bot_reply, receive_until, widget_socket

pytestmark = pytest.mark.django_db(transaction=True)


def test_widget_rules_follow_edits_made_here_at_once_and_elsewhere_within_the_ttl(widget, monkeypatch):
    rules = pipeline.widget_rules(widget.pk)
    assert rules.handoff.negative_streak == 2 and rules.scoring is not None
    assert rules.scoring.model_key == widget.sentiment_deployment.model_key

    widget.handoff_phrases = ["Mensch"]
    widget.save()  # an edit in this process (admin, console settings)
    assert pipeline.widget_rules(widget.pk).handoff.phrases == ("Mensch",)

    type(widget).objects.filter(pk=widget.pk).update(negative_streak=5)  # as another web process would
    assert pipeline.widget_rules(widget.pk).handoff.negative_streak == 2  # still the cached rules
    later = pipeline.time.monotonic() + pipeline.RULES_TTL_SECONDS + 1
    monkeypatch.setattr(pipeline.time, "monotonic", lambda: later)
    assert pipeline.widget_rules(widget.pk).handoff.negative_streak == 5


def test_stopping_the_sentiment_deployment_stops_scoring_at_once(widget):
    assert pipeline.widget_rules(widget.pk).scoring is not None
    moods = widget.sentiment_deployment
    moods.status = "paused"
    moods.save()
    assert pipeline.widget_rules(widget.pk).scoring is None


async def test_a_message_after_the_conversation_was_deleted_starts_a_new_one(widget, scripted_bot, scripted_sentiment):
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "message", "text": "first question", "client_id": "d1"})
    await receive_until(socket, "ack")
    await receive_until(socket, "message")
    first = await sync_to_async(Conversation.objects.get)()
    await sync_to_async(first.delete)()  # e.g. by an admin, while the customer's socket stays open

    await socket.send_json_to({"type": "message", "text": "second question", "client_id": "d2"})
    ack = (await receive_until(socket, "ack"))[-1]
    assert ack["seq"] == 1
    await receive_bot_reply(socket)  # the bot answers in the new conversation
    second = await sync_to_async(Conversation.objects.get)()
    assert second.pk != first.pk
    texts = await sync_to_async(lambda: list(Message.objects.filter(conversation=second)
                                             .values_list("author", "text")))()
    assert texts == [("customer", "second question"), ("bot", "".join(BOT_PIECES))]
    await socket.disconnect()


async def test_writing_after_resolution_reopens_the_conversation_for_the_bot(
        widget, alice, scripted_bot, scripted_sentiment):
    from chat import agents

    socket = await customer_writes(widget, "Where is my order?", "r1")
    await receive_bot_reply(socket)
    conversation = await sync_to_async(Conversation.objects.get)()
    await sync_to_async(agents.resolve)(conversation, alice.user)
    assert (await receive_until(socket, "status"))[-1]["status"] == "resolved"

    await socket.send_json_to({"type": "message", "text": "One more question", "client_id": "r2"})
    assert (await receive_until(socket, "status"))[-1]["status"] == "bot"
    await receive_bot_reply(socket)
    assert len(scripted_bot.requests) == 2
    await socket.disconnect()


async def test_a_message_written_before_the_agent_resolved_does_not_reopen(widget, alice, scripted_bot, monkeypatch):
    from chat import agents

    async def slow_classify(request):  # the message's turn comes after the agent's click
        await asyncio.sleep(0.5)
        return {"results": [{"label": "neutral", "score": 0.9, "scores": {}, "tokens": 3} for _ in request.texts]}

    monkeypatch.setattr("chat.sentiment.classify", slow_classify)
    socket = await customer_writes(widget, "ok thanks, bye", "b1")
    await receive_until(socket, "ack")
    conversation = await sync_to_async(Conversation.objects.get)()
    await sync_to_async(agents.resolve)(conversation, alice.user)
    for _ in range(50):
        if await sync_to_async(Message.objects.exclude(sentiment_label="").exists)():
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.2)  # time for a (wrong) reopening and bot reply to show
    await sync_to_async(conversation.refresh_from_db)()
    assert conversation.status == "resolved"
    assert scripted_bot.requests == []
    await socket.disconnect()
