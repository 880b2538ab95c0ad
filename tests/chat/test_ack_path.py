"""A customer message's ack: sent once the message is stored, and waiting for nothing else — not for the
pipeline's database work on Channels' shared thread, which is what made acks slow under load (bench/load.py).
The same holds for the bot's tokens on their way to the socket."""

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection, connections

from chat import pipeline, sentiment, turns
from chat.conversations import append_message, conversation_group, current_conversation
from chat.identity import open_visitor, sign_socket_token
from chat.models import Author, Message
from tests.chat.conftest import BOT_PIECES, receive_bot_reply, receive_until, widget_socket

pytestmark = pytest.mark.django_db(transaction=True)


def stored(client_id: str) -> bool:
    """Read on a thread of its own (thread_sensitive=False): the shared thread may be the one held up."""
    return Message.objects.filter(client_id=client_id, author="customer").exists()


def stored_conversation(client_id: str) -> int:
    return Message.objects.values_list("conversation_id", flat=True).get(client_id=client_id)


async def wait_for(event: threading.Event) -> bool:
    return await asyncio.to_thread(event.wait, 10)


@pytest.fixture
def held_turns(monkeypatch):
    """The pipeline's first turn claim blocks on Channels' shared database thread until `release` is set,
    as a burst of other work (turn claims, labels, bot replies) holds it under load."""
    entered, release = threading.Event(), threading.Event()
    claim = turns.claim

    def slow_claim(conversation_id: int, owner: str) -> bool:
        if not entered.is_set():
            entered.set()
            release.wait(30)  # bounded: a broken test must not hang the suite (then `release` is never set)
        return claim(conversation_id, owner)

    monkeypatch.setattr(turns, "claim", slow_claim)
    yield entered, release
    release.set()


async def test_it_acks_a_message_while_the_shared_database_thread_is_busy(
        widget, scripted_bot, scripted_sentiment, held_turns):
    entered, release = held_turns
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "message", "text": "Where are my boots?", "client_id": "m1"})
    assert (await receive_until(socket, "ack"))[-1]["seq"] == 1
    assert await wait_for(entered)  # the first message's pipeline now holds the shared thread

    await socket.send_json_to({"type": "message", "text": "Order 1234, by the way", "client_id": "m2"})
    ack = (await receive_until(socket, "ack"))[-1]
    assert ack == {"type": "ack", "client_id": "m2", "seq": 2}
    assert not release.is_set()  # acknowledged while the pipeline was still held up
    assert await sync_to_async(stored, thread_sensitive=False)("m2")  # and only once the row exists

    release.set()
    frames = await receive_bot_reply(socket, timeout=10)
    assert [f["text"] for f in frames if f["type"] == "token"][:len(BOT_PIECES)] == BOT_PIECES
    await socket.disconnect()


async def test_tokens_reach_the_socket_while_the_shared_database_thread_is_busy(
        widget, scripted_bot, scripted_sentiment, held_turns):
    entered, release = held_turns
    socket, *_ = await widget_socket(widget)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "message", "text": "Where are my boots?", "client_id": "m1"})
    await receive_until(socket, "ack")
    assert await wait_for(entered)  # the first message's pipeline now holds the shared thread

    conversation_id = await sync_to_async(stored_conversation, thread_sensitive=False)("m1")
    await get_channel_layer().group_send(conversation_group(conversation_id), {"type": "chat.token", "text": "Hi"})
    assert (await receive_until(socket, "token"))[-1] == {"type": "token", "text": "Hi"}
    await socket.send_json_to({"type": "ping"})
    assert (await receive_until(socket, "pong"))[-1] == {"type": "pong"}
    assert not release.is_set()
    release.set()
    await receive_bot_reply(socket, timeout=10)
    await socket.disconnect()


