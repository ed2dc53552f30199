"""Online features (SQL against the stores) equal offline features (arrays over the history), on SQLite and
PostgreSQL: on 1,000 simulated transactions, and on a small collision-heavy history with a blacklist."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select

from ticketguard import tables
from ticketguard.features.offline import build_features
from ticketguard.features.online import OnlineFeatures, SqlFeatureSource
from ticketguard.features.repository import TransactionFacts
from ticketguard.features.service import refresh_graph_snapshot, snapshot_days
from ticketguard.features.specs import FEATURE_NAMES, FeatureParams
from ticketguard.history import History, write_history
from ticketguard.kit.db import make_engine
from ticketguard.simulate import SimulationConfig, simulate


def _unit_helpers() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "unit" / "test_features_offline.py"
    spec = importlib.util.spec_from_file_location("features_offline_helpers", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_parity(
    db_url: str,
    history: History,
    rows: pd.DataFrame,
    params: FeatureParams,
    blacklist: pd.DataFrame | None = None,
) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            write_history(conn, history)
            if blacklist is not None:
                records = [
                    {k: (None if v is None or v is pd.NaT else v) for k, v in r.items()}
                    for r in blacklist.astype(object).to_dict("records")
                ]
                conn.execute(insert(tables.blacklisted_wallets), records)
        for day in snapshot_days(rows["timestamp"]):
            refresh_graph_snapshot(engine, params, day=day, keep_days=10_000)
        offline = build_features(history, params, blacklist=blacklist).loc[rows.index]
        online_features = OnlineFeatures(SqlFeatureSource(engine, params), params)
        online = pd.DataFrame(
            [online_features.compute(TransactionFacts.from_mapping(r)) for r in rows.to_dict("records")],
            index=rows.index,
        )[list(FEATURE_NAMES)]
    finally:
        engine.dispose()
    close = np.isclose(online.to_numpy(), offline.to_numpy(), rtol=1e-7, atol=1e-6)
    mismatched = {
        name: (online[name][~close[:, j]].head(3).tolist(), offline[name][~close[:, j]].head(3).tolist())
        for j, name in enumerate(FEATURE_NAMES)
        if not close[:, j].all()
    }
    assert not mismatched, f"online != offline (online, offline): {mismatched}"
    # The comparison means something only if the features vary.
    assert (offline.nunique() > 1).sum() >= len(FEATURE_NAMES) - 3


def test_online_equals_offline_on_a_thousand_simulated_transactions(db_url: str) -> None:
    history = simulate(SimulationConfig(transactions=4000, seed=11))
    rows = history.transactions.sample(1000, random_state=7).sort_index()
    _assert_parity(db_url, history, rows, FeatureParams())


def test_online_equals_offline_with_ties_nulls_and_a_blacklist(db_url: str) -> None:
    helpers = _unit_helpers()
    history = helpers.random_history(5, n=400)
    wallets = history.transactions["seller_address"].dropna().unique()[:3]
    t0 = history.transactions["timestamp"].min().to_pydatetime()
    blacklist = pd.DataFrame(
        {
            "wallet_address": wallets,
            "reason": "test",
            "timestamp": [t0 + timedelta(days=d) for d in (1, 2, 3)],
            "expires_at": [None, t0 + timedelta(days=6), None],
        }
    )
    blacklist["timestamp"] = pd.to_datetime(blacklist["timestamp"], utc=True)
    blacklist["expires_at"] = pd.to_datetime(blacklist["expires_at"], utc=True)
    _assert_parity(db_url, history, history.transactions, helpers.LEAK_PARAMS, blacklist)


def test_graph_snapshot_job_replaces_the_day_and_prunes_old_days(engine) -> None:  # type: ignore[no-untyped-def]
    helpers = _unit_helpers()
    history = helpers.random_history(6, n=300)
    with engine.begin() as conn:
        write_history(conn, history)
    params = FeatureParams()
    first = datetime(2026, 1, 8, tzinfo=UTC)
    for d in range(4):
        result = refresh_graph_snapshot(engine, params, day=first + timedelta(days=d), keep_days=2)
    again = refresh_graph_snapshot(engine, params, day=first + timedelta(days=3, hours=5), keep_days=2)
    assert again["wallets"] == result["wallets"] > 0
    with engine.connect() as conn:
        kept = conn.execute(
            select(tables.wallet_graph_snapshots.c.snapshot_at).order_by("snapshot_at")
        ).scalars()
        assert [k.day for k in kept] == [9, 10, 11]
        per_day = conn.execute(
            select(func.count())
            .select_from(tables.wallet_graph_scores)
            .where(tables.wallet_graph_scores.c.snapshot_at == first + timedelta(days=3))
        ).scalar()
        assert per_day == result["wallets"]
