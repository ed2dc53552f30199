"""The metric catalogue: every metric an alert condition can name, defined once — its unit, window and
source, and the query that reads it.

Every query is a range over an indexed timestamp (``idx_fraud_predictions_timestamp``,
``idx_security_events_type_ts``) bounded by the metric's window, so one evaluation costs the same whether
the tables hold a thousand rows or a hundred million (benchmarks/bench_alerts.py). The prediction rates
share one aggregate query per evaluation. The `kpi_hourly` view is not used: it is refreshed every five
minutes and its buckets are whole hours, too coarse for a five-minute window.

A metric with nothing to measure (no answers in the window, no drift job yet) has no value, with the
reason: its conditions do not hold and `ticketguard alerts status` says why.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Float, case, cast, distinct, func, select

from ticketguard.tables import fraud_predictions, security_events

log = logging.getLogger(__name__)

LOGIN_FAILED = "login_failed"  # written by the console (issue 14) for every failed admin log-in
MFA_FAILURES = "mfa_failures"  # the console: 3 failed TOTP codes within 5 min for one user
RATE_LIMITED = "rate_limited"
NO_DRIFT = "no data: the drift job (model operations) does not exist yet"


@dataclass(frozen=True)
class MetricValue:
    value: float | None
    detail: str = ""  # how it was measured ("17 of 400 answers"), or why there is no value

    @property
    def has_data(self) -> bool:
        return self.value is not None


@dataclass
class MetricContext:
    """What one evaluation cycle shares: the clock, the windows, the configured thresholds, and the
    aggregate rows already read this cycle."""

    now: datetime
    window: timedelta
    block_threshold: float
    api_metrics_url: str | None = None
    scrape_timeout_s: float = 2.0
    review_horizon: timedelta | None = None  # REVIEW_QUEUE_HORIZON_DAYS: older cases are not in the queue
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # ratio | ms | count | minutes | score (rules.UNIT_FACTORS)
    window: str  # as people read it
    source: str
    description: str
    read: Callable[[Connection, MetricContext], MetricValue]


# ------------------------------------------------------------------------------------ predictions
def _prediction_counts(conn: Connection, ctx: MetricContext) -> dict[str, int]:
    if "predictions" not in ctx.cache:
        p = fraud_predictions
        since = ctx.now - ctx.window
        not_degraded = p.c.degraded.is_(False)
        row = conn.execute(
            select(
                func.count().label("answers"),
                func.sum(case((p.c.decision == "BLOCKED", 1), else_=0)).label("blocked"),
                func.sum(case((p.c.decision == "MANUAL_REVIEW", 1), else_=0)).label("review"),
                func.sum(case((p.c.degraded.is_(True), 1), else_=0)).label("degraded"),
                func.sum(case((not_degraded, 1), else_=0)).label("scored"),
                func.sum(case((not_degraded & (p.c.fraud_score > ctx.block_threshold), 1), else_=0)).label(
                    "fraud"
                ),
            ).where(p.c.timestamp > since, p.c.timestamp <= ctx.now)
        ).one()
        ctx.cache["predictions"] = {k: int(v or 0) for k, v in row._mapping.items()}
    counts: dict[str, int] = ctx.cache["predictions"]
    return counts


def _share(part: str, whole: str, what: str) -> Callable[[Connection, MetricContext], MetricValue]:
    def read(conn: Connection, ctx: MetricContext) -> MetricValue:
        counts = _prediction_counts(conn, ctx)
        if counts[whole] == 0:
            return MetricValue(None, f"no data: no {what} in the last {_window(ctx.window)}")
        return MetricValue(counts[part] / counts[whole], f"{counts[part]:,} of {counts[whole]:,} {what}")

    return read


def _latency(q: float) -> Callable[[Connection, MetricContext], MetricValue]:
    def read(conn: Connection, ctx: MetricContext) -> MetricValue:
        p = fraud_predictions
        since = ctx.now - ctx.window
        where = (p.c.timestamp > since, p.c.timestamp <= ctx.now, p.c.latency_ms.is_not(None))
        if conn.dialect.name == "postgresql":
            row = conn.execute(
                select(func.percentile_cont(q).within_group(cast(p.c.latency_ms, Float)), func.count()).where(
                    *where
                )
            ).one()
            value, n = row[0], int(row[1])
        else:  # SQLite has no percentile: the window's latencies (bounded by the window) in Python
            import numpy as np

            values = [float(v) for v in conn.execute(select(p.c.latency_ms).where(*where)).scalars()]
            n = len(values)
            value = float(np.percentile(values, q * 100)) if values else None
        if not n or value is None:
            return MetricValue(None, f"no data: no timed answers in the last {_window(ctx.window)}")
        return MetricValue(float(value), f"p{int(q * 100)} of {n:,} answers")

    return read


def _transactions_per_hour(conn: Connection, ctx: MetricContext) -> MetricValue:
    p = fraud_predictions
    n = conn.execute(
        select(func.count()).where(p.c.timestamp > ctx.now - timedelta(hours=1), p.c.timestamp <= ctx.now)
    ).scalar_one()
    return MetricValue(float(n), f"{n:,} answers in the last hour")


# ------------------------------------------------------------------------------------ security events
def _events_in_window(conn: Connection, ctx: MetricContext, event_type: str, per: Any) -> tuple[int, int]:
    """How many security events of ``event_type`` in the rule's window, and how many distinct ``per``."""
    e = security_events
    row = conn.execute(
        select(func.count(), func.count(distinct(per))).where(
            e.c.event_type == event_type, e.c.timestamp > ctx.now - ctx.window, e.c.timestamp <= ctx.now
        )
    ).one()
    return int(row[0]), int(row[1])


