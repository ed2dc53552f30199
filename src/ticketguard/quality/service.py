"""A data-quality run: measure, judge, record every result and raise an event per failure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from ticketguard.config import Settings
from ticketguard.quality import checks, repository
from ticketguard.quality.checks import CheckResult

FUTURE_TOLERANCE = timedelta(minutes=5)  # clock skew between the API hosts and the database


@dataclass(frozen=True)
class QualityConfig:
    lookback: timedelta
    freshness_max_age: timedelta
    volume_tolerance: float
    volume_baseline_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> QualityConfig:
        return cls(
            lookback=timedelta(hours=settings.quality_lookback_hours),
            freshness_max_age=timedelta(hours=settings.quality_freshness_max_hours),
            volume_tolerance=settings.quality_volume_tolerance,
            volume_baseline_days=settings.quality_volume_baseline_days,
        )


@dataclass(frozen=True)
class QualityReport:
    run_id: str
    results: list[CheckResult]

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.failed]

    def counts(self) -> dict[str, int]:
        return {
            status: sum(1 for r in self.results if r.status == status)
            for status in ("pass", "fail", "skipped")
        }


def run_quality_checks(engine: Engine, config: QualityConfig, *, now: datetime) -> QualityReport:
    since = now - config.lookback
    with engine.connect() as conn:
        results: list[CheckResult] = []
        for table in ("transactions", "fraud_predictions"):
            counts, rows = repository.null_counts(conn, table, since)
            results.append(checks.nulls(f"required_columns_{table}", table, counts, rows, config.lookback))
        for table, key in (("transactions", "transaction_id"), ("fraud_predictions", "transaction_id")):
            count, examples = repository.live_archive_overlap(conn, table, key)
            results.append(
                checks.duplicates(
                    f"duplicate_archived_{table}",
                    table,
                    "rows both live and archived",
                    count,
                    examples,
                    "high",
                )
            )
        count, examples = repository.duplicate_primary_sales(conn, since)
        results.append(
            checks.duplicates(
                "duplicate_primary_sale",
                "transactions",
                "tickets sold twice on the primary market",
                count,
                examples,
                "high",
            )
        )
        count, examples = repository.duplicate_submissions(conn, since)
        results.append(
            checks.duplicates(
                "duplicate_submission",
                "transactions",
                "purchases recorded twice under different ids",
                count,
                examples,
                "medium",
            )
        )
        results.append(
            checks.freshness(
                repository.newest_transaction(conn, now, FUTURE_TOLERANCE), now, config.freshness_max_age
            )
        )
        count, examples = repository.future_transactions(conn, now, FUTURE_TOLERANCE)
        results.append(checks.future_timestamps(count, examples, FUTURE_TOLERANCE))
        days = repository.daily_counts(conn, now, config.volume_baseline_days)
        results.append(checks.volume(days[0], days[1:], config.volume_tolerance))

    report = QualityReport(run_id=uuid.uuid4().hex, results=results)
    with engine.begin() as conn:
        repository.record_results(conn, report.run_id, results, now)
        repository.raise_alerts(conn, report.run_id, report.failed, now)
    return report
