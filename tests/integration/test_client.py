"""`ticketguard.client` against a real scoring API (uvicorn, real database), and against local receivers for
what a healthy API will not do on demand (lose an answer, hang)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import pytest
from client_fixtures import Receiver, ticketguard_api
from scoring_fixtures import free_port, txn_id, wallet
from sqlalchemy import func, select

from ticketguard import tables
from ticketguard.client import (
    AsyncTicketguardClient,
    FailPolicy,
    IdempotencyConflict,
    RequestRejected,
    RetryPolicy,
    TicketguardClient,
    TicketguardUnavailable,
    Transaction,
)
from ticketguard.kit.db import make_engine

FAST = RetryPolicy(budget_s=2.0, attempt_timeout_s=0.5, connect_timeout_s=0.2, max_attempts=3, backoff_s=0.01)


def purchase(**overrides: object) -> Transaction:
    fields: dict[str, object] = {
        "transaction_id": txn_id("c"),
        "wallet_address": wallet(),
        "ticket_id": "evt_001-000001",
        "price_paid": Decimal("50.00"),
        "event_id": "evt_001",
    }
    fields.update(overrides)
    return Transaction(**fields)  # type: ignore[arg-type]


def stored(database_url: str, transaction_id: str) -> tuple[int, int]:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        predictions = conn.execute(
            select(func.count()).where(tables.fraud_predictions.c.transaction_id == transaction_id)
        ).scalar_one()
        audits = conn.execute(
            select(func.count()).where(tables.scoring_audit.c.transaction_id == transaction_id)
        ).scalar_one()
    engine.dispose()
    return predictions, audits


def test_predict_batch_and_model_info_return_typed_results(db_url: str, tmp_path: Path) -> None:
    with ticketguard_api(db_url, tmp_path) as base, TicketguardClient(base, retry=FAST) as guard:
        first = purchase(ip_address="198.51.100.7")
        check = guard.predict(first)
        assert (check.decision, check.source, check.attempts) == ("MANUAL_REVIEW", "model", 1)
        assert check.transaction_id == first.transaction_id
        assert check.fraud_score is not None
        assert 0.65 < check.fraud_score <= 0.85
        assert check.model_version == "ladder-1"
        assert check.top_features
        assert check.reasons
        assert not check.degraded
        assert guard.predict(first) == check  # the same id again: the stored answer
        with pytest.raises(IdempotencyConflict, match="409"):
            guard.predict(purchase(transaction_id=first.transaction_id, price_paid=Decimal("51")))

        again = purchase(wallet_address=first.wallet_address, ip_address="198.51.100.7")
        resale = purchase(wallet_address=first.wallet_address, ip_address="198.51.100.7", is_resale=True)
        conflicting = purchase(transaction_id=first.transaction_id, price_paid=Decimal("52"))
        result = guard.predict_batch([again, conflicting])
        assert [(c.transaction_id, c.decision) for c in result.checks] == [(again.transaction_id, "APPROVED")]
        assert [(e.transaction_id, e.status) for e in result.errors] == [(first.transaction_id, 409)]
        assert guard.predict(resale).decision == "REQUIRE_2FA"
        assert guard.predict(purchase(is_resale=True, ip_address="203.0.113.9")).decision == "BLOCKED"

        info = guard.model_info()
        assert info.model_version == "ladder-1"
        assert "is_resale" in info.feature_names
        assert info.thresholds == {"block": 0.85, "review": 0.65, "2fa": 0.40}
        waiting = guard.review_outcome(first.transaction_id)  # held for review, nobody decided yet
        assert waiting is not None
        assert (waiting.status, waiting.outcome, waiting.decided_at) == ("pending", None, None)
        assert guard.review_outcome("never-scored") is None  # 404: ticketguard has no such transaction
    assert stored(db_url, first.transaction_id) == (1, 1)


def test_invalid_request_is_raised_naming_the_field_not_retried(sqlite_url: str, tmp_path: Path) -> None:
    with (
        ticketguard_api(sqlite_url, tmp_path) as base,
        Receiver(base) as receiver,
        TicketguardClient(receiver.url, retry=FAST) as guard,
    ):
        with pytest.raises(RequestRejected, match="wallet_address") as info:
            guard.predict(purchase(wallet_address="not-a-wallet"))
        assert receiver.requests == 1
    assert info.value.status == 422


def test_a_lost_answer_is_retried_with_the_same_id_and_stored_once(sqlite_url: str, tmp_path: Path) -> None:
    with (
        ticketguard_api(sqlite_url, tmp_path) as base,
        Receiver(base, drop_first=1) as receiver,
        TicketguardClient(receiver.url, retry=FAST) as guard,
    ):
        txn = purchase()
        check = guard.predict(txn)
    # The first request was scored and stored upstream, its answer lost; the retry got the stored answer.
    assert receiver.requests == 2
    assert (check.source, check.decision, check.attempts) == ("model", "APPROVED", 2)
    assert stored(sqlite_url, txn.transaction_id) == (1, 1)


def test_unreachable_ticketguard_gets_the_fail_policy_never_approved() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with TicketguardClient(closed, retry=FAST) as guard:
        held = guard.predict(purchase())
    assert (held.decision, held.source, held.degraded, held.fraud_score) == (
        "MANUAL_REVIEW",
        "client_policy",
        True,
        None,
    )
    assert held.attempts == FAST.max_attempts  # a refused connection is retried: nothing was sent
    assert "connection refused" in held.reasons[0]
    with TicketguardClient(closed, retry=FAST, fail_policy=FailPolicy("BLOCKED")) as guard:
        assert guard.predict(purchase()).decision == "BLOCKED"
        batch = guard.predict_batch([purchase(), purchase()])
        assert [c.decision for c in batch.checks] == ["BLOCKED", "BLOCKED"]
    with TicketguardClient(closed, retry=FAST, fail_policy=FailPolicy(None)) as guard:
        with pytest.raises(TicketguardUnavailable):
            guard.predict(purchase())
        with pytest.raises(TicketguardUnavailable):
            guard.model_info()
    with pytest.raises(ValueError, match="never approves"):
        FailPolicy("APPROVED")  # type: ignore[arg-type]


def test_a_hanging_server_costs_at_most_the_budget() -> None:
    budget = RetryPolicy(budget_s=1.0, attempt_timeout_s=0.4, connect_timeout_s=0.2, backoff_s=0.01)
    with Receiver(hang=True) as receiver, TicketguardClient(receiver.url, retry=budget) as guard:
        started = time.monotonic()
        held = guard.predict(purchase())
        elapsed = time.monotonic() - started
    assert (held.decision, held.source) == ("MANUAL_REVIEW", "client_policy")
    assert "timeout" in held.degraded_reasons[0]
    assert receiver.requests >= 2  # retried within the budget (0.4 + 0.4 + what is left)
    assert elapsed < budget.budget_s + 0.5  # bounded by the budget, not by the server (which never answers)


def test_no_live_model_503_is_retried_then_the_fail_policy(sqlite_url: str, tmp_path: Path) -> None:
    with (
        ticketguard_api(sqlite_url, tmp_path, model=False) as base,
        Receiver(base) as receiver,
        TicketguardClient(receiver.url, retry=FAST) as guard,
    ):
        held = guard.predict(purchase())
    assert receiver.requests == FAST.max_attempts
    assert (held.decision, held.source, held.degraded_reasons) == (
        "MANUAL_REVIEW",
        "client_policy",
        ("HTTP 503",),
    )


def test_async_client_scores_and_falls_back(sqlite_url: str, tmp_path: Path) -> None:
    async def run(base: str) -> tuple[str, str, str]:
        async with AsyncTicketguardClient(base, retry=FAST) as guard:
            checks = await asyncio.gather(*(guard.predict(purchase()) for _ in range(8)))
            info = await guard.model_info()
        async with AsyncTicketguardClient(f"http://127.0.0.1:{free_port()}", retry=FAST) as down:
            held = await down.predict(purchase())
        assert {c.source for c in checks} == {"model"}
        return checks[0].decision, info.model_version, held.decision

    with ticketguard_api(sqlite_url, tmp_path) as base:
        assert asyncio.run(run(base)) == ("APPROVED", "ladder-1", "MANUAL_REVIEW")
