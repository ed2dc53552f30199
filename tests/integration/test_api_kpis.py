"""`GET /api/v1/metrics`: business KPIs from the stored decisions, behind a `metrics`-scope API key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from scoring_fixtures import (
    ladder_booster,
    make_settings,
    register_model,
    request_body,
    running_api,
)
from sqlalchemy import Engine

from ticketguard.kit.db import make_engine
from ticketguard.security.clients import create_client
from ticketguard.views import refresh_views

PREDICT = "/api/v1/ml/predict/fraud"
KPIS = "/api/v1/metrics"


@pytest.fixture
def engine_and_settings(db_url: str, tmp_path: Path) -> Iterator[tuple[Engine, dict[str, object]]]:
    engine = make_engine(db_url)
    yield engine, {"db_url": db_url, "tmp": tmp_path}
    engine.dispose()


def test_kpis_count_the_answers_of_the_last_hour(
    engine_and_settings: tuple[Engine, dict[str, object]],
) -> None:
    engine, ctx = engine_and_settings
    settings = make_settings(str(ctx["db_url"]), Path(str(ctx["tmp"])))
    register_model(engine, settings.resolved_model_dir, "ladder-k", ladder_booster(), promote=True)
    with running_api(settings) as base, httpx.Client(base_url=base, timeout=10) as client:
        empty = client.get(KPIS)
        assert empty.status_code == 200, empty.text  # auth is off in the embedded default
        assert empty.json()["last_hour"]["scored"] == 0
        assert empty.json()["last_hour"]["block_rate"] is None

        decisions = []
        for _ in range(6):
            r = client.post(PREDICT, json=request_body())
            assert r.status_code == 200, r.text
            decisions.append(r.json()["decision"])
        refresh_views(engine, ("kpi_hourly",))
        body = client.get(KPIS).json()

    hour = body["last_hour"]
    assert hour["scored"] == 6
    assert sum(hour["decisions"].values()) == 6
    for decision in set(decisions):
        assert hour["decisions"][decision] == decisions.count(decision)
    assert hour["block_rate"] == decisions.count("BLOCKED") / 6
    assert 0.0 <= hour["mean_fraud_score"] <= 1.0
    assert hour["mean_latency_ms"] is None or hour["mean_latency_ms"] > 0
    assert body["last_24h"]["scored"] == 6
    assert body["model_version"] == "ladder-k"
    assert datetime.fromisoformat(body["generated_at"]) <= datetime.now(UTC)
    assert body["kpi_hourly"], "kpi_hourly was refreshed with this hour's transactions"
    assert body["kpi_hourly"][0]["total_transactions"] >= 6


@pytest.mark.postgres
def test_kpis_need_a_metrics_key_when_auth_is_on(postgres_url: str, tmp_path: Path) -> None:
    engine = make_engine(postgres_url)
    pepper = "p" * 40
    settings = make_settings(postgres_url, tmp_path, jwt_secret="s" * 40, security_pepper=pepper)
    register_model(engine, settings.resolved_model_dir, "ladder-k2", ladder_booster(), promote=True)
    with engine.begin() as conn:
        _, key = create_client(
            conn, name="bi", scopes="metrics", actor="t", pepper=pepper.encode(), now=datetime.now(UTC)
        )
    try:
        with running_api(settings) as base, httpx.Client(base_url=base, timeout=10) as client:
            assert client.get(KPIS).status_code == 401
            r = client.get(KPIS, headers={"X-API-Key": key})
            assert r.status_code == 200, r.text
            assert r.json()["model_version"] == "ladder-k2"
    finally:
        engine.dispose()
