"""The Redis channel layer loses nothing when receivers come and go (stock channels_redis does)."""

import asyncio
import random

import pytest
from channels.exceptions import ChannelFull
from django.conf import settings

from core.channel_layer import READ_BATCH, ReliableRedisChannelLayer


def layer(**options) -> ReliableRedisChannelLayer:
    return ReliableRedisChannelLayer(hosts=[{"address": settings.REDIS_URL, "socket_timeout": None}], **options)


async def test_a_steady_receiver_gets_every_message_while_other_receivers_are_cancelled():
    channels = layer()
    steady = await channels.new_channel()
    received: list[int] = []
    total = 300

    async def listen() -> None:
        while len(received) < total:
            received.append((await channels.receive(steady))["n"])

    stopping = False

    async def sockets_coming_and_going() -> None:  # each receive is cancelled soon after it starts
        while not stopping:
            waiter = asyncio.ensure_future(channels.receive(await channels.new_channel()))
            await asyncio.sleep(random.uniform(0, 0.002))
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)

    listener = asyncio.ensure_future(listen())
    churn = [asyncio.ensure_future(sockets_coming_and_going()) for _ in range(3)]
    try:
        for number in range(total):
            await channels.send(steady, {"type": "test.message", "n": number})
            await asyncio.sleep(0.002)
        await asyncio.wait_for(listener, 10)
    finally:
        stopping = True
        await asyncio.gather(*churn, return_exceptions=True)
        listener.cancel()
    assert received == list(range(total))  # none lost (stock channels_redis dropped 8 to 11), in order


async def test_a_reply_sent_before_anyone_listens_is_kept_and_a_later_receive_gets_it():
    channels = layer()
    early, busy = await channels.new_channel(), await channels.new_channel()
    waiting = asyncio.ensure_future(channels.receive(busy))  # the process is already reading
    await channels.send(early, {"type": "test.message", "n": 1})
    await asyncio.sleep(0.2)
    assert (await asyncio.wait_for(channels.receive(early), 2))["n"] == 1
    await channels.send(busy, {"type": "test.message", "n": 2})
    assert (await asyncio.wait_for(waiting, 2))["n"] == 2
    assert early not in channels.receive_buffer and busy not in channels.receive_buffer  # nothing left behind


async def test_messages_for_a_receiver_that_went_away_are_not_kept():
    channels = layer()
    gone, alive = await channels.new_channel(), await channels.new_channel()
    waiter = asyncio.ensure_future(channels.receive(gone))
    await asyncio.sleep(0.05)
    waiter.cancel()  # its socket closed
    await asyncio.gather(waiter, return_exceptions=True)
    await channels.send(gone, {"type": "test.message", "n": 1})  # a group send that was already on its way
    await channels.send(alive, {"type": "test.message", "n": 2})
    assert (await asyncio.wait_for(channels.receive(alive), 2))["n"] == 2  # read after the late one
    assert gone not in channels.receive_buffer


async def test_messages_queued_before_the_reader_starts_arrive_in_order_across_its_batches():
    channels = layer(capacity=1000)
    first, second, grouped = [await channels.new_channel() for _ in range(3)]
    await channels.group_add("batch-test", first)
    await channels.group_add("batch-test", grouped)
    total = READ_BATCH + 50  # more than one pop takes
    for number in range(total):  # nobody reads yet: all of it waits in Redis
        await channels.send(first if number % 2 else second, {"type": "test.message", "n": number})
    await channels.group_send("batch-test", {"type": "test.message", "n": total})

    async def drain(channel: str, count: int) -> list[int]:
        return [(await asyncio.wait_for(channels.receive(channel), 5))["n"] for _ in range(count)]

    assert await drain(second, total // 2) == list(range(0, total, 2))
    assert await drain(first, total // 2 + 1) == [*range(1, total, 2), total]
    assert await drain(grouped, 1) == [total]  # a group send reaches each member of this process once
    await channels.group_discard("batch-test", first)
    await channels.group_discard("batch-test", grouped)


async def test_a_full_channel_refuses_the_next_message_until_it_is_read():
    channels = layer(capacity=3)
    unread = await channels.new_channel()
    for number in range(3):
        await channels.send(unread, {"type": "test.message", "n": number})
    with pytest.raises(ChannelFull):
        await channels.send(unread, {"type": "test.message", "n": 3})
    assert (await asyncio.wait_for(channels.receive(unread), 2))["n"] == 0
    await asyncio.wait_for(_until_sent(channels, unread, {"type": "test.message", "n": 3}), 5)
    assert [(await asyncio.wait_for(channels.receive(unread), 2))["n"] for _ in range(3)] == [1, 2, 3]


async def _until_sent(channels: ReliableRedisChannelLayer, channel: str, message: dict) -> None:
    """The reader pops everything waiting at once, so room appears as soon as it has read."""
    while True:
        try:
            return await channels.send(channel, message)
        except ChannelFull:
            await asyncio.sleep(0.01)
