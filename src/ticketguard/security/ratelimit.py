"""Rate limits on the `limits` library, shared through Redis, per process when Redis is absent or down.

Strategy (RATE_LIMIT_STRATEGY): ``moving-window`` (default) is limits' sliding log — at any instant at most
N requests were accepted in the preceding 60 seconds; each hit is one atomic Lua call on Redis, so every
worker and instance shares one exact count. ``sliding-window-counter`` weighs the previous fixed window's
count by its overlap: constant memory per key, approximate near window edges. A refused request is not
recorded, so a client hammering past its limit gets its budget back as its old requests age out.

A request's limits (per IP, per route, global) are checked together by `hit_all`: with the moving window
on Redis in **one** Lua call (`MULTI_MOVING_WINDOW`, the same lists and key layout as limits' own moving
window) that counts the request in every limit only if all of them let it pass — a request refused by its
IP limit does not spend the global budget — at one round trip instead of one per limit. Redis Cluster would
need the keys in one hash slot; the project runs one Redis. The sliding-window counter, and the in-process
limiter, check the limits one after the other with the same rule (stop at the first refusal).

Redis trouble (RATE_LIMIT_ON_REDIS_ERROR): every Redis call has a short socket timeout
(RATE_LIMIT_REDIS_TIMEOUT_MS, 250 ms, so a busy event loop does not trip it) and each limit check a hard
deadline of twice that (one retry fits in it). A failed check opens a breaker for BREAKER_SECONDS, during
which Redis is not tried at all, so no request waits on a dead or paused server. While it is open:
- ``local`` (default): each limit is enforced per process in memory at ceil(limit / API_WORKERS) — with
  connections spread over the workers the total stays close to the configured limit;
- ``open``: requests pass (availability first; the event log still records the outage);
- ``closed``: requests get 429 (protection first).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from ticketguard.config import Settings
from ticketguard.kit.outage import outage_log

log = logging.getLogger(__name__)

KEY_PREFIX = "tg:rl"

# KEYS: one moving-window list per limit (limits' layout: newest timestamp first, at most `limit` long).
# ARGV: now, expiry (s), cost (entries to add: a batch of N scorings costs N), then each key's limit.
# Returns 0 (counted in all) or the 1-based index of the first limit that refuses (counted in none).
# limits' acquire_moving_window.lua (which takes the same `amount`), for several keys at once.
MULTI_MOVING_WINDOW = """
local now = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
for i = 1, #KEYS do
    local limit = tonumber(ARGV[3 + i])
    if amount > limit then
        return i
    end
    local entry = redis.call('lindex', KEYS[i], limit - amount)
    if entry and tonumber(entry) >= now - expiry then
        return i
    end
end
for i = 1, #KEYS do
    local pushed = 0
    while pushed < amount do
        local n = math.min(5000, amount - pushed)
        local entries = {}
        for j = 1, n do
            entries[j] = now
        end
        redis.call('lpush', KEYS[i], unpack(entries))
        pushed = pushed + n
    end
    redis.call('ltrim', KEYS[i], 0, tonumber(ARGV[3 + i]) - 1)
    redis.call('expire', KEYS[i], expiry)
end
return 0
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit_name: str = ""
    limit: int = 0
    retry_after: int = 0
    remaining: int = 0
    backend: str = "redis"  # redis | local | open | closed


ALLOWED = Verdict(allowed=True)

# One limit of a request: (name, key, requests per minute).
Limit = tuple[str, str, int]


def _strategy(name: str) -> type[RateLimiter]:
    return MovingWindowRateLimiter if name == "moving-window" else SlidingWindowCounterRateLimiter


