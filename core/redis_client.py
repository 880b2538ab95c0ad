"""The Redis clients of this process (rate limits, presence): an async one per event loop, and one for
threads (a client with its own connection pool is thread-safe)."""

from __future__ import annotations

import asyncio
import threading
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


_scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def script(source: str, client=None):
    """The Lua script bound to `client` (this loop's by default): called by its sha (EVALSHA), not re-sent
    every time."""
    client = client if client is not None else async_redis()
    scripts = _scripts.setdefault(client, {})
    if source not in scripts:
        scripts[source] = client.register_script(source)
    return scripts[source]


_sync_lock = threading.Lock()
_sync: tuple[str | None, object | None] = (None, None)


def sync_redis():
    """For work already on a thread of its own (core/db_thread.py): a round trip there needs no event loop."""
    import redis

    global _sync
    with _sync_lock:
        url, client = _sync
        if client is None or url != settings.REDIS_URL:  # settings can change under tests
            client = redis.Redis.from_url(settings.REDIS_URL)
            _sync = (settings.REDIS_URL, client)
        return client
