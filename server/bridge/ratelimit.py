"""Per-tenant token buckets in Redis, shared by every Bridge process.

The refill and the charge happen in one Lua script, so concurrent requests in different
processes can never spend the same tokens. Time comes from the Redis server's clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

_SCRIPT = """
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or cap
local ts = tonumber(b[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit_per_minute: int
    remaining: int
    #: seconds until the bucket is full again
    reset_s: int
    #: seconds until this request's cost would be affordable (0 when allowed)
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        h = {
            "X-RateLimit-Limit": str(self.limit_per_minute),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            h["Retry-After"] = str(self.retry_after_s)
        return h


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_SCRIPT)

    async def charge(self, tenant_id: int, per_minute: int, burst: int, cost: int) -> Decision:
        rate_per_s = per_minute / 60.0
        allowed, tokens_text = await self._script(
            keys=[f"bulkops:ratelimit:{tenant_id}"], args=[burst, rate_per_s, cost]
        )
        tokens = float(tokens_text)
        missing = max(0.0, cost - tokens)
        return Decision(
            allowed=bool(allowed),
            limit_per_minute=per_minute,
            remaining=max(0, math.floor(tokens)),
            reset_s=math.ceil((burst - tokens) / rate_per_s),
            retry_after_s=0 if allowed else max(1, math.ceil(missing / rate_per_s)),
        )
