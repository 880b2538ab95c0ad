"""The first sends after a Redis restart are not lost on the connections the old server closed.

Found by tests/topology: right after a Redis restart an inference worker's "accepted" message and a widget
socket's group_add failed with "Connection closed by server", and the customer was told "our assistant is
unavailable". The layer's pools keep idle TCP connections that the old server closed, and each failed
its next command. Over TCP, as production runs Redis (the unix socket notices the close at checkout).
"""

import asyncio

import pytest

from stack.servers import TcpRedis
from tests.core.test_channel_layer_restart import _close_layers, layer_for  # noqa: F401 - a fixture

CHANNELS = 4  # concurrent commands: as many pooled connections, all closed by the restart


@pytest.fixture
def tcp_redis():
    server = TcpRedis()
    server.start()
    yield server
    server.stop()


async def test_concurrent_sends_right_after_a_redis_restart_all_arrive(tcp_redis):
    channels = layer_for(tcp_redis)
    names = [await channels.new_channel() for _ in range(CHANNELS)]
    await asyncio.gather(*(channels.send(name, {"type": "test.ring", "n": 1}) for name in names))
    await asyncio.to_thread(tcp_redis.restart)  # nothing saved: the first rings are gone
    await asyncio.gather(*(channels.send(name, {"type": "test.ring", "n": 2}) for name in names))
    for name in names:
        assert (await asyncio.wait_for(channels.receive(name), 5))["n"] == 2


async def test_group_adds_right_after_a_redis_restart_succeed(tcp_redis):
    channels = layer_for(tcp_redis)
    names = [await channels.new_channel() for _ in range(CHANNELS)]
    await asyncio.gather(*(channels.group_add("doorbell", name) for name in names))
    await asyncio.to_thread(tcp_redis.restart)
    late = [await channels.new_channel() for _ in range(CHANNELS)]
    await asyncio.gather(*(channels.group_add("lobby", name) for name in late))
    await channels.group_send("lobby", {"type": "test.ring"})
    for name in late:
        message = await asyncio.wait_for(channels.receive(name), 5)
        if message == {"type": "layer.reconnected"}:  # the watcher may notice the restart after the adds
            message = await asyncio.wait_for(channels.receive(name), 5)
        assert message == {"type": "test.ring"}