async def test_a_socket_opens_and_replays_while_the_shared_database_thread_is_busy(
        widget, scripted_bot, scripted_sentiment, held_turns):
    """Daphne drops a socket whose opening takes over 5 s: under /v1 load the shared thread is that busy."""
    entered, release = held_turns
    visitor = await sync_to_async(open_visitor)(widget)
    second_token = await sync_to_async(sign_socket_token)(widget, visitor)  # signed now: that is the shared thread
    socket, *_ = await widget_socket(widget, visitor)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "message", "text": "Where are my boots?", "client_id": "m1"})
    await receive_until(socket, "ack")
    assert await wait_for(entered)  # the first message's pipeline now holds the shared thread

    second_tab, connected, *_ = await widget_socket(widget, visitor, token=second_token)
    assert connected
    hello = await second_tab.receive_json_from(timeout=5)
    assert hello["type"] == "hello" and hello["last_seq"] == 1
    await second_tab.send_json_to({"type": "resume", "last_seq": 0})
    replayed = await receive_until(second_tab, "synced")
    assert [f["message"]["text"] for f in replayed if f["type"] == "message"] == ["Where are my boots?"]
    assert not release.is_set()  # opened and replayed while the pipeline was still held up
    release.set()
    await receive_bot_reply(socket, timeout=10)
    for tab in (socket, second_tab):
        await tab.disconnect()


async def test_the_ack_comes_before_the_echo_and_the_reply(widget, scripted_bot, scripted_sentiment):
    visitor = await sync_to_async(open_visitor)(widget)
    await sync_to_async(current_conversation)(visitor, create=True)  # the socket is in its group from the start
    socket, *_ = await widget_socket(widget, visitor)
    await socket.receive_json_from()
    await socket.send_json_to({"type": "message", "text": "Do you ship to Norway?", "client_id": "o1"})
    frames = await receive_bot_reply(socket)
    kinds = [f["type"] if f["type"] != "message" else f["message"]["author"] for f in frames]
    assert kinds[0] == "ack"
    assert kinds.index("customer") < kinds.index("token") < kinds.index("bot")
    await socket.disconnect()


async def test_the_same_message_from_two_tabs_at_once_is_stored_once(widget, scripted_bot, scripted_sentiment):
    visitor = await sync_to_async(open_visitor)(widget)
    await sync_to_async(current_conversation)(visitor, create=True)
    tabs = [(await widget_socket(widget, visitor))[0] for _ in range(2)]
    for tab in tabs:
        await tab.receive_json_from()
    for tab in tabs:  # both stores run at once on the store threads
        await tab.send_json_to({"type": "message", "text": "Is this in stock?", "client_id": "same"})
    acks = [(await receive_until(tab, "ack"))[-1] for tab in tabs]
    assert acks[0] == acks[1] == {"type": "ack", "client_id": "same", "seq": 1}
    assert await sync_to_async(Message.objects.filter(author="customer").count)() == 1
    for tab in tabs:
        await tab.disconnect()


def waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND datname = current_database()")
        return cursor.fetchone()[0] > 0


@pytest.mark.postgres
def test_a_resend_stored_while_its_label_is_folded_in_does_not_deadlock(widget, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("row locks: SQLite serializes whole write transactions")
    conversation = current_conversation(open_visitor(widget), create=True)
    message, _ = append_message(conversation, Author.CUSTOMER, "Is this in stock?", client_id="same")
    folding, go = threading.Event(), threading.Event()
    fold = sentiment.rolling

    def paused_fold(previous, value):  # called between the label's two updates (message, then conversation)
        folding.set()
        go.wait(10)
        return fold(previous, value)

    monkeypatch.setattr(sentiment, "rolling", paused_fold)
    results: dict = {}

    def run(name, work):
        try:
            results[name] = work()
        except Exception as error:  # the deadlock's loser: asserted on below
            results[name] = error
        finally:
            connections.close_all()

    label = {"label": "neutral", "score": 0.9, "scores": {"neutral": 0.9}}
    settling = threading.Thread(target=run, args=("settle", lambda: pipeline._settle(message, label)))
    settling.start()
    assert folding.wait(10)
    resending = threading.Thread(target=run, args=("resend", lambda: append_message(
        conversation, Author.CUSTOMER, "Is this in stock?", client_id="same")))
    resending.start()
    deadline = time.monotonic() + 10
    while not waiting_on_a_lock():  # the resend waits for the label's transaction
        assert time.monotonic() < deadline
        time.sleep(0.01)
    go.set()
    settling.join(20)
    resending.join(20)
    assert not isinstance(results["settle"], Exception), results["settle"]
    assert results["resend"] == (message, False)
    assert Message.objects.filter(client_id="same").count() == 1
