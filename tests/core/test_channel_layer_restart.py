"""Sockets keep hearing their groups after Redis restarts (memberships live only in Redis).

Each test runs its own embedded redis-server, restarts it for real, and waits on events or on Redis
state, never a fixed sleep.
"""

import asyncio
import time

import pytest
import redis.asyncio

from core.channel_layer import ReliableRedisChannelLayer
from core.embedded_redis import EmbeddedRedis
from stack.servers import TcpRedis

WATCH_SECONDS = 0.1


@pytest.fixture
def own_redis(tmp_path):
    server = EmbeddedRedis(tmp_path / "restart.sock")
    server.start()
    yield server
    server.stop()


_layers: list[ReliableRedisChannelLayer] = []


def layer_for(server: EmbeddedRedis | TcpRedis, **options) -> ReliableRedisChannelLayer:
    """A layer on `server`, closed when the test ends (_close_layers; a module that imports this imports that too)."""
    layer = ReliableRedisChannelLayer(hosts=[{"address": server.url, "socket_timeout": None}],
                                      watch_seconds=WATCH_SECONDS, **options)
    _layers.append(layer)
    return layer


@pytest.fixture(autouse=True)
async def _close_layers():
    """Each test's layers stop their reader and watcher, which would otherwise retry the gone server all session."""
    yield
    while _layers:
        await _layers.pop().close()


async def restart(server: EmbeddedRedis) -> None:
    await asyncio.to_thread(server.stop)
    await asyncio.to_thread(server.start)


async def test_a_channel_hears_its_group_again_after_a_redis_restart(own_redis):
    channels = layer_for(own_redis)
    listener = await channels.new_channel()
    await channels.group_add("doorbell", listener)
    await channels.group_send("doorbell", {"type": "test.ring", "n": 1})
    assert (await asyncio.wait_for(channels.receive(listener), 5))["n"] == 1
    await restart(own_redis)
    # The channel is told that its groups were lost and are back: it may have missed something.
    assert await asyncio.wait_for(channels.receive(listener), 10) == {"type": "layer.reconnected"}
    await channels.group_send("doorbell", {"type": "test.ring", "n": 2})
    assert (await asyncio.wait_for(channels.receive(listener), 5))["n"] == 2


async def test_a_channel_that_left_its_group_is_not_put_back(own_redis):
    channels = layer_for(own_redis)
    gone, staying = await channels.new_channel(), await channels.new_channel()
    for channel in (gone, staying):
        await channels.group_add("doorbell", channel)
    await channels.group_discard("doorbell", gone)
    await restart(own_redis)
    assert await asyncio.wait_for(channels.receive(staying), 10) == {"type": "layer.reconnected"}
    client = redis.asyncio.Redis.from_url(own_redis.url)
    members = {m.decode() for m in await client.zrange(channels._group_key("doorbell"), 0, -1)}
    await client.aclose()
    assert members == {staying}


async def test_memberships_lost_without_a_restart_are_renewed(own_redis):
    """A flush (or group_expiry) forgets memberships without a restart: the periodic renewal restores them."""
    channels = layer_for(own_redis, refresh_seconds=0.2)
    listener = await channels.new_channel()
    await channels.group_add("doorbell", listener)
    client = redis.asyncio.Redis.from_url(own_redis.url)
    await client.flushdb()
    key = channels._group_key("doorbell")
    deadline = time.monotonic() + 10
    while not await client.zrange(key, 0, -1):  # wait on Redis's state: the membership is back
        assert time.monotonic() < deadline, "the membership was never renewed"
        await asyncio.sleep(0.05)
    await client.aclose()
    await channels.group_send("doorbell", {"type": "test.ring", "n": 3})
    assert (await asyncio.wait_for(channels.receive(listener), 5))["n"] == 3


async def test_a_closed_layer_stops_its_reader_and_group_watcher(own_redis):
    channels = layer_for(own_redis)
    listener = await channels.new_channel()
    await channels.group_add("doorbell", listener)
    await channels.group_send("doorbell", {"type": "test.ring", "n": 1})
    assert (await asyncio.wait_for(channels.receive(listener), 5))["n"] == 1
    loop = asyncio.get_running_loop()
    reader, watcher = channels._readers[loop], channels._groups[loop].watcher
    assert watcher is not None and not reader.done() and not watcher.done()
    await channels.close()
    assert reader.cancelled() and watcher.cancelled()
    assert loop not in channels._readers and loop not in channels._groups
