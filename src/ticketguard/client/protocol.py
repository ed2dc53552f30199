"""The API's routes and how an attempt's outcome becomes a result — shared by the sync and async clients."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from ticketguard.client.models import (
    BatchResult,
    FailPolicy,
    FraudCheck,
    ItemError,
    ProtocolError,
    TicketguardUnavailable,
    Transaction,
    parse_check,
    policy_check,
    rejection,
)

log = logging.getLogger("ticketguard.client")

PREDICT_PATH = "/api/v1/ml/predict/fraud"
BATCH_PATH = "/api/v1/ml/batch/predict"
MODEL_INFO_PATH = "/api/v1/ml/model/info"
REVIEWS_PATH = "/api/v1/reviews/"


def review_path(transaction_id: str) -> str:
    return REVIEWS_PATH + quote(transaction_id, safe="")


def auth_headers(api_key: str | None, token: str | Callable[[], str] | None) -> dict[str, str]:
    if api_key is not None and token is not None:
        raise ValueError("give api_key or token, not both (ticketguard refuses a request with two)")
    if api_key is not None:
        return {"X-API-Key": api_key}
    if token is not None:
        return {"Authorization": f"Bearer {token() if callable(token) else token}"}
    return {}


@dataclass
class Attempt:
    """The last attempt of a call: its response (None: no usable response at all), the number of
    attempts made, and why the last one failed (for the fail policy's reason)."""

    response: httpx.Response | None
    attempts: int
    why: str

    def json(self) -> Any:
        assert self.response is not None
        try:
            return self.response.json()
        except ValueError:
            raise ProtocolError(f"HTTP {self.response.status_code} answer is not JSON") from None

    def raise_for_rejection(self) -> None:
        """A 4xx other than 429 is the request's own fault: raise it (no policy hides a caller's bug)."""
        if self.response is not None and 400 <= self.response.status_code < 500:
            status = self.response.status_code
            if status != 429:
                try:
                    body = self.response.json()
                except ValueError:
                    body = None
                raise rejection(status, body)


def json_or_raise(attempt: Attempt) -> Any:
    """The answer of a call without a fail policy (model info, review outcome)."""
    if attempt.response is None or attempt.response.status_code >= 500 or attempt.response.status_code == 429:
        raise TicketguardUnavailable(f"ticketguard unavailable: {attempt.why}")
    attempt.raise_for_rejection()
    return attempt.json()


def _fallback(transaction_id: str, policy: FailPolicy, why: str, attempts: int) -> FraudCheck:
    log.warning("ticketguard unavailable for %s (%s): fail policy %s", transaction_id, why, policy.decision)
    if policy.decision is None:
        raise TicketguardUnavailable(f"ticketguard unavailable: {why}")
    return policy_check(transaction_id, policy, why, attempts)


def _one(body: Any, status: int, transaction_id: str, attempts: int) -> FraudCheck:
    """A 200 answer, or a 503 that carries the server's policy decision."""
    check = parse_check(body, "model" if status == 200 else "server_policy", attempts)
    if check.transaction_id != transaction_id:
        raise ProtocolError(f"answer for {check.transaction_id!r}, asked about {transaction_id!r}")
    return check


def check_result(attempt: Attempt, transaction_id: str, policy: FailPolicy) -> FraudCheck:
    response = attempt.response
    if response is None:
        return _fallback(transaction_id, policy, attempt.why, attempt.attempts)
    attempt.raise_for_rejection()
    status = response.status_code
    if status in (200, 503):
        try:
            return _one(attempt.json(), status, transaction_id, attempt.attempts)
        except ProtocolError as exc:
            if status == 200:
                return _fallback(transaction_id, policy, f"unusable answer: {exc}", attempt.attempts)
            # a 503 without a decision (no model live, credential store down): ours applies
    return _fallback(transaction_id, policy, attempt.why or f"HTTP {status}", attempt.attempts)


def unreachable_batch(
    transactions: Sequence[Transaction], attempt: Attempt, policy: FailPolicy
) -> BatchResult:
    return BatchResult(
        checks=tuple(_fallback(t.transaction_id, policy, attempt.why, attempt.attempts) for t in transactions)
    )


def batch_result(attempt: Attempt, transactions: Sequence[Transaction], policy: FailPolicy) -> BatchResult:
    assert attempt.response is not None
    attempt.raise_for_rejection()
    if attempt.response.status_code != 200:
        why = attempt.why or f"HTTP {attempt.response.status_code}"
        return unreachable_batch(transactions, Attempt(None, attempt.attempts, why), policy)
    try:
        body = attempt.json()
        predictions = body["predictions"]
        errors = body["errors"]
    except (ProtocolError, KeyError, TypeError) as exc:
        why = f"unusable answer: {exc}"
        return unreachable_batch(transactions, Attempt(None, attempt.attempts, why), policy)
    wanted = {t.transaction_id for t in transactions}
    checks: dict[str, FraudCheck] = {}
    item_errors: list[ItemError] = []
    for item in predictions:
        try:
            check = parse_check(item, "model", attempt.attempts)
        except ProtocolError:
            continue  # its transaction falls to the policy below
        if check.transaction_id in wanted:
            checks[check.transaction_id] = check
    for err in errors:
        tid = str(err.get("transaction_id", ""))
        status = int(err.get("status", 0))
        if status == 503 and isinstance(err.get("answer"), dict):
            try:
                checks[tid] = _one(err["answer"], 503, tid, attempt.attempts)
                continue
            except ProtocolError:
                pass
        if 400 <= status < 500:
            item_errors.append(ItemError(int(err.get("index", -1)), tid, status, str(err.get("detail", ""))))
    refused = {e.transaction_id for e in item_errors}
    ordered: list[FraudCheck] = []
    for t in transactions:
        if t.transaction_id in checks:
            ordered.append(checks[t.transaction_id])
        elif t.transaction_id not in refused:  # answered by neither list: never silently approved
            ordered.append(_fallback(t.transaction_id, policy, "no answer for it", attempt.attempts))
    return BatchResult(checks=tuple(ordered), errors=tuple(item_errors))
