"""Announce changes over the channel layer ("the doorbell"; the database is the source of truth).

Web code runs in Daphne's event loop, or in a sync_to_async thread that belongs to it: its sends go
through that loop's outbox, one after another in the order they were made, and the caller does not
wait for Redis (a sync thread used to block on every send: Channels runs all database work on one
such thread, so each doorbell held up every socket's next write). Celery workers and CLI commands
have no loop of their own: calling async_to_sync there per message makes channels_redis reuse
connections of closed loops ("Event loop is closed"), so they use one long-lived event loop thread
for every send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer

from core.background import in_background

logger = logging.getLogger(__name__)


class LoopThread:
    """One daemon thread running one event loop for the life of the process."""

    _instance: LoopThread | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="channel-layer-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def get(cls) -> LoopThread:
        with cls._lock:
            if cls._instance is None:
                cls._instance = LoopThread()
            return cls._instance

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)


_use_loop_thread = False
COALESCE_WINDOW = 0.2  # seconds
# A send that has not finished by then is given up (logged): one stalled send (a Redis that hangs instead of
# refusing) must not hold every later doorbell of its loop behind it. The test suite's one event loop lost
# all of its doorbells for the rest of the run that way.
SEND_TIMEOUT = 5.0  # seconds


def use_background_loop() -> None:
    """Call once in processes without an event loop (Celery workers, CLI commands)."""
    global _use_loop_thread
    _use_loop_thread = True


@contextlib.contextmanager
def background_loop() -> Iterator[None]:
    """Use the loop thread for the duration (a CLI command), then restore what the process had."""
    global _use_loop_thread
    previous, _use_loop_thread = _use_loop_thread, True
    try:
        yield
    finally:
        _use_loop_thread = previous


async def _group_send(group: str, message: dict) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(group, message)


def notify(group: str, message: dict) -> None:
    """Best effort: a lost doorbell is recovered by the next one or by the client's refresh."""
    _call(group, _group_send, group, message)


def notify_coalesced(group: str, message: dict, merge: Callable[[dict, dict], dict],
                     window: float = COALESCE_WINDOW) -> None:
    """Like notify, but at most one send per group and window: messages in between are folded
    (`merge(pending, newer)`) into one send at the end of the window. For doorbells whose listeners
    only refetch: a busy organization's console list rang twice per customer message."""
    _call(group, _coalesced_send, group, message, merge, window)


Send = Callable[..., Coroutine[Any, Any, None]]


def _call(group: str, send: Send, *args: Any) -> None:
    try:
        if _use_loop_thread:
            future = LoopThread.get().submit(send(*args))
            future.add_done_callback(_log_failure)
        elif (loop := _running_loop()) is not None:
            _Outbox.of(loop).put(group, send, args)
        elif (loop := _owning_loop()) is not None:
            loop.call_soon_threadsafe(lambda: _Outbox.of(loop).put(group, send, args))
        else:  # a sync thread of no loop (a management command without background_loop, a test)
            async_to_sync(send)(*args)
    except Exception as error:  # the channel layer must never break a database write or a training step
        # One line, not a traceback: with Redis down this fires on every progress step.
        logger.warning("could not notify group %s: %s", group, error)


class _Outbox:
    """One event loop's sends, made one at a time in the order they were asked for (a message's
    doorbell never overtakes the one of the message before it)."""

    _per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Outbox] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: deque[tuple[str, Send, tuple]] = deque()
        self.draining = False

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Outbox:
        outbox = cls._per_loop.get(loop)
        if outbox is None:
            outbox = cls._per_loop[loop] = cls(loop)
        return outbox

    def put(self, group: str, send: Send, args: tuple) -> None:
        """Call on the loop's own thread."""
        self.queue.append((group, send, args))
        if not self.draining:
            self.draining = True
            in_background(self._drain(), self.loop)

    async def _drain(self) -> None:
        try:
            while self.queue:
                group, send, args = self.queue.popleft()
                try:
                    await asyncio.wait_for(send(*args), SEND_TIMEOUT)
                except TimeoutError:
                    logger.warning("could not notify group %s: no answer in %s s", group, SEND_TIMEOUT)
                except Exception as error:
                    logger.warning("could not notify group %s: %s", group, error)
        finally:
            self.draining = False


@dataclass
class _Doorbell:
    last_sent: float = float("-inf")
    pending: dict | None = None


# Per event loop (each has its own channel-layer connections), per group.
_doorbells: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Doorbell]] = weakref.WeakKeyDictionary()


async def _coalesced_send(group: str, message: dict, merge: Callable[[dict, dict], dict], window: float) -> None:
    loop = asyncio.get_running_loop()
    bell = _doorbells.setdefault(loop, {}).setdefault(group, _Doorbell())
    if bell.pending is not None:  # a send is already due at the end of the window: ride along
        bell.pending = merge(bell.pending, message)
        return
    wait = bell.last_sent + window - loop.time()
    if wait <= 0:
        bell.last_sent = loop.time()
        await _group_send(group, message)
        return
    bell.pending = message
    loop.call_later(wait, _flush, loop, group, bell)


def _flush(loop: asyncio.AbstractEventLoop, group: str, bell: _Doorbell) -> None:
    """End of the window (on the loop's thread): the folded message joins the loop's outbox."""
    message, bell.pending = bell.pending, None
    bell.last_sent = loop.time()
    if message is not None:
        _Outbox.of(loop).put(group, _group_send, (group, message))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _owning_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop whose sync_to_async thread this is, if any (where async_to_sync would go back
    to: asgiref keeps it in a thread local, checked against the pid as asgiref itself does)."""
    local = SyncToAsync.threadlocal
    loop = getattr(local, "main_event_loop", None)
    if loop is None or getattr(local, "main_event_loop_pid", None) != os.getpid() or loop.is_closed():
        return None
    return loop


def _log_failure(future: Future) -> None:
    error = future.exception()
    if error is not None:
        logger.warning("channel layer send failed: %s", error)
