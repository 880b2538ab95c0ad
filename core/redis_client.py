"""The async Redis client of this process (rate limits, presence), one per event loop."""

from __future__ import annotations

import asyncio
import weakref

from django.conf import settings

_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def async_redis():
    """redis.asyncio connections belong to the loop that opened them, hence one client per loop."""
    import redis.asyncio

    loop = asyncio.get_running_loop()
    url, client = _clients.get(loop, (None, None))
    if client is None or url != settings.REDIS_URL:  # settings can change under tests
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        _clients[loop] = (settings.REDIS_URL, client)
    return client
