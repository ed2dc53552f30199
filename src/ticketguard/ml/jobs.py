"""Scheduled ML jobs: retraining with a promotion gate, and the daily graph snapshot.

`retrain` is what the bi-weekly `--auto-deploy` cron line of the deployment guide becomes: it trains on the
database's history, registers the candidate, and — only with ``auto_deploy`` — promotes it when it beats
the live model on the same recent holdout (the candidate's test days, which neither model trained on).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from ticketguard.bootstrap import database_engine
from ticketguard.config import Settings
from ticketguard.features.service import refresh_graph_snapshot
from ticketguard.features.specs import FEATURE_NAMES
from ticketguard.ml.dataset import feature_params, history_from_database
from ticketguard.ml.registry import FeatureMismatchError, ModelIntegrityError
from ticketguard.ml.service import Progress, holdout_compare, registry_for, train_model

log = logging.getLogger(__name__)

GATE_ACTOR = "retrain-job"


def retrain(
    settings: Settings, *, auto_deploy: bool, progress: Progress | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Train and register a candidate; with ``auto_deploy``, promote it only through the gate.

    Returns what happened: candidate version and test metrics, the live version, both AUC-PRs on the
    candidate's holdout, and whether (and why) it was promoted.
    """
    history, blacklist = history_from_database(settings)
    engine = database_engine(settings, batch=True)
    try:
        run = train_model(
            settings,
            history,
            blacklist=blacklist,
            source="database",
            register_with=engine,
            progress=progress,
            now=now or datetime.now(UTC),
        )
        result: dict[str, Any] = {
            "candidate": run.card.version,
            "candidate_test": run.card.metrics["test"],
            "auto_deploy": auto_deploy,
            "promoted": False,
        }
        registry = registry_for(settings)
        with engine.begin() as conn:
            live = registry.live_version(conn)
            result["live_before"] = live
            if not auto_deploy:
                result["reason"] = "registered only (auto_deploy off)"
                return result
            if live is None:
                registry.promote(
                    conn, run.card.version, actor=GATE_ACTOR, reason="first model: nothing live to beat"
                )
                result.update(promoted=True, reason="no model was live")
                return result
            try:
                incumbent, _ = registry.load(conn, live, FEATURE_NAMES, nthread=settings.train_nthread)
            except (FeatureMismatchError, ModelIntegrityError) as exc:
                registry.promote(
                    conn, run.card.version, actor=GATE_ACTOR, reason=f"live model unusable: {exc}"
                )
                result.update(promoted=True, reason=f"the live model cannot serve this code: {exc}")
                return result
            candidate_aucpr, live_aucpr = holdout_compare(run, incumbent)
            result.update(candidate_holdout_aucpr=candidate_aucpr, live_holdout_aucpr=live_aucpr)
            if candidate_aucpr > live_aucpr:
                registry.promote(
                    conn,
                    run.card.version,
                    actor=GATE_ACTOR,
                    reason=f"holdout AUC-PR {candidate_aucpr:.4f} > live {live} {live_aucpr:.4f}",
                )
                result.update(promoted=True, reason="beats the live model on the same holdout")
            else:
                result["reason"] = (
                    f"kept {live}: holdout AUC-PR {live_aucpr:.4f} >= candidate {candidate_aucpr:.4f}"
                )
        log.info("retrain", extra=result)
        return result
    finally:
        engine.dispose()


def refresh_graph(settings: Settings, *, now: datetime | None = None) -> dict[str, Any]:
    """Today's wallet-graph snapshot for online social_graph_centrality (run daily, after midnight UTC)."""
    engine = database_engine(settings, batch=True)
    try:
        return refresh_graph_snapshot(
            engine,
            feature_params(settings),
            now=now or datetime.now(UTC),
            keep_days=settings.graph_snapshot_keep_days,
        )
    finally:
        engine.dispose()
