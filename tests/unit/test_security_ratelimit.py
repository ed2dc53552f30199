"""Rate limiter semantics in process, and the Redis-down policies against a port nobody listens on."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from ticketguard.security.ratelimit import RateLimitService


def _dead_redis_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"  # bound then closed: connection refused


async def _burst(service: RateLimitService, n: int, key: str = "k", limit: int = 10) -> int:
    verdicts = await asyncio.gather(*(service.hit("ip", key, limit) for _ in range(n)))
    return sum(v.allowed for v in verdicts)


def test_moving_window_in_process_is_exact_and_per_key() -> None:
    service = RateLimitService(redis_url=None)

    async def scenario() -> tuple[int, int, int]:
        return await _burst(service, 25), await _burst(service, 25, key="other"), await _burst(service, 5)

    assert asyncio.run(scenario()) == (10, 10, 0)


def test_refusal_carries_retry_after_and_limit() -> None:
    service = RateLimitService(redis_url=None)

    async def scenario() -> object:
        for _ in range(3):
            await service.hit("route:/buy", "k", 3)
        return await service.hit("route:/buy", "k", 3)

    verdict = asyncio.run(scenario())
    assert not verdict.allowed  # type: ignore[attr-defined]
    assert verdict.limit == 3
    assert verdict.limit_name == "route:/buy"
    assert 1 <= verdict.retry_after <= 60  # type: ignore[attr-defined]


def test_sliding_window_counter_strategy_available() -> None:
    service = RateLimitService(redis_url=None, strategy="sliding-window-counter")
    assert asyncio.run(_burst(service, 30)) == 10


@pytest.mark.parametrize(("policy", "expected"), [("local", 5), ("open", 40), ("closed", 0)])
def test_redis_down_follows_policy_without_waiting(policy: str, expected: int) -> None:
    service = RateLimitService(redis_url=_dead_redis_url(), on_redis_error=policy, timeout_s=0.05, workers=2)
    started = time.perf_counter()
    allowed = asyncio.run(_burst(service, 40))
    elapsed = time.perf_counter() - started
    assert allowed == expected  # local: ceil(10 / 2 workers) per process
    assert elapsed < 2.0  # the whole burst; a hang would wait for the OS connect timeout
    assert service.breaker_open()


def test_hit_all_counts_a_request_in_no_limit_when_one_refuses() -> None:
    service = RateLimitService(redis_url=None)

    async def scenario() -> tuple[list[bool], list[bool]]:
        both = [(await service.hit_all([("ip", "a", 2), ("global", "all", 10)])).allowed for _ in range(5)]
        # The 3 refused requests spent nothing of the global budget: 8 of 10 are left.
        rest = [(await service.hit("global", "all", 10)).allowed for _ in range(9)]
        return both, rest

    both, rest = asyncio.run(scenario())
    assert both == [True, True, False, False, False]
    assert rest == [True] * 8 + [False]
