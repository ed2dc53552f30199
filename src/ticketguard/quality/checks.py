"""Data-quality verdicts as pure functions of measured values (the repository measures, these judge)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median
from typing import Any, Literal

Status = Literal["pass", "fail", "skipped"]
Severity = Literal["low", "medium", "high", "critical"]


@dataclass(frozen=True)
class CheckResult:
    check: str
    table: str
    status: Status
    severity: Severity
    message: str
    observed: float | None = None
    expected: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def nulls(check: str, table: str, null_counts: dict[str, int], rows: int, window: timedelta) -> CheckResult:
    """Required columns must be filled in every recent row."""
    missing = {column: count for column, count in null_counts.items() if count}
    total = sum(missing.values())
    if not missing:
        return CheckResult(
            check,
            table,
            "pass",
            "medium",
            f"no nulls in {', '.join(null_counts)} over {rows:,} rows of the last {_span(window)}",
            0,
            "0 nulls",
        )
    listed = ", ".join(f"{column}: {count:,}" for column, count in missing.items())
    return CheckResult(
        check,
        table,
        "fail",
        "medium",
        f"{total:,} nulls in required columns of {table} over the last {_span(window)} ({listed})",
        total,
        "0 nulls",
        {"null_counts": missing, "rows": rows},
    )


def duplicates(
    check: str, table: str, what: str, count: int, examples: list[str], severity: Severity
) -> CheckResult:
    if count == 0:
        return CheckResult(check, table, "pass", severity, f"no {what}", 0, "0")
    return CheckResult(
        check,
        table,
        "fail",
        severity,
        f"{count:,} {what}, e.g. {', '.join(examples[:5])}",
        count,
        "0",
        {"examples": examples[:20]},
    )


def freshness(newest: datetime | None, now: datetime, max_age: timedelta) -> CheckResult:
    """The newest transaction must be recent: a silent feed is an outage nobody else reports."""
    check, table = "freshness", "transactions"
    if newest is None:
        return CheckResult(
            check, table, "skipped", "high", "no transactions yet", None, f"< {_span(max_age)}"
        )
    age = now - newest
    hours = age.total_seconds() / 3600
    if age <= max_age:
        return CheckResult(
            check,
            table,
            "pass",
            "high",
            f"newest transaction is {_span(age)} old",
            hours,
            f"< {_span(max_age)}",
        )
    return CheckResult(
        check,
        table,
        "fail",
        "high",
        f"newest transaction is {_span(age)} old (at {newest:%Y-%m-%d %H:%M} UTC), "
        f"more than {_span(max_age)}",
        hours,
        f"< {_span(max_age)}",
        {"newest": newest.isoformat()},
    )


def future_timestamps(count: int, examples: list[str], tolerance: timedelta) -> CheckResult:
    """Timestamps ahead of the clock poison every time window (velocity, freshness, retention)."""
    return duplicates(
        "future_timestamps",
        "transactions",
        f"transactions dated more than {_span(tolerance)} in the future",
        count,
        examples,
        "medium",
    )


def volume(last_day: int, previous_days: list[int], tolerance: float) -> CheckResult:
    """The last 24 h against the median of the days before, ± tolerance (a fraction of the median)."""
    check, table = "volume", "transactions"
    baseline = float(median(previous_days)) if previous_days else 0.0
    low, high = baseline * (1 - tolerance), baseline * (1 + tolerance)
    expected = (
        f"{low:,.0f}–{high:,.0f} (median {baseline:,.0f} of {len(previous_days)} days ± {tolerance:.0%})"
    )
    details = {"last_day": last_day, "previous_days": previous_days, "median": baseline}
    if baseline == 0:
        return CheckResult(
            check,
            table,
            "skipped",
            "medium",
            f"no baseline yet: the median of the previous {len(previous_days)} days is 0 "
            f"(last 24 h: {last_day:,})",
            last_day,
            expected,
            details,
        )
    if low <= last_day <= high:
        return CheckResult(
            check,
            table,
            "pass",
            "medium",
            f"{last_day:,} transactions in the last 24 h",
            last_day,
            expected,
            details,
        )
    direction = "below" if last_day < low else "above"
    return CheckResult(
        check,
        table,
        "fail",
        "medium",
        f"{last_day:,} transactions in the last 24 h, {direction} the usual {expected}",
        last_day,
        expected,
        details,
    )


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"
