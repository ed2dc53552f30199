"""The named jobs. Each is small, safe to re-run, and returns counts for the job-runs table.

Jobs owned by other capabilities (chain ETL, retraining) are imported when they run, so the worker and
`jobs list` work whether or not those capabilities are installed or configured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from ticketguard.config import Settings

Counts = Mapping[str, Any]


class JobSkipped(Exception):
    """The job had nothing to do here (e.g. not configured); recorded as `skipped`, not `failed`."""


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    engine: Engine
    now: datetime
    trigger: str  # schedule | manual


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    run: Callable[[JobContext], Counts]
    # A job that runs every few seconds records a run only when it did something or failed (its counts'
    # `attempted` > 0): thousands of empty "succeeded" rows a day would bury the runs people look for.
    record_idle: bool = True

    def did_work(self, counts: Counts) -> bool:
        return self.record_idle or bool(counts.get("attempted", 0))


def _etl(ctx: JobContext) -> Counts:
    if not (ctx.settings.web3_provider and ctx.settings.contract_address):
        raise JobSkipped("WEB3_PROVIDER and CONTRACT_ADDRESS are not both set: no chain to read")
    from ticketguard.chain.pipeline import run_etl

    report = run_etl(ctx.settings)
    return {
        key: value
        for key, value in dataclasses.asdict(report).items()
        if isinstance(value, int | float | str | bool)
    }


def _refresh_views(ctx: JobContext) -> Counts:
    from ticketguard.views.refresh import refresh_views

    results = refresh_views(ctx.engine)
    return {f"{r.name}.rows": r.rows for r in results} | {
        f"{r.name}.seconds": round(r.seconds, 3) for r in results
    }


def _retention(ctx: JobContext) -> Counts:
    from ticketguard.retention.policy import policy_from_settings
    from ticketguard.retention.service import run_retention, tell_feature_state

    report = run_retention(ctx.engine, policy_from_settings(ctx.settings), now=ctx.now)
    tell_feature_state(ctx.settings, report)
    return report.counts()


def _data_quality(ctx: JobContext) -> Counts:
    from ticketguard.quality.service import QualityConfig, run_quality_checks

    report = run_quality_checks(ctx.engine, QualityConfig.from_settings(ctx.settings), now=ctx.now)
    counts: dict[str, Any] = dict(report.counts())
    counts["failed_checks"] = ",".join(r.check for r in report.failed)
    return counts


def _retrain(ctx: JobContext) -> Counts:
    # Deploys only through the registry's promotion gate: retrain() promotes a candidate only when it beats
    # the live model on the same recent holdout.
    from ticketguard.ml.jobs import retrain

    return dict(retrain(ctx.settings, auto_deploy=True))


def _security(ctx: JobContext) -> Counts:
    from ticketguard.security.correlation import correlation_job

    return correlation_job(ctx.settings, ctx.engine, ctx.now)


def _evaluate_alerts(ctx: JobContext) -> Counts:  # alerting (issue 15, docs/alerts.md)
    from ticketguard.alerts.service import evaluate_job

    return evaluate_job(ctx.settings, ctx.engine, ctx.now)


def _deliver_outbox(ctx: JobContext) -> Counts:
    from ticketguard.delivery.service import deliver

    return deliver(ctx.settings, ctx.engine).counts()


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("etl", "Load confirmed ticket-contract logs from the chain (ticketguard etl run).", _etl),
        Job(
            "refresh-views",
            "Refresh kpi_hourly, event_analytics, wallet_segments, realised_hourly without blocking readers.",
            _refresh_views,
        ),
        Job(
            "retention",
            "Archive and purge rows by the retention policy (ticketguard retention run).",
            _retention,
        ),
        Job(
            "data-quality", "Check nulls, duplicates, freshness and volume; alert on failures.", _data_quality
        ),
        Job("retrain", "Retrain the fraud model; auto-deploy only through the promotion gate.", _retrain),
        Job("security-correlation", "Correlation rules → automated responses (docs/security.md).", _security),
        Job(
            "deliver-outbox",
            "Send due notifications and callbacks, with retries (docs/delivery.md).",
            _deliver_outbox,
            record_idle=False,
        ),
        # alerting (issue 15): a quiet cycle (no transition, notification or action) is not recorded
        Job(
            "evaluate-alerts",
            "Evaluate the alert rules; notify and act on changes (docs/alerts.md).",
            _evaluate_alerts,
            record_idle=False,
        ),
    )
}


def get_job(name: str, jobs: Mapping[str, Job] = JOBS) -> Job:
    try:
        return jobs[name]
    except KeyError:
        raise ValueError(f"unknown job {name!r}; accepted: {', '.join(jobs)}") from None
