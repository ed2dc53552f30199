"""The console's section queries on both dialects, against rows whose answers are known: the KPI hour
against the previous one, the score bins, the high-risk feed, top IPs, realised precision/recall from the
realised_hourly view, the severity filter, the scheduler's last runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, insert

from ticketguard import tables
from ticketguard.config import Settings
from ticketguard.dashboard import queries
from ticketguard.views import refresh_views

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _seed(engine: Engine) -> None:
    txs, preds, labels = [], [], []
    plan = (
        # (minutes ago, decision, score, ip, label)
        [(10 + i, "APPROVED", 0.1, "198.51.100.1", None) for i in range(6)]
        + [(3, "BLOCKED", 0.95, "198.51.100.2", True), (4, "BLOCKED", 0.91, "198.51.100.2", False)]
        + [(20, "MANUAL_REVIEW", 0.7, "198.51.100.3", True), (30, "REQUIRE_2FA", 0.5, None, False)]
        + [(70 + i, "APPROVED", 0.05, None, False) for i in range(5)]  # the previous hour
    )
    for i, (ago, decision, score, ip, label) in enumerate(plan):
        at = NOW - timedelta(minutes=ago)
        tid = f"q-{i}"
        txs.append(
            {
                "transaction_id": tid,
                "wallet_address": "0x" + f"{i + 1:040x}",
                "event_id": "e1",
                "price_paid": Decimal("10.00"),
                "timestamp": at,
                "ip_address": ip,
                "status": "blocked" if decision == "BLOCKED" else "approved",
            }
        )
        preds.append(
            {
                "transaction_id": tid,
                "fraud_score": score,
                "decision": decision,
                "timestamp": at,
                "latency_ms": 10.0 + i,
                "reasons": [f"reason {i}"],
                "top_features": [],
                "features": {"f": i},
                "model_version": "m1",
                "request_hash": "0" * 64,
            }
        )
        if label is not None:
            labels.append(
                {
                    "transaction_id": tid,
                    "is_fraud": label,
                    "source": "chargeback",
                    "labelled_at": NOW - timedelta(hours=2),
                }
            )
    with engine.begin() as conn:
        conn.execute(insert(tables.transactions), txs)
        conn.execute(insert(tables.fraud_predictions), preds)
        conn.execute(insert(tables.fraud_labels), labels)
        conn.execute(
            insert(tables.security_events),
            [
                {
                    "event_type": "rate_limited",
                    "severity": "low",
                    "source_ip": "ip:aa",
                    "metadata": {},
                    "timestamp": NOW - timedelta(minutes=1),
                },
                {
                    "event_type": "mfa_failures",
                    "severity": "critical",
                    "source_ip": "ip:bb",
                    "metadata": {"failures": 3},
                    "timestamp": NOW - timedelta(minutes=2),
                },
            ],
        )
        conn.execute(
            insert(tables.job_runs),
            [
                {
                    "job_name": "etl",
                    "trigger": "schedule",
                    "status": "failed",
                    "started_at": NOW - timedelta(hours=1),
                    "error": "rpc down",
                }
            ],
        )


def test_section_queries_answer_what_the_rows_say(engine: Engine) -> None:
    _seed(engine)
    refresh_views(engine, ("realised_hourly",), now=NOW)
    settings = Settings(database_url=str(engine.url), _env_file=None)  # type: ignore[call-arg]
    with engine.connect() as conn:
        cards = {c["key"]: c for c in queries.kpis(conn, NOW, settings)["cards"]}
        assert cards["transactions"]["value"] == 10
        assert cards["transactions"]["change"] == (10 - 5) / 5
        assert cards["transactions"]["ok"] is False  # +100 % is outside ±50 %
        assert cards["block_rate"]["value"] == 0.2
        assert cards["block_rate"]["ok"] is False  # target ≤ 3 %
        assert cards["revenue"]["value"] == 80.0  # the two blocked sales are not revenue
        assert 10.0 <= cards["p95_ms"]["value"] <= 19.0

        fraud = queries.fraud(conn, NOW)
        assert fraud["scored"] == 10
        assert fraud["bins"][2] == 6  # 0.10 → bin 2 of 20
        assert fraud["bins"][19] == 1  # 0.95
        assert [r["decision"] for r in fraud["latest"][:2]] == ["BLOCKED", "BLOCKED"]
        assert fraud["latest"][0]["top_reason"] == "reason 6"

        traffic = queries.traffic(conn, NOW, settings)
        assert traffic["top_ips"] == [{"ip": "198.51.100.x", "requests": 2}]  # masked; within 5 minutes
        assert traffic["rate_limited"] == [{"ip": "ip:aa", "refusals": 1}]
        assert traffic["global_used"] == 0
        assert traffic["global_budget"] == settings.rate_limit_global

        realised = queries.model(conn, NOW)["realised"]["24h"]
        # flagged: BLOCKED (fraud), BLOCKED (legit), MANUAL_REVIEW (fraud); not flagged: 2FA, 5 approved
        assert (realised["tp"], realised["fp"], realised["fn"], realised["tn"]) == (2, 1, 0, 6)
        assert realised["precision"] == 2 / 3
        assert realised["recall"] == 1.0

        critical = queries.security(conn, NOW, severities=["critical"])["events"]
        assert [e["type"] for e in critical] == ["mfa_failures"]
        assert len(queries.security(conn, NOW)["events"]) == 2

        jobs = {j["job"]: j for j in queries.scheduler(conn)}
        assert jobs["etl"]["status"] == "failed"
        assert jobs["retention"]["status"] == "never run"

        detail = queries.decision_detail(conn, "q-6")
        assert detail is not None
        assert detail["features"] == {"f": 6}
        assert detail["label"] == {"is_fraud": True, "source": "chargeback"}
        assert queries.decision_detail(conn, "nope") is None


def test_empty_database_gives_empty_sections_not_errors(engine: Engine) -> None:
    settings = Settings(database_url=str(engine.url), _env_file=None)  # type: ignore[call-arg]
    with engine.connect() as conn:
        assert queries.kpis(conn, NOW, settings)["empty"] is True
        assert queries.fraud(conn, NOW)["latest"] == []
        assert queries.traffic(conn, NOW, settings)["per_minute"] == []
        model = queries.model(conn, NOW)
        assert model["live"] is None
        assert model["realised"]["7d"]["labelled"] == 0
        assert queries.security(conn, NOW) == {"events": [], "responses": []}
