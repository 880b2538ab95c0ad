"""Which organizations have an agent online: console sockets check in to a Redis sorted set
(member = socket, score = expiry), so every web process sees the same answer."""

from __future__ import annotations

import time

from core.redis_client import async_redis

PRESENCE_TTL = 90  # a console socket refreshes itself every 30 s


def _key(organization_id: int) -> str:
    return f"chat:presence:{organization_id}"


async def check_in(organization_id: int, socket: str) -> None:
    await async_redis().zadd(_key(organization_id), {socket: time.time() + PRESENCE_TTL})


async def check_out(organization_id: int, socket: str) -> None:
    await async_redis().zrem(_key(organization_id), socket)


async def agents_online(organization_id: int) -> int:
    client, key, now = async_redis(), _key(organization_id), time.time()
    await client.zremrangebyscore(key, 0, now)
    return int(await client.zcard(key))
