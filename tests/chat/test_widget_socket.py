"""The customer's socket: send, acknowledge, streamed reply, replay, handoff, limits, security."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.core import signing

from chat.conversations import append_message
from chat.identity import SOCKET_TOKEN_SALT
from chat.models import Author, Conversation, ConversationStatus, Message
from store.inference.client import StreamEvent
from tests.chat.conftest import (
    BOT_PIECES,
    customer_writes,
    receive_bot_reply,
    receive_until,
    send_message_code,
    widget_socket,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_acks_stores_and_streams_the_bot_reply(widget, scripted_bot, scripted_sentiment):
    socket, connected, _, visitor = await widget_socket(widget)
    assert connected
    assert (await socket.receive_json_from())["type"] == "hello"
    await socket.send_json_to({"type": "message", "text": "How long do I have to return shoes?", "client_id": "c1"})
    frames = await receive_until(socket, "ack")
    assert frames[-1] == {"type": "ack", "client_id": "c1", "seq": 1}
    frames = await receive_until(socket, "message")  # the ack stands for the customer's own message
    tokens = [f["text"] for f in frames if f["type"] == "token"]
    stored = [f["message"] for f in frames if f["type"] == "message"]
    assert tokens == BOT_PIECES
    assert stored[-1]["author"] == "bot" and stored[-1]["text"] == "".join(BOT_PIECES)
    assert "sentiment" not in stored[-1] and "internal" not in stored[-1]
    history = scripted_bot.requests[0].messages
    assert history[0]["role"] == "system" and history[-1] == {"role": "user",
                                                              "content": "How long do I have to return shoes?"}
    assert scripted_bot.requests[0].frequency_penalty > 0  # small models loop without one
    texts = await sync_to_async(lambda: list(Message.objects.order_by("seq").values_list("author", "text")))()
    assert texts == [("customer", "How long do I have to return shoes?"), ("bot", "".join(BOT_PIECES))]
    await socket.disconnect()


async def test_the_bot_answers_with_the_conversation_history(widget, scripted_bot, scripted_sentiment):
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    for index, text in enumerate(["Hi, I ordered boots", "Can I return them?"]):
        await socket.send_json_to({"type": "message", "text": text, "client_id": f"h{index}"})
        await receive_bot_reply(socket)
    roles = [m["role"] for m in scripted_bot.requests[-1].messages]
    assert roles == ["system", "user", "assistant", "user"]
    await socket.disconnect()


async def test_a_resent_message_is_stored_once(widget, scripted_bot, scripted_sentiment):
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    for _ in range(2):
        await socket.send_json_to({"type": "message", "text": "hello", "client_id": "same-id"})
        assert (await receive_until(socket, "ack"))[-1]["seq"] == 1
    assert await sync_to_async(Message.objects.filter(author="customer").count)() == 1
    await socket.disconnect()


async def test_reconnecting_replays_exactly_what_was_missed(widget, scripted_bot, scripted_sentiment):
    socket, _, _, visitor = await widget_socket(widget)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "message", "text": "first", "client_id": "a"})
    await receive_until(socket, "ack")
    await socket.disconnect()
    # While the customer is offline the bot and an agent write.
    conversation = await sync_to_async(Conversation.objects.get)()
    for text in ("missed one", "missed two"):
        await sync_to_async(append_message)(conversation, Author.SYSTEM, text)
    socket, *_ = await widget_socket(widget, visitor)
    hello = await socket.receive_json_from()
    assert hello["conversation"] == conversation.pk
    await socket.send_json_to({"type": "resume", "last_seq": 1})
    frames = await receive_until(socket, "synced")
    replayed = [f["message"]["seq"] for f in frames if f["type"] == "message"]
    # Everything stored after seq 1 up to the point the replay reached (the bot's reply may be stored after
    # it, and then arrives live, after `synced`).
    synced_at = frames[-1]["last_seq"]
    expected = await sync_to_async(lambda: list(
        conversation.messages.filter(public_seq__gt=1, public_seq__lte=synced_at).order_by("public_seq")
        .values_list("public_seq", flat=True)))()
    assert replayed == expected and len(replayed) == len(set(replayed)) >= 2
    await socket.disconnect()


async def test_asking_for_a_human_hands_over_and_silences_the_bot(widget, scripted_bot, scripted_sentiment):
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "message", "text": "Can I talk to a human please?", "client_id": "x"})
    frames = await receive_until(socket, "ask_email")
    assert {"type": "status", "status": "needs_human", "assignee": None} in frames
    told = [f["message"] for f in frames if f["type"] == "message"]
    assert told[-1]["author"] == "system" and "No one from our team is online" in told[-1]["text"]
    conversation = await sync_to_async(Conversation.objects.get)()
    assert conversation.status == ConversationStatus.NEEDS_HUMAN
    assert conversation.escalation_reason == "the customer asked for a human"
    assert scripted_bot.requests == []
    await socket.send_json_to({"type": "email", "email": "dana@example.com"})
    frames = await receive_until(socket, "message")
    assert "dana@example.com" in frames[-1]["message"]["text"]
    await socket.disconnect()


async def test_consecutive_negative_messages_hand_over(widget, scripted_bot, scripted_sentiment):
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "message", "text": "This is the worst shop ever", "client_id": "n1"})
    await receive_until(socket, "ack")
    await receive_until(socket, "token")  # one negative message: the bot still answers
    await receive_until(socket, "message")
    await socket.send_json_to({"type": "message", "text": "Your bot is useless and I am furious", "client_id": "n2"})
    frames = await receive_until(socket, "status")
    assert frames[-1]["status"] == "needs_human"
    conversation = await sync_to_async(Conversation.objects.get)()
    assert conversation.escalation_reason == "2 negative messages in a row"
    assert conversation.sentiment_score < 0
    labels = await sync_to_async(lambda: list(Message.objects.filter(author="customer").values_list(
        "sentiment_label", flat=True)))()
    assert labels == ["negative", "negative"]
    assert len(scripted_bot.requests) == 1
    await socket.disconnect()


async def test_without_an_inference_worker_the_customer_is_told_and_a_human_is_called(
        widget, scripted_bot, scripted_sentiment):
    scripted_bot.unavailable = True
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "message", "text": "Where is my parcel?", "client_id": "u"})
    frames = await receive_until(socket, "status")
    frames += await receive_until(socket, "message") if not any(f["type"] == "message" for f in frames) else []
    assert {"type": "status", "status": "needs_human", "assignee": None} in frames
    polite = [f["message"]["text"] for f in frames if f["type"] == "message"]
    assert "our assistant is unavailable" in polite[-1]
    await socket.disconnect()


async def test_html_is_stored_and_sent_as_plain_text(widget, scripted_bot, scripted_sentiment):
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    evil = '<img src=x onerror="alert(1)"><b>bold</b>'
    await socket.send_json_to({"type": "message", "text": evil, "client_id": "h"})
    await receive_until(socket, "ack")
    await socket.send_json_to({"type": "resume", "last_seq": 0})
    frames = await receive_until(socket, "synced")
    replayed = [f["message"]["text"] for f in frames if f["type"] == "message"]
    assert replayed[0] == evil  # unchanged text: the widget renders it with textContent
    assert await sync_to_async(Message.objects.filter(text=evil).exists)()
    await socket.disconnect()


async def test_it_refuses_long_messages_and_floods(widget, scripted_bot, scripted_sentiment, settings):
    settings.CHAT_VISITOR_MESSAGES_PER_MINUTE = 2
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "message", "text": "x" * 2001, "client_id": "long"})
    error = (await receive_until(socket, "error"))[-1]
    assert error["code"] == "too_long" and "2000 characters" in error["message"]
    codes = []
    for index in range(3):
        await socket.send_json_to({"type": "message", "text": f"msg {index}", "client_id": f"f{index}"})
        while True:
            frame = await socket.receive_json_from(timeout=5)
            if frame["type"] in ("ack", "error"):
                codes.append(frame.get("code", "ack"))
                break
    assert codes == ["ack", "ack", "rate_limited"]
    assert await sync_to_async(Message.objects.filter(author="customer").count)() == 2
    await socket.disconnect()


async def test_it_refuses_a_socket_from_another_origin(widget):
    _, connected, code, _ = await widget_socket(widget, origin=b"https://shop.alice.example")
    assert not connected


async def test_it_refuses_a_forged_or_expired_token(widget, monkeypatch):
    visitor = (await widget_socket(widget))[3]
    forged = signing.dumps({"w": widget.public_key, "v": visitor.pk}, salt=SOCKET_TOKEN_SALT, key="not-our-secret")
    _, connected, code, _ = await widget_socket(widget, visitor, token=forged)
    assert not connected and code == 4403
    valid = await sync_to_async(signing.dumps)({"w": widget.public_key, "v": visitor.pk}, salt=SOCKET_TOKEN_SALT,
                                                compress=True)
    monkeypatch.setattr("chat.identity.SOCKET_TOKEN_MAX_AGE", -1)  # every token is now past its lifetime
    _, connected, code, _ = await widget_socket(widget, visitor, token=valid)
    assert not connected and code == 4403


async def test_csat_is_recorded_once_resolved(widget, alice, scripted_bot, scripted_sentiment):
    from chat import agents

    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "message", "text": "thanks, all good", "client_id": "t"})
    await receive_until(socket, "ack")
    conversation = await sync_to_async(Conversation.objects.get)()
    await sync_to_async(agents.resolve)(conversation, alice.user)
    assert (await receive_until(socket, "status"))[-1]["status"] == "resolved"
    await socket.send_json_to({"type": "csat", "value": 1})
    assert (await receive_until(socket, "csat_saved"))[-1]["value"] == 1
    await sync_to_async(conversation.refresh_from_db)()
    assert conversation.csat == 1 and conversation.resolved_by_human is False
    await socket.disconnect()


async def test_email_and_rating_need_the_right_moment(widget, scripted_bot, scripted_sentiment):
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "email", "email": "dana@example.com"})
    assert (await receive_until(socket, "error"))[-1]["code"] == "no_conversation"
    await socket.send_json_to({"type": "message", "text": "hello", "client_id": "m"})
    await receive_until(socket, "ack")
    await socket.send_json_to({"type": "csat", "value": -1})
    assert (await receive_until(socket, "error"))[-1]["code"] == "not_resolved"
    await socket.send_json_to({"type": "email", "email": "not-an-email"})
    assert (await receive_until(socket, "error"))[-1]["code"] == "bad_email"
    await socket.send_json_to({"type": "email", "email": "dana@example.com"})
    assert (await receive_until(socket, "email_saved"))[-1]["email"] == "dana@example.com"
    await socket.disconnect()


async def test_the_per_ip_limit_covers_every_visitor_of_an_address(widget, scripted_bot, scripted_sentiment,
                                                                    settings):
    settings.CHAT_IP_MESSAGES_PER_MINUTE = 2
    codes = []
    for index in range(3):  # three different visitors, one address
        socket, *_ = await widget_socket(widget)
        await socket.receive_json_from()
        codes.append(await send_message_code(socket, f"ip{index}"))
        await socket.disconnect()
    assert codes == ["ack", "ack", "rate_limited"]


async def test_the_bot_stops_mid_reply_when_an_agent_takes_over(widget, alice, scripted_sentiment, monkeypatch):
    from chat import agents

    state = {"yielded": 0, "closed": False}

    async def endless_bot(request):
        try:
            for index in range(200):
                await asyncio.sleep(0.02)
                state["yielded"] += 1
                yield StreamEvent("text", f"word{index} ")
            yield StreamEvent("done", info={"text": "never stored", "finish_reason": "length",
                                            "prompt_tokens": 1, "completion_tokens": 200})
        finally:
            state["closed"] = True  # the client closed the stream: the worker is told to stop this row

    monkeypatch.setattr("knowledge.replies.stream_generation", endless_bot)
    socket = await customer_writes(widget, "Tell me everything about shoes", "m1")
    await receive_until(socket, "token")
    conversation = await sync_to_async(Conversation.objects.get)()
    await sync_to_async(agents.take_over)(conversation, alice.user)
    await receive_until(socket, "status")
    frames = await receive_until(socket, "typing")  # the bot's "stopped typing"
    assert frames[-1]["typing"] is False and frames[-1]["who"] == "bot"
    assert state["closed"] and state["yielded"] < 200
    authors = await sync_to_async(lambda: list(Message.objects.values_list("author", flat=True)))()
    assert "bot" not in authors
    await socket.disconnect()


async def test_quick_messages_share_scoring_requests_and_are_labelled_in_order(widget, scripted_bot, monkeypatch):
    requests = []

    async def slow_classify(request):  # the model is busy: messages typed meanwhile wait for the next request
        requests.append(list(request.texts))
        await asyncio.sleep(0.5)
        results = [{"label": "positive" if "thanks" in t else "neutral", "score": 0.9,
                    "scores": {"positive": 0.9 if "thanks" in t else 0.05}, "tokens": 3} for t in request.texts]
        return {"results": results}

    monkeypatch.setattr("chat.sentiment.classify", slow_classify)
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    texts = ["hi", "my order 1234", "it is the blue one", "size 42", "to Berlin", "thanks"]
    for index, text in enumerate(texts):
        await socket.send_json_to({"type": "message", "text": text, "client_id": f"q{index}"})
    for _ in texts:
        await receive_until(socket, "ack")
    for _ in range(100):
        labels = await sync_to_async(lambda: list(Message.objects.filter(author="customer").order_by("seq")
                                                  .values_list("sentiment_label", flat=True)))()
        if all(labels):
            break
        await asyncio.sleep(0.1)
    assert labels == ["neutral"] * 5 + ["positive"]
    assert len(requests) < len(texts)  # one request per message if scoring waited for each message's turn
    assert sorted(text for request in requests for text in request) == sorted(texts)
    conversation = await sync_to_async(Conversation.objects.get)()
    assert conversation.sentiment_score > 0  # the last message (positive) was folded in last
    await socket.disconnect()


async def test_another_tab_open_before_the_conversation_existed_joins_it_and_catches_up(
        widget, scripted_bot, scripted_sentiment):
    first_tab, _, _, visitor = await widget_socket(widget)
    second_tab, *_ = await widget_socket(widget, visitor=visitor)  # the same visitor token, another tab
    for tab in (first_tab, second_tab):
        assert (await tab.receive_json_from())["conversation"] is None  # nothing exists before a message
    await first_tab.send_json_to({"type": "message", "text": "Do you ship to Norway?", "client_id": "t1"})
    await receive_until(first_tab, "ack")

    frames = await receive_until(second_tab, "synced")  # the replay: everything from the start
    assert [f["message"]["text"] for f in frames if f["type"] == "message"][0] == "Do you ship to Norway?"
    if not any(f["type"] == "message" and f["message"]["author"] == "bot" for f in frames):
        frames += await receive_bot_reply(second_tab)  # and what follows, live
    bot = [f["message"] for f in frames if f["type"] == "message" and f["message"]["author"] == "bot"]
    assert bot[0]["text"] == "".join(BOT_PIECES)
    await first_tab.disconnect()
    await second_tab.disconnect()
