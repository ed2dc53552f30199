"""When to try again, and how long to wait: one decision shared by the sync and async clients.

Every call this client makes is safe to repeat: GETs read, and a scoring POST carries its
``transaction_id`` — ticketguard stores one answer per id and replays it to a repeat, so a retry after a
lost response can neither score twice nor write twice. Retried: the request never arrived or its answer
was lost (connect errors, timeouts, dropped connections), the server is briefly unable (502/503/504), or
it asked us to slow down (429 whose ``Retry-After`` fits the budget). Never retried: any other 4xx — the
same request would be refused again.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass

import httpx

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Failures after which the request may not have reached the server, or its answer may not have reached us.
RETRY_EXCEPTIONS: tuple[type[Exception], ...] = (httpx.TransportError,)


@dataclass(frozen=True)
class RetryPolicy:
    """``budget_s`` bounds the whole call, retries and waits included; each attempt gets at most
    ``attempt_timeout_s`` of it (and connecting at most ``connect_timeout_s``)."""

    budget_s: float = 2.0
    attempt_timeout_s: float = 1.0
    connect_timeout_s: float = 0.25
    max_attempts: int = 3
    backoff_s: float = 0.05  # first wait; doubles per attempt, with full jitter

    def __post_init__(self) -> None:
        for name in ("budget_s", "attempt_timeout_s", "connect_timeout_s", "backoff_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RetryPolicy.{name} must be > 0, got {getattr(self, name)!r}")
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts!r}")


class Budget:
    """The time left of one call."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.deadline = time.monotonic() + policy.budget_s
        self.attempts = 0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self) -> httpx.Timeout | None:
        """The next attempt's timeout, or None when no time is left for one."""
        left = self.remaining()
        if left <= 0.005:
            return None
        attempt = min(self.policy.attempt_timeout_s, left)
        return httpx.Timeout(attempt, connect=min(self.policy.connect_timeout_s, attempt))

    def wait_before_retry(self, retry_after: str | None, rng: random.Random) -> float | None:
        """Seconds to wait before the next attempt, or None to stop (attempts or budget spent, or the
        server's Retry-After is longer than what is left)."""
        if self.attempts >= self.policy.max_attempts:
            return None
        delay = rng.uniform(0, self.policy.backoff_s * 2 ** (self.attempts - 1))
        if retry_after is not None:
            with contextlib.suppress(ValueError):  # an HTTP-date: keep the backoff
                delay = max(delay, float(retry_after))
        if delay >= self.remaining() - 0.005:
            return None
        return delay


def retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES


def describe(exc: Exception) -> str:
    """A short, secret-free reason for logs and for the fail policy's answer."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or unreachable"
    return type(exc).__name__
