"""The scoring API over real HTTP (uvicorn) on SQLite and PostgreSQL: contract, validation, persistence,
idempotency (also concurrent), list overrides, explanations, model info, health and metrics."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from scoring_fixtures import (
    ladder_booster,
    make_settings,
    register_model,
    request_body,
    running_api,
    wallet,
)
from sqlalchemy import Engine, func, insert, select
from waiting import wait_until

from ticketguard import tables
from ticketguard.features.specs import FEATURE_NAMES
from ticketguard.kit.db import make_engine

PREDICT = "/api/v1/ml/predict/fraud"
FIELDS = {
    "transaction_id",
    "fraud_score",
    "decision",
    "confidence",
    "top_features",
    "reasons",
    "model_version",
    "degraded",
}


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[tuple[httpx.Client, Engine]]:
    engine = make_engine(db_url)
    settings = make_settings(db_url, tmp_path, scoring_top_features=32, feature_state_refresh_seconds=0.5)
    register_model(engine, settings.resolved_model_dir, "ladder-1", ladder_booster(), promote=True)
    with running_api(settings) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield client, engine
    engine.dispose()


def counts(engine: Engine, transaction_id: str) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(
                select(func.count()).select_from(t).where(t.c.transaction_id == transaction_id)
            ).scalar()
            for t in (tables.transactions, tables.fraud_predictions, tables.scoring_audit)
        )


def test_smoke_request_from_the_guide_is_answered_and_stored(api: tuple[httpx.Client, Engine]) -> None:
    client, engine = api
    guide = {
        "transaction_id": "test_001",
        "wallet_address": "0x742d35Cc6634C0532925a3b844Bc9e7595f0bEb",  # 39 hex digits, as in the guide
        "ticket_id": "evt_001",
        "price_paid": 50.00,
    }
    r = client.post(PREDICT, json=guide)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body.keys() >= FIELDS
    assert body["decision"] == "APPROVED"
    assert 0 <= body["fraud_score"] < 0.4
    assert body["model_version"] == "ladder-1"
    assert body["degraded"] is False
    assert counts(engine, "test_001") == (1, 1, 1)
    with engine.connect() as conn:
        txn = conn.execute(
            select(tables.transactions).where(tables.transactions.c.transaction_id == "test_001")
        ).one()
        pred = conn.execute(
            select(tables.fraud_predictions).where(tables.fraud_predictions.c.transaction_id == "test_001")
        ).one()
    # Stored in the one canonical spelling: 40 digits, left-padded, lower case (docs/security.md).
    assert txn.wallet_address == "0x0742d35cc6634c0532925a3b844bc9e7595f0beb"
    assert txn.event_id == "unknown"
    assert txn.source == "api"
    assert set(pred.features) >= {"txn_velocity_1h", "is_resale"}
    assert pred.request_hash


def test_a_free_ticket_price_0_is_scored_and_stored(api: tuple[httpx.Client, Engine]) -> None:
    # Comps and giveaways are real sales at price 0 (issue 13); features must not divide by it.
    client, engine = api
    w = wallet()
    for price in (0, "0.00", 0):
        r = client.post(PREDICT, json=request_body(wallet_address=w, price_paid=price))
        assert r.status_code == 200, r.text
        assert math.isfinite(r.json()["fraud_score"])
    with engine.connect() as conn:
        stored = conn.execute(
            select(tables.transactions.c.price_paid, tables.fraud_predictions.c.features)
            .join(
                tables.fraud_predictions,
                tables.fraud_predictions.c.transaction_id == tables.transactions.c.transaction_id,
            )
            .where(tables.transactions.c.wallet_address == w)
        ).all()
    assert len(stored) == 3
    assert all(row.price_paid == 0 for row in stored)
    assert all(math.isfinite(float(v)) for row in stored for v in row.features.values())
    assert client.post(PREDICT, json=request_body(price_paid=-0.01)).status_code == 422


@pytest.mark.parametrize(
    ("overrides", "decision"),
    [
        ({}, "APPROVED"),
        ({"is_resale": True}, "REQUIRE_2FA"),
        ({"ip_address": "203.0.113.9"}, "MANUAL_REVIEW"),
        ({"is_resale": True, "ip_address": "203.0.113.9"}, "BLOCKED"),
    ],
)
def test_every_rung_of_the_ladder(
    api: tuple[httpx.Client, Engine], overrides: dict[str, Any], decision: str
) -> None:
    client, _ = api
    if overrides.get("is_resale"):
        overrides["seller_address"] = wallet()
    body = client.post(PREDICT, json=request_body(**overrides)).json()
    assert body["decision"] == decision
    # Non-approved answers carry exact TreeSHAP, approved ones Saabas; both add up to the margin.
    assert body["explanation"] == ("approximate" if decision == "APPROVED" else "exact")
    margin = math.log(body["fraud_score"] / (1 - body["fraud_score"]))
    total = body["bias"] + sum(f["contribution"] for f in body["top_features"])
    assert total == pytest.approx(margin, abs=1e-3)
    assert body["reasons"]
    assert all(isinstance(r, str) for r in body["reasons"])


def test_features_come_from_server_state_and_see_the_previous_answer(
    api: tuple[httpx.Client, Engine],
) -> None:
    client, _ = api
    w = wallet()
    first = client.post(PREDICT, json=request_body(wallet_address=w, ip_address="198.51.100.1")).json()
    second = client.post(PREDICT, json=request_body(wallet_address=w, ip_address="198.51.100.1")).json()
    assert first["decision"] == "MANUAL_REVIEW"  # new IP for a new wallet
    # The first transaction is stored before its answer: the IP is no longer new to this wallet.
    values = {f["feature"]: f["value"] for f in second["top_features"]}
    assert values["new_ip_for_wallet"] == 0.0
    assert second["decision"] == "APPROVED"


def test_blacklisted_wallet_is_blocked_and_vip_skips_review(api: tuple[httpx.Client, Engine]) -> None:
    client, engine = api
    bad, vip = wallet(), wallet()
    past = datetime.now(UTC) - timedelta(minutes=1)
    with engine.begin() as conn:
        conn.execute(
            insert(tables.blacklisted_wallets).values(wallet_address=bad, reason="test", timestamp=past)
        )
        conn.execute(
            insert(tables.allowlisted_wallets).values(wallet_address=vip, reason="test", timestamp=past)
        )
    # The scoring path reads the lists from memory, re-read every FEATURE_STATE_REFRESH_SECONDS (0.5 here;
    # on PostgreSQL the commit's NOTIFY brings them sooner). Both lists were committed together: once the
    # blacklist is seen, so is the allow list.
    answers: list[dict[str, Any]] = []

    def blocked_seen() -> bool:
        answers.append(client.post(PREDICT, json=request_body(wallet_address=bad)).json())
        return bool(answers[-1]["decision"] == "BLOCKED")

    wait_until(blocked_seen, interval=0.1, what="the blacklist reached the scoring path")
    blocked = answers[-1]
    assert blocked["confidence"] == 1.0
    assert blocked["reasons"][0] == "wallet is on the blacklist"
    review = client.post(PREDICT, json=request_body(wallet_address=vip, ip_address="203.0.113.5")).json()
    assert review["decision"] == "APPROVED"
    assert review["fraud_score"] > 0.65  # the score is still reported as the model gave it
    assert any("allow list" in r for r in review["reasons"])


def test_idempotent_replay_and_conflict(api: tuple[httpx.Client, Engine]) -> None:
    client, engine = api
    body = request_body(timestamp=datetime.now(UTC).isoformat())
    first = client.post(PREDICT, json=body)
    retry = client.post(
        PREDICT, json=dict(body, price_paid="50.000", timestamp=datetime.now(UTC).isoformat())
    )
    assert retry.status_code == 200
    assert retry.json() == first.json()
    conflict = client.post(PREDICT, json=dict(body, price_paid=51))
    assert conflict.status_code == 409
    assert body["transaction_id"] in conflict.json()["detail"]
    assert counts(engine, body["transaction_id"]) == (1, 1, 1)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"is_resale": True, "ip_address": "203.0.113.9"}],
    ids=["approved-approximate", "blocked-exact"],
)
def test_replay_answers_byte_for_byte_the_stored_answer(
    api: tuple[httpx.Client, Engine], overrides: dict[str, Any]
) -> None:
    """Issue 11, finding 8: a replay's `top_features` came back with its keys in another order (JSONB sorts
    them). The docs claim byte-for-byte; now it holds, on SQLite and PostgreSQL, replayed at the write
    and by the read path, with every contribution in the answer (SCORING_TOP_FEATURES=32)."""
    client, _ = api
    if overrides.get("is_resale"):
        overrides["seller_address"] = wallet()
    body = request_body(**overrides)
    first = client.post(PREDICT, json=body)
    assert first.status_code == 200
    assert len(first.json()["top_features"]) > 1
    assert list(first.json()["top_features"][0]) == ["feature", "contribution", "value"]
    for _ in range(2):
        again = client.post(PREDICT, json=body)
        assert again.status_code == 200
        assert again.content == first.content


def test_concurrent_duplicates_store_once(api: tuple[httpx.Client, Engine]) -> None:
    client, engine = api
    client.post(PREDICT, json=request_body())  # warm up: the burst below should race, not wait on start-up
    same = request_body()
    other = dict(same, price_paid=99)
    bodies = [same] * 12 + [other] * 4
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda b: client.post(PREDICT, json=b), bodies))
    for r in responses:
        # A waiter past its deadline gets the failure policy's answer, never a second decision.
        if r.status_code == 503:
            assert r.json()["decision"] == "MANUAL_REVIEW"
            assert r.json()["degraded"] is True
        else:
            assert r.status_code in (200, 409), r.text
    winners = {r.json()["fraud_score"] for r in responses if r.status_code == 200}
    assert len(winners) == 1  # every 200 is the one stored answer
    ok_same = [r for r, b in zip(responses, bodies, strict=True) if b is same and r.status_code == 200]
    ok_other = [r for r, b in zip(responses, bodies, strict=True) if b is other and r.status_code == 200]
    assert not (ok_same and ok_other)  # the losing payload never gets a 200
    assert counts(engine, same["transaction_id"]) == (1, 1, 1)


def test_transactions_stored_by_the_chain_etl_get_their_answer(api: tuple[httpx.Client, Engine]) -> None:
    """A transaction row already stored without an answer (the chain ETL saw it first) gets its prediction
    and audit row when the backend asks — also inside a group-commit batch with fresh requests — and a
    retry replays that answer."""
    client, engine = api
    on_chain = [request_body() for _ in range(3)]
    with engine.begin() as conn:
        conn.execute(
            insert(tables.transactions),
            [
                {
                    "transaction_id": b["transaction_id"],
                    "wallet_address": b["wallet_address"],
                    "event_id": b["event_id"],
                    "ticket_id": b["ticket_id"],
                    "price_paid": str(b["price_paid"]),
                    "timestamp": datetime.now(UTC) - timedelta(seconds=5),
                    "source": "chain",
                }
                for b in on_chain
            ],
        )
    bodies = on_chain + [request_body() for _ in range(9)]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda b: client.post(PREDICT, json=b), bodies))
    assert [r.status_code for r in answers] == [200] * len(bodies), [r.text for r in answers]
    for body, first in zip(bodies, answers, strict=True):
        assert counts(engine, body["transaction_id"]) == (1, 1, 1)
        again = client.post(PREDICT, json=body)
        assert again.status_code == 200
        assert again.json() == first.json()


def test_batch_scores_each_and_reports_item_errors(api: tuple[httpx.Client, Engine]) -> None:
    client, engine = api
    stored = request_body()
    client.post(PREDICT, json=stored)
    items = [request_body() for _ in range(5)] + [dict(stored, price_paid=77)]
    r = client.post("/api/v1/ml/batch/predict", json={"transactions": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [p["transaction_id"] for p in body["predictions"]] == [i["transaction_id"] for i in items[:5]]
    assert body["errors"] == [
        {
            "index": 5,
            "transaction_id": stored["transaction_id"],
            "status": 409,
            "detail": body["errors"][0]["detail"],
            "answer": None,
        }
    ]
    for item in items[:5]:
        assert counts(engine, item["transaction_id"]) == (1, 1, 1)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price_paid": -5}, "price_paid"),
        ({"price_paid": "abc"}, "price_paid"),
        ({"wallet_address": "not-a-wallet"}, "wallet_address"),
        ({"transaction_id": ""}, "transaction_id"),
        ({"transaction_id": "x" * 65}, "transaction_id"),
        ({"ip_address": "999.1.1.1"}, "ip_address"),
        ({"latitude": 91}, "latitude"),
        ({"timestamp": "2026-01-01T00:00:00"}, "timestamp"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_validation_errors_name_the_field(
    api: tuple[httpx.Client, Engine], change: dict[str, Any], field: str
) -> None:
    client, engine = api
    body = request_body(**change)
    r = client.post(PREDICT, json=body)
    assert r.status_code == 422
    assert field in [d["field"] for d in r.json()["detail"]], r.text
    assert field in r.json()["message"]
    if isinstance(body.get("transaction_id"), str) and body["transaction_id"]:
        assert counts(engine, body["transaction_id"]) == (0, 0, 0)


def test_missing_field_clock_skew_and_batch_limits(api: tuple[httpx.Client, Engine]) -> None:
    client, _ = api
    body = request_body()
    del body["price_paid"]
    assert client.post(PREDICT, json=body).json()["detail"][0]["field"] == "price_paid"
    old = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    r = client.post(PREDICT, json=request_body(timestamp=old))
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "timestamp"
    r = client.post("/api/v1/ml/batch/predict", json={"transactions": [request_body() for _ in range(101)]})
    assert r.status_code == 422
    assert "at most 100" in r.json()["message"]
    dup = request_body()
    r = client.post("/api/v1/ml/batch/predict", json={"transactions": [dup, dup]})
    assert r.status_code == 422


def test_content_type_size_and_malformed_json(api: tuple[httpx.Client, Engine]) -> None:
    client, _ = api
    r = client.post(
        PREDICT, content=b"transaction_id=1", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 415
    assert "application/json" in r.json()["detail"]
    r = client.post(
        PREDICT, content=b"{" + b" " * 1_100_000 + b"}", headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    r = client.post(PREDICT, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_model_info_health_metrics_and_openapi(api: tuple[httpx.Client, Engine]) -> None:
    client, engine = api
    info = client.get("/api/v1/ml/model/info").json()
    assert info["model_version"] == "ladder-1"
    assert info["thresholds"] == {
        "block": 0.85,
        "review": 0.65,
        "2fa": 0.4,
    }
    assert info["feature_names"] == list(FEATURE_NAMES)  # the ladder model uses all of them
    health = client.get("/health").json()
    assert health["status"] == "healthy"
    assert health["model_version"] == "ladder-1"
    assert health["checks"]["database"] == "ok"
    assert health["checks"]["features"].startswith("memory: ready (")
    postgres = engine.dialect.name == "postgresql"
    expected = "notify: listening" if postgres else "periodic refresh"
    wait_until(
        lambda: client.get("/health").json()["checks"]["list_changes"] == expected,
        what=f"/health says list_changes: {expected}",
    )
    client.post(PREDICT, json=request_body())
    text = client.get("/metrics").text
    assert (
        'ticketguard_request_seconds_bucket{decision="APPROVED",le="0.05",method="POST",route="/api/v1/ml/predict/fraud"'
        in text.replace(',status="200"', "")
    )
    assert 'ticketguard_decisions_total{decision="APPROVED"' in text
    assert 'ticketguard_model_info{version="ladder-1"} 1.0' in text
    spec = client.get("/openapi.json").json()
    assert {
        "/api/v1/ml/predict/fraud",
        "/api/v1/ml/batch/predict",
        "/api/v1/ml/model/info",
        "/health",
    } <= set(spec["paths"])
