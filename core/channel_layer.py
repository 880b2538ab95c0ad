"""channels_redis, minus its message loss when a receive is cancelled.

Stock channels_redis serves all of a process's specific channels (every WebSocket consumer, every
inference reply) from one Redis key, read by whichever receive() holds a lock: it pops a message
(BZPOPMIN) and files it under its channel. When that receive is cancelled mid-pop (a WebSocket
closed, a wait timed out), a message already taken from Redis is dropped, and it is usually
somebody else's: another customer's chat message, or the answer to an inference request, whose
caller then waits until its timeout (django/channels#1683, channels_redis#366; bench/chat.py lost a
whole batch of 64 sentiment labels that way). Here one reader task per event loop does all the
popping and nothing ever cancels it; a cancelled receive() only stops waiting on its own queue,
which loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict

from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)

READ_RETRY_SECONDS = 0.5  # after a Redis error (a restart, pools closed by flush())
CLOSED_REMEMBERED = 10_000  # channels whose receiver went away: late messages to them are dropped


class ReliableRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = (
            weakref.WeakKeyDictionary())
        # A message that arrives after its socket closed (a group send in flight) would otherwise sit
        # in a buffer nobody reads until the process restarts.
        self._closed: OrderedDict[str, None] = OrderedDict()

    async def receive(self, channel: str) -> dict:
        if "!" not in channel:  # a normal channel (no one in this project uses them): stock behaviour
            return await super().receive(channel)
        assert self.require_valid_channel_name(channel)
        process_channel = self.non_local_name(channel)
        assert process_channel.endswith(self.client_prefix + "!"), "Wrong client prefix"
        self._start_reader(process_channel)
        self._closed.pop(channel, None)
        queue = self.receive_buffer[channel]
        try:
            message = await queue.get()  # a cancelled get leaves the message in the queue
        except asyncio.CancelledError:
            # The receiver is going away (a closed socket) or gave up: like stock channels_redis,
            # forget its buffer, and (unlike it) drop what still arrives for it.
            self._closed[channel] = None
            if len(self._closed) > CLOSED_REMEMBERED:
                self._closed.popitem(last=False)
            self._forget(channel, queue)
            raise
        if queue.empty():
            self._forget(channel, queue)
        return message

    def _forget(self, channel: str, queue: asyncio.Queue) -> None:
        if self.receive_buffer.get(channel) is queue:
            del self.receive_buffer[channel]

    def _start_reader(self, process_channel: str) -> None:
        loop = asyncio.get_running_loop()
        reader = self._readers.get(loop)
        if reader is None or reader.done():
            self._readers[loop] = loop.create_task(self._read_forever(process_channel),
                                                   name="channel-layer-reader")

    async def _read_forever(self, process_channel: str) -> None:
        """Pop this process's messages and file each under its channel, for as long as the loop runs."""
        while True:
            try:
                target, message = await self.receive_single(process_channel)
            except asyncio.CancelledError:
                raise  # only the loop's shutdown cancels this task
            except Exception as error:
                logger.warning("channel layer read failed (%s); retrying", error)
                await asyncio.sleep(READ_RETRY_SECONDS)
                continue
            for name in target if isinstance(target, list) else [target]:
                if name not in self._closed:
                    self.receive_buffer[name].put_nowait(message)
