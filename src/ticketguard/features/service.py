"""Feature jobs: the daily wallet-graph snapshot that online scoring reads for social_graph_centrality."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from ticketguard.features import graph, repository
from ticketguard.features.offline import to_us
from ticketguard.features.specs import FeatureParams

log = logging.getLogger(__name__)


def day_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def compute_snapshot(
    transfers: pd.DataFrame, snapshot_at: datetime, params: FeatureParams
) -> tuple[list[str], np.ndarray, graph.Snapshot]:
    """Scores of every wallet in the graph of resales strictly before ``snapshot_at``."""
    before = transfers[transfers["timestamp"] < pd.Timestamp(snapshot_at)]
    codes, uniques = pd.factorize(
        pd.concat([before["seller_address"], before["wallet_address"]], ignore_index=True).astype(object)
    )
    n = len(before)
    snap = graph.pagerank(
        codes[:n].astype(np.int64),
        codes[n:].astype(np.int64),
        damping=params.pagerank_damping,
        tolerance=params.pagerank_tolerance,
        max_iter=params.pagerank_max_iter,
    )
    wallets = [str(uniques[i]) for i in snap.nodes]
    return wallets, snap.scores, snap


def refresh_graph_snapshot(
    engine: Engine,
    params: FeatureParams,
    *,
    day: datetime | None = None,
    keep_days: int = 7,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Compute and store the snapshot for ``day`` (default: today, UTC); drop snapshots older than keep_days.

    Safe to re-run: the day's snapshot is replaced in one transaction.
    """
    snapshot_at = day_start(day or now or datetime.now(UTC))
    with engine.begin() as conn:
        transfers = repository.read_transfers_before(conn, snapshot_at)
        wallets, scores, snap = compute_snapshot(transfers, snapshot_at, params)
        written = repository.replace_snapshot(
            conn,
            snapshot_at,
            wallets,
            scores,
            edges=snap.edges,
            iterations=snap.iterations,
            damping=params.pagerank_damping,
        )
        dropped = repository.delete_snapshots_before(conn, snapshot_at - timedelta(days=keep_days))
    log.info("graph snapshot", extra={"snapshot_at": snapshot_at.isoformat(), "wallets": written})
    return {
        "snapshot_at": snapshot_at.isoformat(),
        "wallets": written,
        "edges": snap.edges,
        "iterations": snap.iterations,
        "dropped_snapshots": dropped,
    }


def snapshot_days(timestamps: pd.Series) -> list[datetime]:
    """The distinct UTC days of these timestamps (what offline features use a snapshot for)."""
    days = np.unique(to_us(timestamps) // graph.DAY_US)
    return [datetime.fromtimestamp(int(d) * 86_400, tz=UTC) for d in days]