def _failed_logins(conn: Connection, ctx: MetricContext) -> MetricValue:
    n, addresses = _events_in_window(conn, ctx, LOGIN_FAILED, security_events.c.source_ip)
    return MetricValue(float(n), f"{n:,} failed log-ins from {addresses:,} addresses")


def _mfa_failures(conn: Connection, ctx: MetricContext) -> MetricValue:
    n, accounts = _events_in_window(conn, ctx, MFA_FAILURES, security_events.c.user_id)
    return MetricValue(float(n), f"{n:,} repeated MFA failures of {accounts:,} accounts")


def _rate_limited_ips(conn: Connection, ctx: MetricContext) -> MetricValue:
    e = security_events
    n = conn.execute(
        select(func.count(distinct(e.c.source_ip))).where(
            e.c.event_type == RATE_LIMITED,
            e.c.source_ip.is_not(None),
            e.c.timestamp > ctx.now - ctx.window,
            e.c.timestamp <= ctx.now,
        )
    ).scalar_one()
    return MetricValue(float(n), f"{n:,} distinct addresses rate-limited")


# ------------------------------------------------------------------------------------ other sources
def _no_drift(conn: Connection, ctx: MetricContext) -> MetricValue:
    return MetricValue(None, NO_DRIFT)


def _review_queue_age(conn: Connection, ctx: MetricContext) -> MetricValue:
    try:
        from ticketguard.reviews.service import queue_stats
    except ImportError:
        return MetricValue(None, "no data: the review queue (ticketguard.reviews) is not installed")
    stats = (
        queue_stats(conn, now=ctx.now, horizon=ctx.review_horizon)
        if ctx.review_horizon is not None
        else queue_stats(conn, now=ctx.now)
    )
    if stats.oldest_age_seconds is None:
        return MetricValue(0.0, f"queue empty ({stats.size} cases)")
    return MetricValue(float(stats.oldest_age_seconds) / 60.0, f"oldest of {stats.size:,} undecided cases")


# The API's request counter by status, from its Prometheus /metrics: the previous scrape of this process
# (the rate is the difference between two scrapes; the first scrape after a start has no value yet).
_last_scrape: dict[str, tuple[float, float, float]] = {}


def _error_rate(conn: Connection, ctx: MetricContext) -> MetricValue:
    if not ctx.api_metrics_url:
        return MetricValue(None, "no data: ALERT_API_METRICS_URL (the API's /metrics) is not set")
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        response = httpx.get(ctx.api_metrics_url, timeout=ctx.scrape_timeout_s)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        return MetricValue(None, f"no data: the API's /metrics did not answer ({type(exc).__name__})")
    total = errors = 0.0
    for family in text_string_to_metric_families(response.text):
        if family.name != "ticketguard_request_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_count") and sample.labels.get("route", "").startswith("/api/v1/ml/"):
                total += sample.value
                if sample.labels.get("status", "").startswith("5"):
                    errors += sample.value
    previous = _last_scrape.get(ctx.api_metrics_url)
    _last_scrape[ctx.api_metrics_url] = (time.monotonic(), total, errors)
    if previous is None:
        return MetricValue(None, "no data: first scrape of the API's /metrics (a rate needs two)")
    _, total0, errors0 = previous
    if total < total0:  # the API restarted: counters began again
        return MetricValue(None, "no data: the API's counters were reset (restart)")
    requests = total - total0
    if requests <= 0:
        return MetricValue(None, "no data: no scoring requests since the last scrape")
    return MetricValue(
        (errors - errors0) / requests, f"{errors - errors0:,.0f} of {requests:,.0f} requests 5xx"
    )


