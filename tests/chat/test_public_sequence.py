"""The customer's numbering is gapless: a private note takes a console number (its place in the
transcript) but no number the customer sees, so a replay never shows a gap the widget cannot fill."""

import importlib

import pytest
from asgiref.sync import sync_to_async

from chat import agents
from chat.conversations import append_message, current_conversation, messages_after
from chat.identity import open_visitor
from chat.models import Conversation, Message
from tests.chat.conftest import console_socket, customer_writes, receive_bot_reply, receive_until, widget_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_note_leaves_no_gap_in_what_the_customer_sees(widget, alice, scripted_bot, scripted_sentiment):
    socket = await customer_writes(widget, "Where is my order?", "n1")
    frames = await receive_bot_reply(socket)
    assert next(f for f in frames if f["type"] == "ack")["seq"] == 1
    assert frames[-1]["message"]["seq"] == 2
    conversation = await sync_to_async(Conversation.objects.get)()
    agent, connected, _ = await console_socket(alice.user, conversation.pk)
    assert connected

    await sync_to_async(agents.note)(conversation, alice.user, "VIP customer, be quick")
    note = (await receive_until(agent, "message"))[-1]["message"]
    assert note["internal"] is True and note["seq"] == 3  # the console keeps its place in the transcript
    await sync_to_async(agents.reply)(conversation, alice.user, "It ships today.")
    live = [f["message"] for f in await receive_until(socket, "message") if f["type"] == "message"]
    live += [f["message"] for f in await receive_until(socket, "message") if f["type"] == "message"]
    assert [(m["author"], m["seq"]) for m in live] == [("system", 3), ("agent", 4)]  # joined, then the reply

    await socket.send_json_to({"type": "message", "text": "Great, thanks", "client_id": "n2"})
    assert (await receive_until(socket, "ack"))[-1]["seq"] == 5
    assert (await receive_until(socket, "message"))[-1]["message"]["seq"] == 5  # its broadcast to every tab

    await socket.send_json_to({"type": "resume", "last_seq": 0})
    frames = await receive_until(socket, "synced")
    assert [f["message"]["seq"] for f in frames if f["type"] == "message"] == [1, 2, 3, 4, 5]
    assert frames[-1]["last_seq"] == 5
    await socket.send_json_to({"type": "resume", "last_seq": 3})
    frames = await receive_until(socket, "synced")
    assert [f["message"]["text"] for f in frames if f["type"] == "message"] == ["It ships today.", "Great, thanks"]

    console = await sync_to_async(messages_after)(conversation, 0, include_internal=True)
    assert [m.seq for m in console] == [1, 2, 3, 4, 5, 6]
    assert [m.text for m in console if m.internal] == ["VIP customer, be quick"]
    await socket.disconnect()
    await agent.disconnect()


async def test_a_new_tab_starts_from_the_customers_last_number(widget, alice, scripted_bot, scripted_sentiment):
    socket = await customer_writes(widget, "Hello", "t1")
    await receive_bot_reply(socket)
    conversation = await sync_to_async(Conversation.objects.select_related("visitor").get)()
    await sync_to_async(agents.note)(conversation, alice.user, "a note")
    second, *_ = await widget_socket(widget, conversation.visitor)
    hello = await second.receive_json_from()
    assert hello["last_seq"] == 2  # customer, bot: the note is not counted
    await socket.disconnect()
    await second.disconnect()


def test_the_migration_numbers_existing_messages_and_leaves_their_history_unanswered(widget, alice):
    from django.apps import apps

    migration = importlib.import_module("chat.migrations.0003_turns_and_public_seq")
    conversation = current_conversation(open_visitor(widget), create=True)
    for author, text in [("customer", "Where is my order?"), ("bot", "Let me check.")]:
        append_message(conversation, author, text)
    agents.note(conversation, alice.user, "VIP customer, be quick")
    agents.reply(conversation, alice.user, "It ships today.")
    # As a site stored them before the migration: no public numbers, nothing marked handled.
    Message.objects.update(public_seq=None, handled_at=None)
    Conversation.objects.update(last_public_seq=0)

    migration.number_and_settle_existing_messages(apps, None)

    numbered = list(Message.objects.order_by("seq").values_list("seq", "internal", "public_seq"))
    assert numbered == [(1, False, 1), (2, False, 2), (3, True, None), (4, False, 3), (5, False, 4)]
    conversation.refresh_from_db()
    assert conversation.last_public_seq == 4
    assert not Message.objects.filter(author="customer", handled_at=None).exists()  # the sweeper leaves them
