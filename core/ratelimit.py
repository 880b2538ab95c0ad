"""Rate limits shared by every web process: token buckets kept in Redis, updated atomically by Lua.

A bucket holds up to `limit` units and refills at `limit` per minute. Redis's own clock is used, so
processes on different machines agree. Requests cost 1 up front; tokens are checked up front (the
bucket must not be empty) and charged after the reply, when the real count is known — a bucket may
go negative, which makes the next calls wait, as with OpenAI's limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.redis_client import script, sync_redis

# Shared by both scripts: the clock, and a bucket's level refilled at capacity per minute.
_REFILL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function level(key, capacity)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil then return capacity end
  return math.min(capacity, tokens + (now - ts) * capacity / 60.0)
end
local function store(key, capacity, tokens)
  redis.call('HSET', key, 'tokens', tokens, 'ts', now)
  redis.call('EXPIRE', key, 120 + math.ceil(60 * math.max(0, capacity - tokens) / capacity))
end
"""

_BUCKET = _REFILL + """
local key = KEYS[1]
local capacity = tonumber(ARGV[1])
local rate = capacity / 60.0
local cost = tonumber(ARGV[2])
local mode = ARGV[3]            -- 'take': take cost if available; 'peek': allow if > 0; 'charge': always take
local tokens = level(key, capacity)
local allowed = 1
local retry = 0
if mode == 'take' then
  if tokens >= cost then tokens = tokens - cost else allowed = 0; retry = (cost - tokens) / rate end
elseif mode == 'peek' then
  if tokens <= 0 then allowed = 0; retry = (1 - tokens) / rate end
else
  tokens = math.max(tokens - cost, -capacity)
end
store(key, capacity, tokens)
return {allowed, tostring(retry), tostring(tokens)}
"""


# Take one unit from every bucket, or from none when any is empty (one round trip for a chat
# message's per-visitor and per-IP limits). Returns {allowed, index of the empty bucket, retry}.
_TAKE_ALL = _REFILL + """
local levels = {}
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[i])
  local tokens = level(key, capacity)
  if tokens < 1 then return {0, i, tostring((1 - tokens) * 60.0 / capacity)} end
  levels[i] = tokens - 1
end
for i, key in ipairs(KEYS) do
  store(key, tonumber(ARGV[i]), levels[i])
end
return {1, 0, '0'}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int
    remaining: int
    limit: int


async def _run(key: str, limit: int, cost: int, mode: str) -> Decision:
    allowed, retry, tokens = await script(_BUCKET)(keys=[key], args=[limit, cost, mode])
    return Decision(bool(int(allowed)), max(1, math.ceil(float(retry))) if not int(allowed) else 0,
                    max(0, int(float(tokens))), limit)


async def take_request(key_id: str, per_minute: int) -> Decision:
    return await _run(f"rl:req:{key_id}", per_minute, 1, "take")


async def tokens_available(key_id: str, per_minute: int) -> Decision:
    return await _run(f"rl:tok:{key_id}", per_minute, 0, "peek")


async def charge_tokens(key_id: str, per_minute: int, tokens: int) -> Decision:
    return await _run(f"rl:tok:{key_id}", per_minute, tokens, "charge")


async def take(bucket: str, per_minute: int, cost: int = 1) -> Decision:
    """A generic bucket (e.g. chat messages per visitor or per IP)."""
    return await _run(f"rl:{bucket}", per_minute, cost, "take")


async def take_all(buckets: list[tuple[str, int]]) -> tuple[bool, int, int]:
    """One unit from each (bucket, per_minute), all or nothing: (allowed, index of the bucket that
    refused, seconds to wait). Nothing is taken when one refuses."""
    keys, limits = _take_all_arguments(buckets)
    return _take_all_outcome(await script(_TAKE_ALL)(keys=keys, args=limits))


def take_all_now(buckets: list[tuple[str, int]]) -> tuple[bool, int, int]:
    """take_all from a thread (blocking): for work that is on a thread of its own anyway."""
    keys, limits = _take_all_arguments(buckets)
    return _take_all_outcome(script(_TAKE_ALL, sync_redis())(keys=keys, args=limits))


def _take_all_arguments(buckets: list[tuple[str, int]]) -> tuple[list[str], list[int]]:
    return [f"rl:{name}" for name, _ in buckets], [limit for _, limit in buckets]


def _take_all_outcome(reply) -> tuple[bool, int, int]:
    allowed, refused_by, retry = reply
    if int(allowed):
        return True, -1, 0
    return False, int(refused_by) - 1, max(1, math.ceil(float(retry)))
