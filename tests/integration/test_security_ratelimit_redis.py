"""Shared limits on a real Redis: two limiter instances (as two API workers) hold one exact count; a Redis
that is paused or killed mid-load costs no request more than the short timeout."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

import pytest
import redis

from ticketguard.security.ratelimit import RateLimitService, Verdict

pytestmark = pytest.mark.redis


async def _load(services: list[RateLimitService], n: int, name: str, key: str, limit: int) -> list[bool]:
    # Like a server: each worker has a bounded number of requests in flight (its open connections).
    gates = [asyncio.Semaphore(16) for _ in services]

    async def one(i: int) -> bool:
        async with gates[i % len(services)]:
            return (await services[i % len(services)].hit(name, key, limit)).allowed

    return list(await asyncio.gather(*(one(i) for i in range(n))))


@pytest.mark.parametrize("strategy", ["moving-window", "sliding-window-counter"])
def test_two_workers_share_one_exact_count(redis_url: str, strategy: str) -> None:
    prefix = f"tg:test:{uuid.uuid4().hex[:8]}"
    workers = [
        RateLimitService(
            redis_url=redis_url, strategy=strategy, key_prefix=prefix, timeout_s=1.5
        )  # exact counting, not outages
        for _ in range(2)
    ]

    async def scenario() -> list[bool]:
        return await _load(workers, 600, "ip", "ip:abc", 200)

    allowed = sum(asyncio.run(scenario()))
    assert allowed == 200  # within ±1 % means exactly here: one atomic count in Redis


def test_paused_redis_gives_no_hang_and_local_limits(own_redis: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, _ = own_redis
    service = RateLimitService(redis_url=url, timeout_s=0.1, workers=2, key_prefix="tg:test:pause")

    async def hit() -> Verdict:
        return await service.hit("ip", "k", 100)

    async def scenario() -> tuple[list[Verdict], float, list[Verdict]]:
        before = [await hit() for _ in range(10)]
        redis.Redis.from_url(url).execute_command("CLIENT", "PAUSE", "3000", "ALL")
        started = time.perf_counter()
        gate = asyncio.Semaphore(16)

        async def gated() -> Verdict:
            async with gate:
                return await hit()

        during = await asyncio.gather(*(gated() for _ in range(200)))
        return before, time.perf_counter() - started, list(during)

    before, elapsed, during = asyncio.run(scenario())
    assert all(v.allowed for v in before)
    assert elapsed < 2.0, f"requests waited {elapsed:.2f}s on a Redis paused for 3 s"
    assert {v.backend for v in during} == {"local"}
    # local policy: ceil(100 / 2 workers) per process while the breaker is open (less any hit that a slow
    # machine already sent to the local limiter before the pause)
    local_before = sum(v.backend == "local" for v in before)
    assert sum(v.allowed for v in during) == 50 - local_before


def test_killed_redis_gives_no_hang_and_recovers(own_redis: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, proc = own_redis
    service = RateLimitService(redis_url=url, timeout_s=0.05, workers=1, key_prefix="tg:test:kill")
    service.BREAKER_SECONDS = 0.3  # type: ignore[misc]

    async def scenario() -> tuple[float, int]:
        await _load([service], 5, "ip", "k", 1000)
        proc.kill()
        proc.wait(5)
        started = time.perf_counter()
        during = await _load([service], 100, "ip", "k", 1000)
        return time.perf_counter() - started, sum(during)

    elapsed, during = asyncio.run(scenario())
    assert elapsed < 2.0  # the whole burst of 100
    assert during == 100
    assert service.breaker_open()


@pytest.mark.parametrize("strategy", ["moving-window", "sliding-window-counter"])
def test_hit_all_is_one_count_in_limits_own_keys(redis_url: str, strategy: str) -> None:
    """A request's limits checked at once (one Lua call for the moving window): counted in every limit when
    all pass, in none when one refuses, in the keys limits itself reads (so `hit` sees the same count)."""
    prefix = f"tg:test:{uuid.uuid4().hex[:8]}"
    service = RateLimitService(redis_url=redis_url, strategy=strategy, key_prefix=prefix, timeout_s=1.5)

    async def scenario() -> tuple[list[Verdict], list[bool], list[bool]]:
        both = [await service.hit_all([("ip", "a", 2), ("global", "all", 10)]) for _ in range(5)]
        ip_after = [(await service.hit("ip", "a", 2)).allowed]
        global_after = [(await service.hit("global", "all", 10)).allowed for _ in range(9)]
        return both, ip_after, global_after

    both, ip_after, global_after = asyncio.run(scenario())
    assert [v.allowed for v in both] == [True, True, False, False, False]
    refused = both[2]
    assert (refused.limit_name, refused.limit, refused.backend) == ("ip", 2, "redis")
    assert 1 <= refused.retry_after <= 60
    assert ip_after == [False]
    assert global_after == [True] * 8 + [False]  # the refused three spent none of the global budget
    assert asyncio.run(service.hit_all([])).allowed  # nothing to check is no Redis call and no breaker
    assert not service.breaker_open()


def test_a_batch_costs_its_items_all_or_none_on_redis(redis_url: str) -> None:
    """Limits count scorings (issue 11): a cost of N counts N in every limit if all have room for N, in
    none otherwise — on Redis's shared count (the moving window's Lua script pushes N entries)."""
    prefix = f"tg:test:{uuid.uuid4().hex[:8]}"
    service = RateLimitService(redis_url=redis_url, key_prefix=prefix, timeout_s=1.5)
    limits = [("ip", "ip:batch", 100), ("global", "all", 130)]

    async def scenario() -> list[Verdict]:
        return [
            await service.hit_all(limits, cost=60),  # 60 / 60
            await service.hit_all(limits, cost=60),  # ip: 120 > 100 → refused, counted nowhere
            await service.hit_all([("global", "all", 130)], cost=70),  # global: 130 exactly
            await service.hit_all(limits, cost=1),  # global full: refused, not counted in ip either
            await service.hit_all([("ip", "ip:batch", 100)], cost=40),  # ip: 100 exactly
            await service.hit_all([("ip", "ip:batch", 100)], cost=1),
            await service.hit_all([("ip", "ip:other", 100)], cost=101),  # more than the limit at once
        ]

    verdicts = asyncio.run(scenario())
    assert [v.allowed for v in verdicts] == [True, False, True, False, True, False, False]
    assert verdicts[1].limit_name == "ip"
    assert verdicts[3].limit_name == "global"


def test_a_batch_costs_its_items_with_the_sliding_window_counter(redis_url: str) -> None:
    prefix = f"tg:test:{uuid.uuid4().hex[:8]}"
    service = RateLimitService(
        redis_url=redis_url, strategy="sliding-window-counter", key_prefix=prefix, timeout_s=1.5
    )

    async def scenario() -> list[bool]:
        return [(await service.hit("ip", "ip:s", 100, cost=c)).allowed for c in (60, 60, 40, 1)]

    assert asyncio.run(scenario()) == [True, False, True, False]
