"""Socket events reach their handler while Channels' shared database thread is busy: a consumer built on
JsonFrameConsumer does not wait for a close_old_connections queued behind other work (bot replies, turn claims),
which made chat acks and page doorbells wait seconds under load (bench/load.py)."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from core.consumers import JsonFrameConsumer


class Doorbell(JsonFrameConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add("doorbell", self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard("doorbell", self.channel_name)

    async def receive_json(self, content: dict, **kwargs) -> None:
        await self.send_json({"type": "echo", "of": content["type"]})

    async def ring(self, event: dict) -> None:
        await self.send_json({"type": "rung"})


@pytest.mark.django_db  # Channels closes old database connections when the socket goes
async def test_frames_and_group_events_are_handled_while_the_shared_database_thread_is_busy():
    entered, release = threading.Event(), threading.Event()

    def busy() -> None:  # as a burst of other sockets' database work holds the thread under load
        entered.set()
        release.wait(30)  # bounded: a broken test must not hang the suite

    socket = WebsocketCommunicator(Doorbell.as_asgi(), "/ws/doorbell/")
    assert (await socket.connect())[0]
    holder = asyncio.ensure_future(sync_to_async(busy)())  # thread_sensitive: the shared thread
    try:
        assert await asyncio.to_thread(entered.wait, 10)
        await get_channel_layer().group_send("doorbell", {"type": "ring"})
        assert await socket.receive_json_from(timeout=5) == {"type": "rung"}
        await socket.send_json_to({"type": "hello"})
        assert await socket.receive_json_from(timeout=5) == {"type": "echo", "of": "hello"}
        assert not holder.done()  # all of it while the thread was still held
    finally:
        release.set()
        await holder
    await socket.disconnect()
