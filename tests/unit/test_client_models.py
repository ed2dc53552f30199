"""ticketguard.client's values and its reading of answers: pure, no server."""

from __future__ import annotations

import random
from datetime import datetime
from decimal import Decimal

import httpx
import pytest

from ticketguard.client import FailPolicy, RetryPolicy, Transaction
from ticketguard.client.models import ProtocolError, parse_check
from ticketguard.client.protocol import Attempt, check_result
from ticketguard.client.retry import Budget

ANSWER = {
    "transaction_id": "t1",
    "fraud_score": 0.2,
    "decision": "APPROVED",
    "confidence": 0.8,
    "top_features": [{"feature": "is_resale", "contribution": -0.3, "value": 0.0}],
    "reasons": ["r"],
    "model_version": "m1",
    "degraded": False,
    "degraded_reasons": [],
}


def answered(status: int, body: object) -> Attempt:
    return Attempt(httpx.Response(status, json=body), attempts=1, why="")


def test_transaction_refuses_bad_fields_by_name_and_sends_exact_money() -> None:
    with pytest.raises(ValueError, match="price_paid must be >= 0"):
        Transaction("t", "0xabc", "k", Decimal("-0.01"))
    assert Transaction("t", "0xabc", "k", Decimal("0")).to_json()["price_paid"] == "0"  # a free ticket
    with pytest.raises(ValueError, match="not float"):
        Transaction("t", "0xabc", "k", 50.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="transaction_id must be a non-empty string"):
        Transaction("", "0xabc", "k", 5)
    with pytest.raises(ValueError, match="timestamp must carry a timezone"):
        Transaction("t", "0xabc", "k", 5, timestamp=datetime(2026, 1, 1))
    body = Transaction("t", "0xabc", "k", Decimal("0.10000000001")).to_json()
    assert body["price_paid"] == "0.10000000001"
    assert "event_id" not in body


def test_fail_policy_never_approves() -> None:
    assert FailPolicy().decision == "MANUAL_REVIEW"
    for bad in ("APPROVED", "approve", ""):
        with pytest.raises(ValueError, match="never approves"):
            FailPolicy(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        {**ANSWER, "decision": "ALLOW"},
        {**ANSWER, "fraud_score": 1.5},
        {**ANSWER, "fraud_score": None},
        {**ANSWER, "fraud_score": "0.1"},
        ["not", "an", "object"],
        {**ANSWER, "transaction_id": "someone-else"},
    ],
)
def test_an_unusable_200_falls_to_the_policy_never_to_approved(body: object) -> None:
    check = check_result(answered(200, body), "t1", FailPolicy())
    assert (check.decision, check.source) == ("MANUAL_REVIEW", "client_policy")
    assert "unusable answer" in check.degraded_reasons[0]


def test_a_503_policy_answer_is_the_servers_decision() -> None:
    body = {**ANSWER, "fraud_score": None, "decision": "MANUAL_REVIEW", "degraded": True}
    check = check_result(answered(503, body), "t1", FailPolicy("BLOCKED"))
    assert (check.decision, check.source, check.degraded) == ("MANUAL_REVIEW", "server_policy", True)
    check = check_result(answered(503, {"error": "model_unavailable"}), "t1", FailPolicy("BLOCKED"))
    assert (check.decision, check.source) == ("BLOCKED", "client_policy")


def test_parse_check_reads_a_scored_answer() -> None:
    check = parse_check(ANSWER, "model", 2)
    assert (check.decision, check.fraud_score, check.attempts, check.approved) == ("APPROVED", 0.2, 2, True)
    assert check.top_features[0].feature == "is_resale"
    with pytest.raises(ProtocolError):
        parse_check({**ANSWER, "confidence": float("nan")}, "model", 1)


def test_budget_stops_retrying_when_retry_after_or_attempts_exceed_it() -> None:
    rng = random.Random(1)
    budget = Budget(RetryPolicy(budget_s=1.0, max_attempts=3))
    budget.attempts = 1
    assert budget.wait_before_retry(None, rng) is not None
    assert budget.wait_before_retry("5", rng) is None  # the server asks for longer than what is left
    budget.attempts = 3
    assert budget.wait_before_retry(None, rng) is None
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
