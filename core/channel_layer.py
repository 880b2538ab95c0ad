"""channels_redis, minus its message loss when a receive is cancelled.

Stock channels_redis serves all of a process's specific channels (every WebSocket consumer, every
inference reply) from one Redis key, read by whichever receive() holds a lock: it pops a message
(BZPOPMIN) and files it under its channel. When that receive is cancelled mid-pop (a WebSocket
closed, a wait timed out), a message already taken from Redis is dropped, and it is usually
somebody else's: another customer's chat message, or the answer to an inference request, whose
caller then waits until its timeout (django/channels#1683, channels_redis#366; bench/chat.py lost a
whole batch of 64 sentiment labels that way). Here one reader task per event loop does all the
popping and nothing ever cancels it; a cancelled receive() only stops waiting on its own queue,
which loses nothing. That reader pops everything waiting in one round trip, and a send is one Lua
call: stock channels_redis spends four round trips on each (bench/load.py, chat only: the same 450
messages answered in 19-24 s instead of 26-33 s, the bot's reply p50 2.1-2.4 s instead of 2.9-3.6 s).

It also keeps its sockets in their groups. Group memberships live only in Redis: a Redis restart
(or a flush) forgets them, and a socket that survived it would answer pings but hear nothing live
again. So the layer remembers the groups of its own channels and a watcher per event loop puts them
back: at once when Redis's run_id changes (a restart), and every `refresh_seconds` in any case (a
flush; and group_expiry, which would otherwise drop a socket that stays open longer). After a restart
each affected channel also gets a local {"type": "layer.reconnected"} event, so its consumer catches
up from the database on what went by while it was deaf.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

import redis.exceptions
from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer

from core.redis_client import script

logger = logging.getLogger(__name__)

READ_RETRY_SECONDS = 0.5  # after a Redis error (a restart, pools closed by flush())
CLOSED_REMEMBERED = 10_000  # channels whose receiver went away: late messages to them are dropped
WATCH_SECONDS = 2.0  # how often the watcher asks Redis for its run_id (one INFO call per process)
RECONNECTED = {"type": "layer.reconnected"}
READ_BATCH = 256  # messages popped per round trip by a process's reader
# KEYS[1] the channel's sorted set; ARGV: message, score (now), expired below, capacity, expiry seconds.
SEND_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[3])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class ReliableRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, watch_seconds: float = WATCH_SECONDS, refresh_seconds: float | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A restarted Redis has closed every idle connection of the pools, and over TCP a pool hands one
        # out without noticing: its next command fails once ("Connection closed by server"), losing an
        # inference reply or a socket's group. One retry on a fresh connection; a Redis still down fails.
        self.hosts = [{"retry_on_error": [redis.exceptions.ConnectionError], **host}
                      for host in self.hosts]  # type: ignore[has-type]  # channels_redis is untyped
        self.watch_seconds = watch_seconds
        # Well inside group_expiry, so a membership is renewed long before Redis would drop it.
        self.refresh_seconds = refresh_seconds if refresh_seconds is not None else min(300.0, self.group_expiry / 4)
        self._groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopGroups] = weakref.WeakKeyDictionary()
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

    async def close(self) -> None:
        """Stop the running loop's reader and group watcher and close the connections. A process's layer lives
        as long as its loop; a layer made for a while (tests) is closed, or its tasks retry a gone Redis forever."""
        loop = asyncio.get_running_loop()
        groups = self._groups.pop(loop, None)
        tasks = [task for task in (self._readers.pop(loop, None), groups.watcher if groups else None)
                 if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.close_pools()

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
                popped = await self._pop_batch(process_channel)
            except asyncio.CancelledError:
                raise  # only the loop's shutdown cancels this task
            except Exception as error:
                logger.warning("channel layer read failed (%s); retrying", error)
                await asyncio.sleep(READ_RETRY_SECONDS)
                continue
            for content in popped:
                message = self.deserialize(content)
                target = message.pop("__asgi_channel__", process_channel)
                for name in target if isinstance(target, list) else [target]:
                    if name not in self._closed:
                        self.receive_buffer[name].put_nowait(message)

    async def _pop_batch(self, process_channel: str) -> list[bytes]:
        """Everything waiting for this process (up to READ_BATCH) in one round trip, else block for one.

        Stock receive_single spends four round trips on each message (restore its in-flight backup, pop,
        back it up, clear the backup) so that a cancelled receive loses nothing; this reader is never
        cancelled while the loop runs, so it pops directly. Under load (bench/load.py) those round trips
        were the web process's busiest work: each write to Redis handed the core to redis-server."""
        connection = self.connection(self.consistent_hash(process_channel))
        key = self.prefix + process_channel
        popped = await connection.zpopmin(key, READ_BATCH)
        if popped:
            return [member for member, _score in popped]
        result = await connection.bzpopmin(key, timeout=self.brpop_timeout)
        return [] if result is None else [result[1]]

    async def send(self, channel: str, message: dict) -> None:
        """Stock send in one round trip instead of four (drop expired, check capacity, add, renew expiry):
        inference workers send every streamed chunk this way."""
        assert isinstance(message, dict), "message is not a dict"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message
        key_channel = channel
        if "!" in channel:
            message = {**message, "__asgi_channel__": channel}
            key_channel = self.non_local_name(channel)
            index = self.consistent_hash(channel)
        else:
            index = next(self._send_index_generator)
        now = time.time()
        added = await script(SEND_SCRIPT, self.connection(index))(
            keys=[self.prefix + key_channel],
            args=[self.serialize(message), repr(now), int(now) - int(self.expiry), self.get_capacity(channel),
                  int(self.expiry)])
        if not added:
            raise ChannelFull()

    # --- group memberships that survive a Redis restart -------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        state = self._loop_groups()
        index = self.consistent_hash(group)
        if index not in state.run_ids:  # before the first membership: what "restarted" is measured against
            state.run_ids[index] = await self._run_id(index)
        await super().group_add(group, channel)
        state.memberships[group].add(channel)
        if state.watcher is None or state.watcher.done():
            state.watcher = asyncio.get_running_loop().create_task(self._watch_forever(state),
                                                                   name="channel-layer-groups")

    async def group_discard(self, group: str, channel: str) -> None:
        memberships = self._loop_groups().memberships
        memberships[group].discard(channel)
        if not memberships[group]:
            del memberships[group]
        await super().group_discard(group, channel)

    def _loop_groups(self) -> _LoopGroups:
        return self._groups.setdefault(asyncio.get_running_loop(), _LoopGroups())

    async def _run_id(self, index: int) -> str:
        info = await self.connection(index).info("server")
        return str(info["run_id"])

    async def _watch_forever(self, state: _LoopGroups) -> None:
        """Put memberships back after a Redis restart (and notify their channels), and renew them periodically."""
        next_refresh = time.monotonic() + self.refresh_seconds
        while True:
            await asyncio.sleep(self.watch_seconds)
            try:
                restarted = [index for index, known in list(state.run_ids.items())
                             if await self._run_id(index) != known]
                if restarted:
                    logger.warning("Redis restarted (hosts %s): restoring this process's groups", restarted)
                    await self._restore(state, restarted, notify=True)
                elif time.monotonic() >= next_refresh:
                    await self._restore(state, list(state.run_ids), notify=False)
                    next_refresh = time.monotonic() + self.refresh_seconds
            except asyncio.CancelledError:
                raise  # only the loop's shutdown cancels this task
            except Exception as error:  # Redis is down or restarting: the next round tries again
                logger.warning("channel layer group watch failed (%s); retrying", error)

    async def _restore(self, state: _LoopGroups, indices: list[int], notify: bool) -> None:
        """Re-add the loop's channels to their groups on the given hosts; then, if asked, tell each channel."""
        touched: set[str] = set()
        for group, members in list(state.memberships.items()):
            members.difference_update(self._closed)  # sockets that went away without leaving their groups
            if not members:
                del state.memberships[group]
                continue
            index = self.consistent_hash(group)
            if index not in indices:
                continue
            connection = self.connection(index)
            await connection.zadd(self._group_key(group), dict.fromkeys(members, time.time()))
            await connection.expire(self._group_key(group), self.group_expiry)
            touched |= members
        for index in indices:
            state.run_ids[index] = await self._run_id(index)  # only once every group is back
        if notify:
            for channel in touched:
                if channel not in self._closed:
                    self.receive_buffer[channel].put_nowait(dict(RECONNECTED))


@dataclass
class _LoopGroups:
    """One event loop's group memberships, the Redis servers they were made on, and the task that keeps them."""

    memberships: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    run_ids: dict[int, str] = field(default_factory=dict)  # host index -> that server's run_id
    watcher: asyncio.Task | None = None
