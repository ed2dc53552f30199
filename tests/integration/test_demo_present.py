"""Issue 11, finding 6: the demo lived in the past. The simulator's default window ended months before
today, so the demo's answers were scored with no recent history (`wallet_age_days` 0,
`event_popularity_score` 0). Now the default window ends now and `serve api --example` prints a request by
an established wallet for an event on sale, whose answer carries features that mean something."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from scoring_fixtures import ladder_booster, make_settings, register_model, running_api
from sqlalchemy import func, select
from typer.testing import CliRunner

from ticketguard import tables
from ticketguard.cli import app
from ticketguard.kit.db import make_engine


def test_demo_lives_in_the_present(sqlite_url: str, tmp_path: Path) -> None:
    before = datetime.now(UTC)
    result = CliRunner().invoke(
        app, ["simulate", "-n", "6000", "--seed", "5", "--days", "30"], env={"DATABASE_URL": sqlite_url}
    )
    assert result.exit_code == 0, result.output
    engine = make_engine(sqlite_url)
    x = tables.transactions
    with engine.connect() as conn:
        first, last = conn.execute(select(func.min(x.c.timestamp), func.max(x.c.timestamp))).one()
    now = datetime.now(UTC)
    assert last <= now  # nothing from the future
    assert last > before - timedelta(hours=6)  # the history runs up to the present
    assert first >= before - timedelta(days=30, seconds=1)

    from ticketguard.api.cli import example_commands
    from ticketguard.api.example import example_request

    body = example_request(engine, now)
    assert body is not None
    assert body["transaction_id"] in example_commands("127.0.0.1", 5001, body)

    settings = make_settings(sqlite_url, tmp_path)
    register_model(engine, settings.resolved_model_dir, "m1", ladder_booster(), promote=True)
    with running_api(settings) as base, httpx.Client(base_url=base, timeout=20) as client:
        r = client.post("/api/v1/ml/predict/fraud", json=body)
        assert r.status_code == 200, r.text
    with engine.connect() as conn:
        features = conn.execute(
            select(tables.fraud_predictions.c.features).where(
                tables.fraud_predictions.c.transaction_id == body["transaction_id"]
            )
        ).scalar_one()
    engine.dispose()
    assert features["wallet_age_days"] >= 14  # an established wallet of the history
    assert features["event_popularity_score"] > 0  # an event on sale now, with sales
    assert features["txn_velocity_24h"] + features["seconds_since_last_txn"] > 0
