"""The console's data: one function per section, each a few indexed range queries over the last hour,
day or week (fraud_predictions and transactions by timestamp, security_events by timestamp, labels by
transaction id) or small tables — never a scan of the history. `benchmarks/bench_console.py` times them
at 1M transactions on PostgreSQL. Everything takes `now` so a test can pin it."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    and_,
    bindparam,
    case,
    desc,
    func,
    literal_column,
    or_,
    select,
    text,
)

from ticketguard import tables
from ticketguard.config import Settings
from ticketguard.kit.types import UTCDateTime
from ticketguard.security.redact import mask_ip, mask_wallet

FLAGGED = ("BLOCKED", "MANUAL_REVIEW")
HIGH_RISK = ("BLOCKED", "MANUAL_REVIEW", "REQUIRE_2FA")
SCORE_BINS = 20
# The guide's numbers: API SLA p95 < 50 ms, alert rule fraud_rate_spike at > 3 %.
TARGET_P95_MS = 50.0
TARGET_BLOCK_RATE = 0.03


def _p95(conn: Connection, since: datetime, until: datetime) -> float | None:
    fp = tables.fraud_predictions
    where = and_(fp.c.timestamp >= since, fp.c.timestamp < until, fp.c.latency_ms.is_not(None))
    if conn.dialect.name == "postgresql":
        value = conn.execute(
            select(func.percentile_cont(0.95).within_group(fp.c.latency_ms)).where(where)
        ).scalar()
        return None if value is None else float(value)
    values = sorted(float(v) for v in conn.execute(select(fp.c.latency_ms).where(where)).scalars())
    if not values:
        return None
    rank = 0.95 * (len(values) - 1)  # linear interpolation, as percentile_cont
    low = math.floor(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def _hour(conn: Connection, since: datetime, until: datetime) -> dict[str, Any]:
    fp, tx = tables.fraud_predictions, tables.transactions
    row = conn.execute(
        select(
            func.count().label("n"),
            func.sum(case((fp.c.decision == "BLOCKED", 1), else_=0)).label("blocked"),
        ).where(fp.c.timestamp >= since, fp.c.timestamp < until)
    ).one()
    revenue = conn.execute(
        select(func.sum(tx.c.price_paid)).where(
            tx.c.timestamp >= since,
            tx.c.timestamp < until,
            or_(tx.c.status.is_(None), tx.c.status != "blocked"),
        )
    ).scalar()
    n = int(row.n or 0)
    return {
        "transactions": n,
        "block_rate": (int(row.blocked or 0) / n) if n else None,
        "p95_ms": _p95(conn, since, until),
        "revenue": float(revenue) if revenue is not None else 0.0,
    }


def _change(current: float | None, previous: float | None) -> float | None:
    if current is None or previous is None or previous == 0:
        return None
    return (current - previous) / previous


def kpis(conn: Connection, now: datetime, settings: Settings) -> dict[str, Any]:
    """Transactions/hour, block rate, API p95 latency, revenue/hour: this hour against the one before."""
    this = _hour(conn, now - timedelta(hours=1), now)
    prev = _hour(conn, now - timedelta(hours=2), now - timedelta(hours=1))
    tolerance = settings.quality_volume_tolerance

    def volume_ok(cur: float, old: float) -> bool | None:
        if old == 0:
            return None
        return abs(cur - old) / old <= tolerance

    cards = [
        {
            "key": "transactions",
            "label": "Transactions / hour",
            "value": this["transactions"],
            "change": _change(this["transactions"], prev["transactions"]),
            "target": f"within ±{tolerance:.0%} of the previous hour",
            "ok": volume_ok(this["transactions"], prev["transactions"]),
        },
        {
            "key": "block_rate",
            "label": "Block rate",
            "value": this["block_rate"],
            "change": _change(this["block_rate"], prev["block_rate"]),
            "target": f"≤ {TARGET_BLOCK_RATE:.0%}",
            "ok": None if this["block_rate"] is None else this["block_rate"] <= TARGET_BLOCK_RATE,
        },
        {
            "key": "p95_ms",
            "label": "API p95 latency (ms)",
            "value": this["p95_ms"],
            "change": _change(this["p95_ms"], prev["p95_ms"]),
            "target": f"< {TARGET_P95_MS:.0f} ms",
            "ok": None if this["p95_ms"] is None else this["p95_ms"] < TARGET_P95_MS,
        },
        {
            "key": "revenue",
            "label": "Revenue / hour",
            "value": this["revenue"],
            "change": _change(this["revenue"], prev["revenue"]),
            "target": f"within ±{tolerance:.0%} of the previous hour",
            "ok": volume_ok(this["revenue"], prev["revenue"]),
        },
    ]
    return {"cards": cards, "empty": this["transactions"] == 0 and prev["transactions"] == 0}


def fraud(conn: Connection, now: datetime, *, limit: int = 20) -> dict[str, Any]:
    """Score distribution over the last hour (SCORE_BINS bins) and the latest high-risk decisions."""
    fp = tables.fraud_predictions
    since = now - timedelta(hours=1)
    bin_expr = func.least(func.floor(fp.c.fraud_score * SCORE_BINS), SCORE_BINS - 1)
    if conn.dialect.name == "sqlite":
        bin_expr = func.min(func.cast(fp.c.fraud_score * SCORE_BINS, Integer), SCORE_BINS - 1)
    rows = conn.execute(
        select(bin_expr.label("bin"), func.count().label("n"))
        .where(fp.c.timestamp >= since, fp.c.timestamp <= now, fp.c.fraud_score.is_not(None))
        .group_by(literal_column("bin"))
    ).all()
    bins = [0] * SCORE_BINS
    for row in rows:
        bins[int(row.bin)] += int(row.n)
    latest = []
    for decision in HIGH_RISK:  # one index range per decision (decision, timestamp), merged here
        for r in conn.execute(
            select(fp.c.transaction_id, fp.c.timestamp, fp.c.fraud_score, fp.c.decision, fp.c.reasons)
            .where(fp.c.decision == decision, fp.c.timestamp <= now)
            .order_by(desc(fp.c.timestamp))
            .limit(limit)
        ):
            reasons = list(r.reasons or [])
            latest.append(
                {
                    "time": r.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
                    "ts": r.timestamp,
                    "transaction_id": r.transaction_id,
                    "score": round(float(r.fraud_score or 0.0), 3),
                    "decision": r.decision,
                    "top_reason": str(reasons[0]) if reasons else "",
                }
            )
    latest.sort(key=lambda x: x["ts"], reverse=True)
    for item in latest:
        item.pop("ts")
    return {"bins": bins, "bin_width": 1 / SCORE_BINS, "scored": sum(bins), "latest": latest[:limit]}


def decision_detail(conn: Connection, transaction_id: str) -> dict[str, Any] | None:
    """Everything about one decision: the transaction, every feature, contributions and reasons."""
    fp, tx = tables.fraud_predictions, tables.transactions
    p = conn.execute(select(fp).where(fp.c.transaction_id == transaction_id)).first()
    if p is None:
        return None
    t = conn.execute(select(tx).where(tx.c.transaction_id == transaction_id)).first()
    label = conn.execute(
        select(tables.fraud_labels).where(tables.fraud_labels.c.transaction_id == transaction_id)
    ).first()
    return {
        "transaction_id": transaction_id,
        "time": p.timestamp.isoformat(),
        "score": p.fraud_score,
        "decision": p.decision,
        "model_version": p.model_version,
        "degraded": bool(p.degraded),
        "reasons": list(p.reasons or []),
        "contributions": list(p.top_features or []),
        "features": dict(p.features or {}),
        "wallet": mask_wallet(t.wallet_address) if t is not None else None,
        "event_id": t.event_id if t is not None else None,
        "price": float(t.price_paid) if t is not None and t.price_paid is not None else None,
        "label": None if label is None else {"is_fraud": bool(label.is_fraud), "source": label.source},
    }


def _minute_expr(conn: Connection, column: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return func.date_trunc("minute", column)
    return func.substr(column, 1, 16)


def traffic(conn: Connection, now: datetime, settings: Settings) -> dict[str, Any]:
    """Scoring requests per minute (last hour), top IPs of the last 5 minutes, rate-limited and blocked
    IPs, and how much of the global per-minute budget the last minute used."""
    fp, tx, ev = tables.fraud_predictions, tables.transactions, tables.security_events
    since = now - timedelta(hours=1)
    minute = _minute_expr(conn, fp.c.timestamp).label("minute")
    per_minute = [
        {"minute": str(r.minute)[:16], "n": int(r.n)}
        for r in conn.execute(
            select(minute, func.count().label("n"))
            .where(fp.c.timestamp >= since, fp.c.timestamp <= now)
            .group_by(literal_column("minute"))
            .order_by(literal_column("minute"))
        )
    ]
    five = now - timedelta(minutes=5)
    top_ips = [
        {"ip": mask_ip(r.ip_address), "requests": int(r.n)}
        for r in conn.execute(
            select(tx.c.ip_address, func.count().label("n"))
            .where(tx.c.timestamp >= five, tx.c.timestamp <= now, tx.c.ip_address.is_not(None))
            .group_by(tx.c.ip_address)
            .order_by(desc("n"))
            .limit(10)
        )
    ]
    limited = [
        {"ip": r.source_ip or "-", "refusals": int(r.n)}
        for r in conn.execute(
            select(ev.c.source_ip, func.count().label("n"))
            .where(ev.c.event_type == "rate_limited", ev.c.timestamp >= five, ev.c.timestamp <= now)
            .group_by(ev.c.source_ip)
            .order_by(desc("n"))
            .limit(10)
        )
    ]
    ib = tables.ip_blocks
    blocked = [
        {
            "ip": r.ip_masked or r.ip_hash,
            "reason": r.reason or "",
            "by": r.added_by or "",
            "until": r.expires_at.strftime("%Y-%m-%d %H:%M") if r.expires_at else "until removed",
            "token": r.ip_hash,
        }
        for r in conn.execute(
            select(ib)
            .where(or_(ib.c.expires_at.is_(None), ib.c.expires_at > now))
            .order_by(desc(ib.c.created_at))
            .limit(50)
        )
    ]
    last_minute = conn.execute(
        select(func.count()).where(fp.c.timestamp > now - timedelta(minutes=1), fp.c.timestamp <= now)
    ).scalar_one()
    from ticketguard.security.responses import active_global_limit

    budget = active_global_limit(conn, now) or settings.rate_limit_global
    return {
        "per_minute": per_minute,
        "top_ips": top_ips,
        "rate_limited": limited,
        "blocked": blocked,
        "global_used": int(last_minute),
        "global_budget": int(budget),
    }


def _realised(conn: Connection, since: datetime, now: datetime) -> dict[str, Any]:
    """Confusion counts of the decisions whose labels arrived since `since`, from the realised_hourly
    view (refreshed every 5 minutes with the other views): a few hundred rows, never the join itself."""
    statement = text(
        "SELECT flagged, is_fraud, SUM(n) AS n FROM realised_hourly "
        "WHERE hour >= :since AND hour <= :now GROUP BY flagged, is_fraud"
    ).bindparams(bindparam("since", type_=UTCDateTime), bindparam("now", type_=UTCDateTime))
    rows = conn.execute(statement, {"since": since.replace(minute=0, second=0, microsecond=0), "now": now})
    counts = {(bool(r.flagged), bool(r.is_fraud)): int(r.n or 0) for r in rows}
    tp, fp_ = counts.get((True, True), 0), counts.get((True, False), 0)
    fn, tn = counts.get((False, True), 0), counts.get((False, False), 0)
    return {
        "tp": tp,
        "fp": fp_,
        "fn": fn,
        "tn": tn,
        "labelled": tp + fp_ + fn + tn,
        "precision": tp / (tp + fp_) if tp + fp_ else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }


def model(conn: Connection, now: datetime) -> dict[str, Any]:
    """The live model, its evaluation metrics, realised precision/recall on labels that have arrived."""
    d, reg = tables.model_deployments, tables.model_registry
    live = conn.execute(
        select(d.c.model_version, d.c.deployed_at, d.c.action)
        .order_by(desc(d.c.deployed_at), desc(d.c.id))
        .limit(1)
    ).first()
    card = None
    if live is not None:
        row = conn.execute(
            select(reg.c.version, reg.c.created_at, reg.c.metrics, reg.c.n_rows, reg.c.n_fraud).where(
                reg.c.version == live.model_version
            )
        ).first()
        if row is not None:
            card = {
                "version": row.version,
                "created_at": row.created_at.isoformat(),
                "metrics": dict(row.metrics or {}),
                "n_rows": row.n_rows,
                "n_fraud": row.n_fraud,
            }
    versions = [
        r.version for r in conn.execute(select(reg.c.version).order_by(desc(reg.c.created_at)).limit(20))
    ]
    runs = tables.job_runs
    refreshed = conn.execute(
        select(runs.c.finished_at)
        .where(runs.c.job_name == "refresh-views", runs.c.status == "succeeded")
        .order_by(desc(runs.c.started_at))
        .limit(1)
    ).scalar()
    return {
        "realised_as_of": refreshed,
        "live": None
        if live is None
        else {"version": live.model_version, "since": live.deployed_at.isoformat(), "action": live.action},
        "card": card,
        "versions": versions,
        "realised": {
            "24h": _realised(conn, now - timedelta(days=1), now),
            "7d": _realised(conn, now - timedelta(days=7), now),
        },
        "drift": None,  # filled by the model-operations work (issue 13) when it lands
    }


def security(
    conn: Connection, now: datetime, *, severities: list[str] | None = None, limit: int = 50
) -> dict[str, Any]:
    """The latest security events (optionally of some severities) and the automated responses in force."""
    ev, sr = tables.security_events, tables.security_responses
    query = select(ev).where(ev.c.timestamp <= now, ev.c.timestamp >= now - timedelta(days=7))
    if severities:
        query = query.where(ev.c.severity.in_(severities))
    events = [
        {
            "time": r.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
            "type": r.event_type,
            "severity": r.severity or "",
            "source": r.source_ip or "",
            "user": r.user_id or "",
            "details": ", ".join(f"{k}={v}" for k, v in sorted((r.metadata or {}).items()))[:200],
        }
        for r in conn.execute(query.order_by(desc(ev.c.timestamp), desc(ev.c.id)).limit(limit))
    ]
    responses = [
        {
            "id": r.id,
            "rule": r.rule,
            "action": r.action,
            "target": mask_wallet(r.target) if r.action == "blacklist_wallet" else r.target,
            "since": r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            "until": r.expires_at.strftime("%Y-%m-%d %H:%M:%S") if r.expires_at else "until reverted",
        }
        for r in conn.execute(
            select(sr)
            .where(sr.c.reverted_at.is_(None), or_(sr.c.expires_at.is_(None), sr.c.expires_at > now))
            .order_by(desc(sr.c.created_at))
            .limit(100)
        )
    ]
    return {"events": events, "responses": responses}


def scheduler(conn: Connection) -> list[dict[str, Any]]:
    """The last run of each job (one indexed look-up per job name)."""
    from ticketguard.jobs.registry import JOBS

    runs = tables.job_runs
    out = []
    for name in JOBS:
        row = conn.execute(
            select(runs.c.status, runs.c.started_at, runs.c.finished_at, runs.c.error)
            .where(runs.c.job_name == name)
            .order_by(desc(runs.c.started_at))
            .limit(1)
        ).first()
        out.append(
            {
                "job": name,
                "status": row.status if row else "never run",
                "started": row.started_at.strftime("%Y-%m-%d %H:%M:%S") if row else "-",
                "finished": row.finished_at.strftime("%Y-%m-%d %H:%M:%S") if row and row.finished_at else "-",
                "error": (row.error or "")[:120] if row else "",
            }
        )
    return out


def database_ping(conn: Connection) -> None:
    conn.execute(text("SELECT 1"))
