"""A conversation's turn is claimed in the database: with two web processes (a visitor's two tabs on
different ones), each customer message gets one bot reply, one reply at a time, in the order written."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from chat import pipeline, turns
from chat.conversations import append_message, current_conversation
from chat.identity import open_visitor
from chat.models import Author, Conversation, Message
from store.inference.client import StreamEvent
from tests.chat.conftest import BOT_PIECES

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


class SlowBot:
    """Streams BOT_PIECES slowly; records each request and how many replies ever ran at once."""

    def __init__(self) -> None:
        self.requests: list = []
        self.streaming = 0
        self.most_at_once = 0
        self.started = asyncio.Event()

    async def stream(self, request):
        self.requests.append(request)
        self.streaming += 1
        self.most_at_once = max(self.most_at_once, self.streaming)
        self.started.set()
        try:
            for piece in BOT_PIECES:
                await asyncio.sleep(0.05)
                yield StreamEvent("text", piece)
        finally:
            self.streaming -= 1
        yield StreamEvent("done", info={"text": "".join(BOT_PIECES), "finish_reason": "stop",
                                        "prompt_tokens": 12, "completion_tokens": 7})


@pytest.fixture
def slow_bot(monkeypatch):
    bot = SlowBot()
    monkeypatch.setattr("knowledge.replies.stream_generation", bot.stream)
    return bot


def _store(conversation: Conversation, text: str) -> pipeline.Incoming:
    message, _ = append_message(conversation, Author.CUSTOMER, text)
    return pipeline.incoming(message, conversation.widget_id)


def _transcript(conversation: Conversation) -> list[tuple[str, str]]:
    return list(Message.objects.filter(conversation=conversation).order_by("seq").values_list("author", "text"))


async def test_two_processes_answer_each_message_once_one_at_a_time_in_order(widget, slow_bot, scripted_sentiment):
    conversation = await sync_to_async(lambda: current_conversation(open_visitor(widget), create=True))()
    first = await sync_to_async(_store)(conversation, "Where is my order?")
    web_1 = asyncio.ensure_future(pipeline.handle_customer_message(first, owner="web-1"))
    await slow_bot.started.wait()  # web 1 is answering when the visitor's other tab writes, through web 2
    second = await sync_to_async(_store)(conversation, "And can I return it?")
    await pipeline.handle_customer_message(second, owner="web-2")  # finds the turn taken: leaves it to web 1
    assert slow_bot.requests and len(slow_bot.requests) == 1
    await web_1

    reply = "".join(BOT_PIECES)
    assert await sync_to_async(_transcript)(conversation) == [
        ("customer", "Where is my order?"), ("customer", "And can I return it?"), ("bot", reply), ("bot", reply)]
    assert slow_bot.most_at_once == 1
    # The second reply was written after the first was stored: it saw it.
    assert [turn["content"] for turn in slow_bot.requests[1].messages if turn["role"] == "assistant"] == [reply]
    handled = await sync_to_async(lambda: list(Message.objects.filter(author="customer").order_by("seq")
                                               .values_list("handled_at", flat=True)))()
    assert all(handled) and handled[0] <= handled[1]
    await sync_to_async(conversation.refresh_from_db)()
    assert conversation.turn_owner == ""  # handed back


async def test_the_same_message_handled_by_two_processes_is_answered_once(widget, slow_bot, scripted_sentiment):
    conversation = await sync_to_async(lambda: current_conversation(open_visitor(widget), create=True))()
    arrived = await sync_to_async(_store)(conversation, "Do you ship to Berlin?")
    await asyncio.gather(pipeline.handle_customer_message(arrived, owner="web-1"),
                         pipeline.handle_customer_message(arrived, owner="web-2"))
    authors = [author for author, _ in await sync_to_async(_transcript)(conversation)]
    assert authors == ["customer", "bot"]
    assert len(slow_bot.requests) == 1


def test_a_live_claim_is_respected_and_a_stale_one_taken_over(widget):
    conversation = current_conversation(open_visitor(widget), create=True)
    assert turns.claim(conversation.pk, "web-1")
    assert not turns.claim(conversation.pk, "web-2")
    assert turns.renew(conversation.pk, "web-1")
    stale = timezone.now() - timedelta(seconds=turns.STALE_SECONDS + 1)
    Conversation.objects.filter(pk=conversation.pk).update(turn_claimed_at=stale)  # web 1 died
    assert turns.claim(conversation.pk, "web-2")
    assert not turns.renew(conversation.pk, "web-1")  # back from the dead: it learns the turn is gone
    turns.release(conversation.pk, "web-1")  # and cannot hand back what it no longer holds
    conversation.refresh_from_db()
    assert conversation.turn_owner == "web-2"


async def test_a_turn_left_by_a_dead_process_is_taken_over_by_the_next_message(widget, slow_bot, scripted_sentiment):
    conversation = await sync_to_async(lambda: current_conversation(open_visitor(widget), create=True))()
    lost = await sync_to_async(_store)(conversation, "Hello?")  # web 1 stored it, claimed the turn, died
    stale = timezone.now() - timedelta(seconds=turns.STALE_SECONDS + 1)
    await sync_to_async(Conversation.objects.filter(pk=conversation.pk).update)(turn_owner="web-1",
                                                                               turn_claimed_at=stale)
    again = await sync_to_async(_store)(conversation, "Anyone there?")
    await pipeline.handle_customer_message(again, owner="web-2")
    authors = [author for author, _ in await sync_to_async(_transcript)(conversation)]
    assert authors == ["customer", "customer", "bot", "bot"]
    assert await sync_to_async(Message.objects.filter(pk=lost.message.pk, handled_at=None).exists)() is False


async def test_a_takeover_stops_the_bot_in_a_process_without_the_customers_socket(widget, alice, scripted_sentiment,
                                                                                  monkeypatch):
    from chat import agents

    state = {"yielded": 0, "closed": asyncio.Event()}

    async def endless_bot(request):
        try:
            for index in range(500):
                await asyncio.sleep(0.02)
                state["yielded"] += 1
                yield StreamEvent("text", f"word{index} ")
            yield StreamEvent("done", info={"text": "never stored", "finish_reason": "length",
                                            "prompt_tokens": 1, "completion_tokens": 500})
        finally:
            state["closed"].set()

    monkeypatch.setattr("knowledge.replies.stream_generation", endless_bot)
    conversation = await sync_to_async(lambda: current_conversation(open_visitor(widget), create=True))()
    arrived = await sync_to_async(_store)(conversation, "Tell me everything about shoes")
    replying = asyncio.ensure_future(pipeline.handle_customer_message(arrived, owner="sweeper-1"))  # no socket here
    while state["yielded"] < 3:
        await asyncio.sleep(0.02)
    await sync_to_async(agents.take_over)(conversation, alice.user)  # in "another process": the console's
    await asyncio.wait_for(state["closed"].wait(), timeout=5)
    await replying
    assert state["yielded"] < 500
    authors = [author for author, _ in await sync_to_async(_transcript)(conversation)]
    assert "bot" not in authors
