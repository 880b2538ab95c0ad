"""Agents: live console sockets, replies reach the customer, notes never do, outsiders are refused."""

import pytest
from asgiref.sync import sync_to_async

from chat import agents, turns
from chat.conversations import append_message, current_conversation
from chat.identity import open_visitor
from chat.models import Author, ConversationStatus
from tests.chat.conftest import console_socket, receive_until, widget_socket

pytestmark = pytest.mark.django_db(transaction=True)


def start_conversation(widget):
    visitor = open_visitor(widget)
    conversation = current_conversation(visitor, create=True)
    message, _ = append_message(conversation, Author.CUSTOMER, "My boots are too small")
    turns.mark_handled(message.pk)  # answered earlier: the pipeline has nothing left to do for it
    return visitor, conversation


async def test_an_agent_reply_reaches_the_customer_instantly(widget, alice):
    visitor, conversation = await sync_to_async(start_conversation)(widget)
    customer, *_ = await widget_socket(widget, visitor)
    await customer.receive_json_from()
    await sync_to_async(agents.reply)(conversation, alice.user, "Sorry! Let's exchange them for free.")
    frames = await receive_until(customer, "message")
    frames += await receive_until(customer, "message")
    texts = [(f["message"]["author"], f["message"]["text"]) for f in frames if f["type"] == "message"]
    assert ("agent", "Sorry! Let's exchange them for free.") in texts
    assert ("system", "Alice from our team joined the conversation.") in texts
    assert {"type": "status", "status": "assigned", "assignee": "Alice"} in frames
    await sync_to_async(conversation.refresh_from_db)()
    assert conversation.status == ConversationStatus.ASSIGNED and conversation.first_agent_reply_at
    await customer.disconnect()


async def test_a_private_note_never_reaches_the_customer(widget, alice):
    visitor, conversation = await sync_to_async(start_conversation)(widget)
    customer, *_ = await widget_socket(widget, visitor)
    await customer.receive_json_from()
    agent, connected, _ = await console_socket(alice.user, conversation.pk)
    assert connected
    await sync_to_async(agents.note)(conversation, alice.user, "VIP customer, be generous")
    note = (await receive_until(agent, "message"))[-1]["message"]
    assert note["internal"] is True and note["text"] == "VIP customer, be generous"
    assert await customer.receive_nothing(timeout=0.5)
    await customer.send_json_to({"type": "resume", "last_seq": 0})
    replayed = [f["message"]["text"] for f in await receive_until(customer, "synced") if f["type"] == "message"]
    assert "VIP customer, be generous" not in replayed and "My boots are too small" in replayed
    await customer.disconnect()
    await agent.disconnect()


async def test_agents_see_the_customers_messages_typing_and_status_live(widget, bob, scripted_bot,
                                                                          scripted_sentiment):
    visitor, conversation = await sync_to_async(start_conversation)(widget)
    agent, connected, _ = await console_socket(bob.user, conversation.pk)
    assert connected
    customer, *_ = await widget_socket(widget, visitor)
    await customer.receive_json_from()
    await customer.send_json_to({"type": "typing", "typing": True})
    assert (await receive_until(agent, "typing"))[-1] == {"type": "typing", "who": "customer", "typing": True}
    await customer.send_json_to({"type": "message", "text": "I want a person now", "client_id": "p"})
    frames = await receive_until(agent, "sentiment")  # handoff first (a keyword), then the score arrives
    stored = [f["message"] for f in frames if f["type"] == "message"]
    assert stored[0]["text"] == "I want a person now" and stored[0]["author"] == "customer"
    assert stored[0]["sentiment"] is None  # shown to agents as soon as it is stored, scored right after
    assert {"type": "status", "status": "needs_human", "assignee": None} in frames
    assert frames[-1]["seq"] == stored[0]["seq"] and frames[-1]["label"] == "neutral"
    await customer.disconnect()
    await agent.disconnect()


async def test_the_console_list_rings_and_alerts_on_escalation(widget, alice):
    visitor, conversation = await sync_to_async(start_conversation)(widget)
    listing, connected, _ = await console_socket(alice.user)
    assert connected
    await sync_to_async(agents.take_over)(conversation, alice.user)
    frame = (await receive_until(listing, "changed"))[-1]
    assert frame["conversation"] == conversation.pk
    from chat.conversations import set_status

    await sync_to_async(set_status)(conversation, ConversationStatus.NEEDS_HUMAN, reason="test")
    frames = await receive_until(listing, "changed")
    while not frames[-1]["alert"]:
        frames += await receive_until(listing, "changed")
    await listing.disconnect()


async def test_an_outsider_cannot_open_another_organizations_conversation(widget, charlie):
    _, conversation = await sync_to_async(start_conversation)(widget)
    _, connected, code = await console_socket(charlie.user, conversation.pk)
    assert not connected and code == 4403


async def test_presence_says_whether_an_agent_is_online(widget, alice):
    from chat import presence

    organization_id = widget.organization_id
    assert await presence.agents_online(organization_id) == 0
    socket, connected, _ = await console_socket(alice.user)
    assert await presence.agents_online(organization_id) == 1
    await socket.disconnect()
    assert await presence.agents_online(organization_id) == 0