def _window(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


_RATE_WINDOW = "ALERT_METRIC_WINDOW_SECONDS (300 s)"
_PRED = "fraud_predictions (idx_fraud_predictions_timestamp)"

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "fraud_rate",
            "ratio",
            _RATE_WINDOW,
            _PRED,
            "share of model-scored answers whose score is above FRAUD_THRESHOLD_BLOCK as configured (the "
            "model's view: neither a tightened threshold nor a list block changes it)",
            _share("fraud", "scored", "scored answers"),
        ),
        Metric(
            "block_rate",
            "ratio",
            _RATE_WINDOW,
            _PRED,
            "share of answers BLOCKED (lists included)",
            _share("blocked", "answers", "answers"),
        ),
        Metric(
            "review_rate",
            "ratio",
            _RATE_WINDOW,
            _PRED,
            "share of answers MANUAL_REVIEW",
            _share("review", "answers", "answers"),
        ),
        Metric(
            "degraded_rate",
            "ratio",
            _RATE_WINDOW,
            _PRED,
            "share of answers marked degraded (part of the path failed; decided by policy)",
            _share("degraded", "answers", "answers"),
        ),
        Metric(
            "p95_latency",
            "ms",
            _RATE_WINDOW,
            _PRED + ", latency_ms",
            "95th percentile of the scoring time of stored answers",
            _latency(0.95),
        ),
        Metric(
            "p99_latency",
            "ms",
            _RATE_WINDOW,
            _PRED + ", latency_ms",
            "99th percentile of the scoring time of stored answers",
            _latency(0.99),
        ),
        Metric(
            "error_rate",
            "ratio",
            "between two evaluations",
            "the API's Prometheus /metrics (ticketguard_request_seconds_count by status)",
            "share of scoring requests answered 5xx since the previous evaluation",
            _error_rate,
        ),
        Metric(
            "transactions_per_hour",
            "count",
            "1 h",
            _PRED,
            "answers in the last hour",
            _transactions_per_hour,
        ),
        Metric(
            "failed_logins",
            "count",
            _RATE_WINDOW,
            "security_events type login_failed (idx_security_events_type_ts)",
            "failed admin log-ins (every address)",
            _failed_logins,
        ),
        Metric(
            "mfa_failures",
            "count",
            _RATE_WINDOW,
            "security_events type mfa_failures (idx_security_events_type_ts)",
            "admin accounts that failed three TOTP codes within 5 minutes (events)",
            _mfa_failures,
        ),
        Metric(
            "rate_limited_ips",
            "count",
            _RATE_WINDOW,
            "security_events type rate_limited (idx_security_events_type_ts)",
            "distinct client addresses refused by a rate limit",
            _rate_limited_ips,
        ),
        Metric(
            "kl_divergence",
            "score",
            "the drift job's last run",
            "model operations drift job (not built)",
            "largest per-feature KL divergence of live traffic against training",
            _no_drift,
        ),
        Metric(
            "psi",
            "score",
            "the drift job's last run",
            "model operations drift job (not built)",
            "largest per-feature population stability index",
            _no_drift,
        ),
        Metric(
            "review_queue_age_minutes",
            "minutes",
            "now",
            "ticketguard.reviews.service.queue_stats",
            "age of the oldest undecided case in the review queue",
            _review_queue_age,
        ),
    )
}

METRIC_UNITS: dict[str, str] = {name: m.unit for name, m in METRICS.items()}


def read_metric(conn: Connection, name: str, ctx: MetricContext) -> MetricValue:
    """One metric's value; a failing source is no data with the reason (logged), never an exception that
    would stop the other rules. The caller gives each metric a connection of its own (a failed query
    aborts a PostgreSQL transaction)."""
    metric = METRICS[name]
    try:
        value = metric.read(conn, ctx)
    except Exception as exc:
        log.warning("metric %s could not be read: %s", name, type(exc).__name__)
        return MetricValue(None, f"no data: {metric.source} could not be read ({type(exc).__name__})")
    if value.value is not None and not math.isfinite(value.value):
        return MetricValue(None, f"no data: {name} is not a finite number")
    return value
