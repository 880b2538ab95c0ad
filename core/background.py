"""Fire-and-forget coroutines that are not garbage-collected mid-flight.

The event loop keeps only weak references to tasks: a task nobody holds can vanish while it
waits. Everything started in the background goes through here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

_running: set[asyncio.Task] = set()


def in_background(coroutine: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Task:
    """Run the coroutine as a task of `loop` (default: the running one), held until it finishes."""
    task = (loop or asyncio.get_running_loop()).create_task(coroutine)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task
