"""`GET /api/v1/metrics`: business KPIs for machine clients (the backend's ops views, a BI job).

Behind an API key with the `metrics` scope when client auth is on (the security layer enforces it; see
docs/security.md). Prometheus scraping of request latencies stays at `/metrics`; this endpoint answers
"what is the fraud layer deciding": decisions by type over the last hour and day, block / review rates,
mean score, degraded answers, mean latency, the live model — read from `fraud_predictions` (indexed on
timestamp) — and the last 24 hours of the guide's `kpi_hourly` view as of its last refresh (every 5 min).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection, case, func, select, text

from ticketguard import tables
from ticketguard.api.app import json_response
from ticketguard.scoring.domain import APPROVED, BLOCKED, MANUAL_REVIEW, REQUIRE_2FA

router = APIRouter()

DECISIONS = (APPROVED, REQUIRE_2FA, MANUAL_REVIEW, BLOCKED)
WINDOWS = {"last_hour": timedelta(hours=1), "last_24h": timedelta(days=1)}


def window_kpis(conn: Connection, since: datetime) -> dict[str, Any]:
    """Decisions scored since `since` (one indexed range scan of fraud_predictions)."""
    fp = tables.fraud_predictions
    rows = conn.execute(
        select(
            fp.c.decision,
            func.count().label("n"),
            func.avg(fp.c.fraud_score).label("mean_score"),
            func.sum(case((fp.c.degraded, 1), else_=0)).label("degraded"),
            func.avg(fp.c.latency_ms).label("mean_latency_ms"),
        )
        .where(fp.c.timestamp >= since)
        .group_by(fp.c.decision)
    ).all()
    counts = {decision: 0 for decision in DECISIONS}
    total = degraded = 0
    score_sum = latency_sum = 0.0
    latency_n = 0
    for row in rows:
        n = int(row.n)
        counts[str(row.decision)] = counts.get(str(row.decision), 0) + n
        total += n
        degraded += int(row.degraded or 0)
        score_sum += float(row.mean_score or 0.0) * n
        if row.mean_latency_ms is not None:
            latency_sum += float(row.mean_latency_ms) * n
            latency_n += n
    return {
        "since": since.isoformat(),
        "scored": total,
        "decisions": counts,
        "block_rate": counts[BLOCKED] / total if total else None,
        "review_rate": (counts[MANUAL_REVIEW] + counts[REQUIRE_2FA]) / total if total else None,
        "mean_fraud_score": score_sum / total if total else None,
        "degraded": degraded,
        "mean_latency_ms": latency_sum / latency_n if latency_n else None,
    }


def hourly(conn: Connection, hours: int = 24) -> list[dict[str, Any]]:
    """The newest `hours` rows of kpi_hourly (a materialized view on PostgreSQL, a table on SQLite)."""
    result = conn.execute(
        text(
            "SELECT hour, total_transactions, unique_wallets, total_revenue, avg_fraud_score, "
            "blocked_count, approved_count FROM kpi_hourly ORDER BY hour DESC LIMIT :n"
        ),
        {"n": hours},
    )
    out = []
    for row in result.mappings():
        hour = row["hour"]
        out.append(
            {
                "hour": hour.isoformat() if isinstance(hour, datetime) else str(hour),
                "total_transactions": int(row["total_transactions"] or 0),
                "unique_wallets": int(row["unique_wallets"] or 0),
                "total_revenue": str(row["total_revenue"]) if row["total_revenue"] is not None else None,
                "avg_fraud_score": float(row["avg_fraud_score"])
                if row["avg_fraud_score"] is not None
                else None,
                "blocked_count": int(row["blocked_count"] or 0),
                "approved_count": int(row["approved_count"] or 0),
            }
        )
    return out


def kpi_snapshot(conn: Connection, now: datetime) -> dict[str, Any]:
    return {
        "generated_at": now.isoformat(),
        **{name: window_kpis(conn, now - span) for name, span in WINDOWS.items()},
        "kpi_hourly": hourly(conn),
    }


@router.get("/api/v1/metrics", tags=["ops"], responses={401: {"description": "API key with scope metrics"}})
def business_metrics(request: Request) -> Response:
    """KPIs: decisions over the last hour and day, rates, mean score, degraded answers, kpi_hourly."""
    service = request.app.state.scoring
    with service.engine.connect() as conn:
        body = kpi_snapshot(conn, datetime.now(UTC))
    try:
        body["model_version"] = service.model().version
    except Exception:  # no model is a state to report here, not an error of this endpoint
        body["model_version"] = None
    return json_response(body)
