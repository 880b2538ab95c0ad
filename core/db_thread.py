"""Threads for short, latency-critical database writes, whose connections outlive each call.

Everything else opens a connection per request, task or socket frame (CONN_MAX_AGE=0, core/env.py): kept
connections piled up one per ASGI thread and ran PostgreSQL out of them. DatabaseThreads are a few
long-lived threads per process, so keeping their connections costs a few connections per process and saves
a connect per call: storing a chat message (what its ack waits for) took 48 ms p50 with a connect each time
under bench/load.py, 12-16 ms without. A connection is checked before a call when it has been idle (the
server may have restarted meanwhile) and dropped after a call that left it in doubt, so an outage costs at
most one failed call, answered as any other (core/db_outage.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

T = TypeVar("T")

# A connection used this recently is trusted without a round trip to check it: under load the check
# would add a round trip to every call, and a server that went away within the last second costs one
# failed call at most.
IDLE_CHECK_SECONDS = 1.0


def writer_threads(wanted: int) -> int:
    """How many threads may write at once: `wanted`, but one on SQLite, which lets one writer in at a time
    (more threads would only queue on its lock, each holding a connection)."""
    return 1 if connections["default"].vendor == "sqlite" else wanted


class DatabaseThreads:
    """`await threads.run(fn, *args)` runs fn on the least busy of `size` threads, each keeping its
    connections between calls. One caller's calls run in the order it awaits them."""

    def __init__(self, name: str, size: int = 1) -> None:
        self._lanes = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-{n}") for n in range(size)]
        # Calls queued or running per lane: a hint for choosing one (callers on different loops may race
        # on it; the worst outcome is an uneven choice).
        self._pending = [0] * size
        self._local = threading.local()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        lane = min(range(len(self._lanes)), key=self._pending.__getitem__)
        self._pending[lane] += 1
        try:
            return await sync_to_async(self._call, thread_sensitive=False, executor=self._lanes[lane])(fn, *args)
        finally:
            self._pending[lane] -= 1

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if time.monotonic() - getattr(self._local, "last_used", 0.0) > IDLE_CHECK_SECONDS:
            for connection in connections.all(initialized_only=True):
                if connection.connection is not None and not connection.is_usable():
                    connection.close()
        try:
            return fn(*args)
        finally:
            self._local.last_used = time.monotonic()
            for connection in connections.all(initialized_only=True):
                if connection.connection is not None:
                    _keep_or_close(connection)

    def close_connections(self, timeout: float = 30.0) -> None:
        """Close every thread's connections (after the calls queued before): a test database about to be
        flushed or dropped must have no session left open on it."""
        def close() -> None:
            for connection in connections.all(initialized_only=True):
                connection.close()

        for future in [lane.submit(close) for lane in self._lanes]:
            future.result(timeout=timeout)


def _keep_or_close(connection) -> None:
    connection.close_at = None  # its age is no reason to close it here (see the module's docstring)
    if connection.in_atomic_block or connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"]:
        connection.close()  # the call left a transaction or a setting behind: not ours to reuse
    elif connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()
