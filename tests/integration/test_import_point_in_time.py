"""Issue 13 (leak), through the database: an imported event whose facts were derived from the file's sales
is stored with facts_derived, survives the round trip, and the SQL and in-memory feature paths treat its
facts as unknown exactly as the offline one does (parity on SQLite and PostgreSQL)."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select

from ticketguard import tables
from ticketguard.features.offline import build_features
from ticketguard.features.online import OnlineFeatures, SqlFeatureSource
from ticketguard.features.repository import TransactionFacts
from ticketguard.features.specs import FEATURE_NAMES
from ticketguard.history import read_history
from ticketguard.ingest import import_file
from ticketguard.kit.db import make_engine
from ticketguard.scoring.online import read_events

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _leakage_helpers():  # type: ignore[no-untyped-def]
    path = Path(__file__).resolve().parent.parent / "unit" / "test_import_leakage.py"
    spec = importlib.util.spec_from_file_location("import_leakage_helpers", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_derived_event_facts_are_unknown_to_every_feature_path(db_url: str, tmp_path: Path) -> None:
    helpers = _leakage_helpers()
    rows = helpers.sales(40)
    described = helpers.sales(10, offset=40).assign(
        event_id="ev-c", event_capacity="300", event_face_value="45", event_starts_at="2026-04-01T20:00:00Z"
    )
    path = tmp_path / "h.csv"
    pd.concat([rows, described]).to_csv(path, index=False)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            import_file(conn, path, now=NOW)
        with engine.connect() as conn:
            flags = dict(conn.execute(select(tables.events.c.event_id, tables.events.c.facts_derived)).all())
            history = read_history(conn)
            known = read_events(conn)
        assert flags == {"ev-a": True, "ev-b": True, "ev-c": False}
        assert set(known) == {"ev-c"}  # the in-memory state gets no facts for derived events
        assert history.events.set_index("event_id")["facts_derived"].to_dict() == flags
        offline = build_features(history, helpers.PARAMS)
        online_features = OnlineFeatures(SqlFeatureSource(engine, helpers.PARAMS), helpers.PARAMS)
        online = pd.DataFrame(
            [
                online_features.compute(TransactionFacts.from_mapping(r))
                for r in history.transactions.to_dict("records")
            ]
        )[list(FEATURE_NAMES)]
    finally:
        engine.dispose()
    assert np.allclose(online.to_numpy(), offline.to_numpy(), rtol=1e-7, atol=1e-6)
    on_c = history.transactions["event_id"].eq("ev-c").to_numpy()
    assert (offline.loc[~on_c, "event_popularity_score"] == 0).all()
    assert (offline.loc[on_c, "event_popularity_score"] > 0).any()


def test_the_chain_replacing_derived_facts_makes_them_real(db_url: str, tmp_path: Path) -> None:
    from ticketguard.chain.repository import upsert_events

    helpers = _leakage_helpers()
    path = tmp_path / "h.csv"
    helpers.sales(6).to_csv(path, index=False)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            import_file(conn, path, now=NOW)
            upsert_events(
                conn,
                [
                    {
                        "event_id": "ev-a",
                        "name": "ev-a",
                        "organizer_id": "0x" + "1" * 40,
                        "capacity": 900,
                        "face_value": "55.00000000",
                        "on_sale_at": datetime(2026, 1, 1, tzinfo=UTC),
                        "starts_at": datetime(2026, 5, 1, tzinfo=UTC),
                    }
                ],
            )
        with engine.connect() as conn:
            flags = dict(conn.execute(select(tables.events.c.event_id, tables.events.c.facts_derived)).all())
            known = read_events(conn)
    finally:
        engine.dispose()
    assert flags == {"ev-a": False, "ev-b": True}
    assert known["ev-a"].capacity == 900
