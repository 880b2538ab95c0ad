"""Open chat sockets survive a Redis restart: they catch up from the database and keep receiving live."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from chat.conversations import append_message, conversation_group, current_conversation
from chat.identity import open_visitor
from chat.models import Author
from tests.chat.conftest import console_socket, receive_until, widget_socket
from tests.core.test_channel_layer_restart import WATCH_SECONDS, own_redis, restart  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def redis_layer(own_redis, settings):  # noqa: F811 - the fixture imported above
    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "core.channel_layer.ReliableRedisChannelLayer",
        "CONFIG": {"hosts": [{"address": own_redis.url, "socket_timeout": None}], "watch_seconds": WATCH_SECONDS}}}
    yield own_redis
    # Its reader and watcher would retry the gone server for the rest of the session.
    await get_channel_layer().close()


async def test_an_open_widget_catches_up_and_keeps_receiving_after_a_redis_restart(redis_layer, widget):
    visitor = await sync_to_async(open_visitor)(widget)
    conversation = await sync_to_async(lambda: current_conversation(visitor, create=True))()
    socket, connected, *_ = await widget_socket(widget, visitor)
    assert connected and (await socket.receive_json_from())["type"] == "hello"
    await asyncio.to_thread(redis_layer.stop)
    # Written while Redis is down: its doorbell is lost; the database has it.
    missed = await sync_to_async(lambda: append_message(conversation, Author.SYSTEM, "While you were away")[0])()
    await asyncio.to_thread(redis_layer.start)
    frames = await receive_until(socket, "synced", timeout=10)
    assert [f["message"]["seq"] for f in frames if f["type"] == "message"] == [missed.seq]
    layer = get_channel_layer()
    await layer.group_send(conversation_group(conversation.pk), {
        "type": "chat.message", "message": {"seq": missed.seq + 1, "author": "agent", "text": "Back live"}})
    frames = await receive_until(socket, "message", timeout=5)
    assert frames[-1]["message"]["text"] == "Back live"
    await socket.send_json_to({"type": "ping"})
    assert (await receive_until(socket, "pong"))[-1] == {"type": "pong"}
    await socket.disconnect()


async def test_an_open_console_refreshes_and_keeps_receiving_after_a_redis_restart(redis_layer, widget, alice):
    conversation = await sync_to_async(lambda: current_conversation(open_visitor(widget), create=True))()
    listing, connected, _ = await console_socket(alice.user)
    page, connected_too, _ = await console_socket(alice.user, conversation.pk)
    assert connected and connected_too
    await restart(redis_layer)
    # Each page is rung so that it re-fetches what it may have missed.
    assert await listing.receive_json_from(timeout=10) == {"type": "changed", "conversation": None, "alert": False}
    assert await page.receive_json_from(timeout=10) == {"type": "status", "status": "bot", "assignee": None}
    await get_channel_layer().group_send(conversation_group(conversation.pk), {
        "type": "chat.typing", "who": "customer", "typing": True, "name": ""})
    assert await page.receive_json_from(timeout=5) == {"type": "typing", "who": "customer", "typing": True}
    for socket in (listing, page):
        await socket.disconnect()