class RateLimitService:
    BREAKER_SECONDS = 2.0
    POOL_SIZE = 32

    def __init__(
        self,
        *,
        redis_url: str | None,
        strategy: str = "moving-window",
        on_redis_error: str = "local",
        timeout_s: float = 0.05,
        workers: int = 1,
        key_prefix: str = KEY_PREFIX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._strategy_cls = _strategy(strategy)
        self._redis_url = redis_url
        self._on_error = on_redis_error
        self._timeout = timeout_s
        self._workers = max(1, workers)
        self._prefix = key_prefix
        self._clock = clock
        self._shared: RateLimiter | None = None
        self._multi: Any | None = None  # the registered MULTI_MOVING_WINDOW script (moving window only)
        self._local = self._strategy_cls(MemoryStorage())
        self._breaker_until = 0.0
        self._redis = outage_log("redis")  # one line per outage and interval, not per breaker trip

    @classmethod
    def from_settings(cls, settings: Settings, *, key_prefix: str = KEY_PREFIX) -> RateLimitService:
        return cls(
            redis_url=settings.resolved_redis_url,
            strategy=settings.rate_limit_strategy,
            on_redis_error=settings.rate_limit_on_redis_error,
            timeout_s=settings.rate_limit_redis_timeout_ms / 1000,
            workers=settings.api_workers,
            key_prefix=key_prefix,
        )

    @property
    def shared(self) -> bool:
        return self._redis_url is not None

    def _shared_limiter(self) -> RateLimiter:
        if self._shared is None:
            assert self._redis_url is not None
            from redis.asyncio import BlockingConnectionPool

            plain = self._redis_url.removeprefix("async+")
            # A bounded pool: a burst of requests queues for one of POOL_SIZE connections (a round trip is
            # ~0.2 ms) instead of opening hundreds of sockets at once and timing out on the connects.
            pool = BlockingConnectionPool.from_url(
                plain,
                max_connections=self.POOL_SIZE,
                timeout=self._timeout * 4,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
            )
            storage = RedisStorage(
                "async+" + plain,
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=self._prefix,
                connection_pool=pool,  # type: ignore[arg-type]
            )
            self._shared = self._strategy_cls(storage)
            if self._strategy_cls is MovingWindowRateLimiter:
                from redis.asyncio import Redis

                self._multi = Redis(connection_pool=pool).register_script(MULTI_MOVING_WINDOW)
        return self._shared

    def breaker_open(self) -> bool:
        return self._clock() < self._breaker_until

    async def hit(self, name: str, key: str, per_minute: int, cost: int = 1) -> Verdict:
        """Count one request against ``name``/``key`` at ``per_minute``; the verdict says if it may pass."""
        return await self.hit_all([(name, key, per_minute)], cost)

    async def hit_all(self, limits: list[Limit], cost: int = 1) -> Verdict:
        """Count ``cost`` units (scorings: 1 per request, N for a batch of N) against all ``limits`` if every
        one has room for all of them (then ALLOWED); otherwise count them in none and return the first
        refusal, in the order given."""
        if not limits or cost < 1:
            return ALLOWED
        if self._redis_url is not None and not self.breaker_open():
            limiter = self._shared_limiter()
            try:
                # One request spends at most 2 × the timeout on Redis, whatever happens inside.
                verdict = await asyncio.wait_for(
                    self._shared_hit_retrying(limiter, limits, cost), timeout=self._timeout * 2
                )
                self._redis.ok()
                return verdict
            except Exception as exc:  # StorageError, timeouts, refused: never the request's fault
                self._breaker_until = self._clock() + self.BREAKER_SECONDS
                cause = getattr(exc, "storage_error", None) or exc.__cause__ or exc
                self._redis.failure(f"rate limits ({self._on_error} policy): {type(cause).__name__}")
        verdict = ALLOWED
        for name, key, per_minute in limits:
            verdict = await self._degraded(name, key, per_minute, cost)
            if not verdict.allowed:
                return verdict
        return verdict

    async def _shared_hit_retrying(self, limiter: RateLimiter, limits: list[Limit], cost: int) -> Verdict:
        try:
            return await self._shared_hit(limiter, limits, cost)
        except Exception:
            # One retry absorbs a lone slow reply (a busy event loop, a cold connection). A timed-out hit may
            # still have counted, so a retry can only make the limit stricter, never looser.
            if self.breaker_open():
                raise
            return await self._shared_hit(limiter, limits, cost)

    async def _shared_hit(self, limiter: RateLimiter, limits: list[Limit], cost: int) -> Verdict:
        if self._multi is not None:
            items = [RateLimitItemPerMinute(per_minute) for _, _, per_minute in limits]
            keys = [
                f"{self._prefix}:{item.key_for(name, key)}"
                for item, (name, key, _) in zip(items, limits, strict=True)
            ]
            args = [time.time(), items[0].get_expiry(), cost, *(per_minute for _, _, per_minute in limits)]
            refused = int(await self._multi(keys=keys, args=args))
            if refused == 0:
                return ALLOWED
            name, key, per_minute = limits[refused - 1]
            stats = await limiter.get_window_stats(items[refused - 1], name, key)
            return self._refused(name, per_minute, stats.reset_time, stats.remaining, "redis")
        for name, key, per_minute in limits:
            item = RateLimitItemPerMinute(per_minute)
            if not await limiter.hit(item, name, key, cost=cost):
                stats = await limiter.get_window_stats(item, name, key)
                return self._refused(name, per_minute, stats.reset_time, stats.remaining, "redis")
        return ALLOWED

    async def _degraded(self, name: str, key: str, per_minute: int, cost: int = 1) -> Verdict:
        if self._redis_url is None:  # no Redis configured: the in-process limiter is the limiter
            return await self._hit_local(name, key, per_minute, per_minute, "local", cost)
        if self._on_error == "open":
            return Verdict(allowed=True, backend="open")
        if self._on_error == "closed":
            return Verdict(
                False, name, per_minute, retry_after=int(self.BREAKER_SECONDS) + 1, backend="closed"
            )
        share = max(1, math.ceil(per_minute / self._workers))
        return await self._hit_local(name, key, per_minute, share, "local", cost)

    async def _hit_local(
        self, name: str, key: str, limit: int, share: int, backend: str, cost: int = 1
    ) -> Verdict:
        item = RateLimitItemPerMinute(share)
        if await self._local.hit(item, name, key, cost=cost):
            return Verdict(allowed=True, backend=backend)
        stats = await self._local.get_window_stats(item, name, key)
        return self._refused(name, limit, stats.reset_time, stats.remaining, backend)

    @staticmethod
    def _refused(name: str, limit: int, reset_time: float, remaining: int, backend: str) -> Verdict:
        retry = max(1, math.ceil(reset_time - time.time()))
        return Verdict(False, name, limit, retry_after=retry, remaining=max(0, remaining), backend=backend)
