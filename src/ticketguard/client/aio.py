"""`AsyncTicketguardClient`: the asyncio client (httpx.AsyncClient), the same calls and rules as
`TicketguardClient` with ``await``. Create one per process (e.g. in the app's lifespan) and reuse it.

    async with AsyncTicketguardClient("http://fraud-api:5001", api_key=key) as guard:
        check = await guard.predict(Transaction(...))
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from ticketguard.client.models import (
    BatchResult,
    FailPolicy,
    FraudCheck,
    ModelInfo,
    ReviewOutcome,
    Transaction,
    parse_model_info,
    parse_review,
)
from ticketguard.client.protocol import (
    BATCH_PATH,
    MODEL_INFO_PATH,
    PREDICT_PATH,
    Attempt,
    auth_headers,
    batch_result,
    check_result,
    json_or_raise,
    review_path,
    unreachable_batch,
)
from ticketguard.client.retry import RETRY_EXCEPTIONS, Budget, RetryPolicy, describe, retryable_status

log = logging.getLogger("ticketguard.client")


class AsyncTicketguardClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | Callable[[], str] | None = None,
        fail_policy: FailPolicy | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = 20,
        verify: bool | str = True,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.fail_policy = fail_policy or FailPolicy()
        self.retry = retry or RetryPolicy()
        self._auth = (api_key, token)
        self._rng = random.Random()  # nosec B311 - retry jitter, not security
        self._http = http or httpx.AsyncClient(
            base_url=base_url,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            verify=verify,
            headers={"User-Agent": "ticketguard-client"},
        )

    # ------------------------------------------------------------------------------------------ calls
    async def predict(self, transaction: Transaction) -> FraudCheck:
        """Score one transaction. Unreachable, too slow or nonsense → the fail policy's answer (or
        `TicketguardUnavailable` with ``FailPolicy(None)``); a 4xx raises `RequestRejected`."""
        attempt = await self._send("POST", PREDICT_PATH, transaction.to_json())
        return check_result(attempt, transaction.transaction_id, self.fail_policy)

    async def predict_batch(self, transactions: Sequence[Transaction]) -> BatchResult:
        """Score up to the server's API_BATCH_MAX_ITEMS transactions in one request."""
        if not transactions:
            return BatchResult(checks=())
        attempt = await self._send("POST", BATCH_PATH, {"transactions": [t.to_json() for t in transactions]})
        if attempt.response is None:
            return unreachable_batch(transactions, attempt, self.fail_policy)
        return batch_result(attempt, transactions, self.fail_policy)

    async def model_info(self) -> ModelInfo:
        return parse_model_info(json_or_raise(await self._send("GET", MODEL_INFO_PATH)))

    async def review_outcome(self, transaction_id: str) -> ReviewOutcome | None:
        """The analyst's decision on a transaction held for review; None if ticketguard has none."""
        attempt = await self._send("GET", review_path(transaction_id))
        if attempt.response is not None and attempt.response.status_code == 404:
            return None
        return parse_review(transaction_id, json_or_raise(attempt))

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncTicketguardClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------------------------------ transport
    async def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Attempt:
        budget = Budget(self.retry)
        headers = auth_headers(*self._auth)
        why = "no attempt made"
        while True:
            timeout = budget.timeout()
            if timeout is None:
                return Attempt(None, budget.attempts, f"{why}; budget of {self.retry.budget_s:g} s spent")
            budget.attempts += 1
            retry_after: str | None = None
            try:
                response = await self._http.request(method, path, json=body, headers=headers, timeout=timeout)
            except RETRY_EXCEPTIONS as exc:
                why = describe(exc)
                log.info("ticketguard %s %s failed (%s), attempt %d", method, path, why, budget.attempts)
            else:
                if not retryable_status(response.status_code):
                    return Attempt(response, budget.attempts, "")
                why = f"HTTP {response.status_code}"
                retry_after = response.headers.get("retry-after")
                wait = budget.wait_before_retry(retry_after, self._rng)
                if wait is None:
                    return Attempt(response, budget.attempts, why)
                await response.aclose()
                await asyncio.sleep(wait)
                continue
            wait = budget.wait_before_retry(retry_after, self._rng)
            if wait is None:
                return Attempt(None, budget.attempts, why)
            await asyncio.sleep(wait)
