"""Factories for review-queue tests: a scored transaction (its `transactions` and `fraud_predictions` rows)
written the way the scoring API's group commit writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert

from ticketguard import tables

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
WALLET = "0x" + "ab" * 20


def scored(
    engine: Engine,
    transaction_id: str,
    *,
    decision: str = "MANUAL_REVIEW",
    at: datetime = T0,
    score: float = 0.7,
    wallet: str = WALLET,
    event_id: str = "ev-1",
    price: str = "120.00",
    **transaction: Any,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(tables.transactions).values(
                transaction_id=transaction_id,
                wallet_address=wallet,
                event_id=event_id,
                price_paid=Decimal(price),
                timestamp=at,
                source="api",
                **transaction,
            )
        )
        conn.execute(
            insert(tables.fraud_predictions).values(
                transaction_id=transaction_id,
                fraud_score=score,
                decision=decision,
                features={"is_resale": 0.0, "new_ip_for_wallet": 1.0},
                model_version="v-test",
                timestamp=at + timedelta(milliseconds=20),
                confidence=0.5,
                top_features=[{"feature": "new_ip_for_wallet", "contribution": 1.2, "value": 1.0}],
                reasons=["first purchase from this IP (raises risk, +1.20)"],
                degraded=False,
                request_hash="0" * 64,
                latency_ms=3.0,
            )
        )
