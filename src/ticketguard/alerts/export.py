"""`ticketguard alerts export --prometheus`: the alerts expressed over the metrics the API already exports
(`api/metrics.py`: ``ticketguard_request_seconds``, ``ticketguard_decisions_total``), as Prometheus
alerting rules, plus a Grafana dashboard of the same expressions — for teams whose on-call lives in
Prometheus/Alertmanager.

Prometheus sees the API's answers, not the database: it has no scores (fraud_rate becomes the BLOCKED
share, block_rate's equivalent), no failed admin log-ins, no review queue. Those stay with
`ticketguard worker`'s own evaluation (docs/alerts.md says which is which).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SCORING = 'route=~"/api/v1/ml/.*"'
FRESH = 'replayed="false"'


@dataclass(frozen=True)
class PromAlert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    panel: str  # Grafana panel title
    unit: str  # Grafana unit


def _share(selector: str, window: str) -> str:
    return (
        f"sum(rate(ticketguard_decisions_total{{{selector},{FRESH}}}[{window}]))"
        f" / sum(rate(ticketguard_decisions_total{{{FRESH}}}[{window}]))"
    )


def _latency(q: float, window: str) -> str:
    buckets = f"rate(ticketguard_request_seconds_bucket{{{SCORING}}}[{window}])"
    return f"histogram_quantile({q}, sum by (le) ({buckets}))"


ALERTS: tuple[PromAlert, ...] = (
    PromAlert(
        "TicketguardFraudRateSpike",
        _share('decision="BLOCKED"', "10m") + " > 0.03",
        "10m",
        "high",
        "Over 3% of answers BLOCKED for 10 minutes (the guide's fraud_rate_spike, from the API's counters)",
        "BLOCKED share",
        "percentunit",
    ),
    PromAlert(
        "TicketguardApiLatencyHigh",
        _latency(0.95, "5m") + " > 0.1",
        "5m",
        "medium",
        "Scoring p95 above 100 ms for 5 minutes (the guide's api_latency_high)",
        "scoring p95 latency",
        "s",
    ),
    PromAlert(
        "TicketguardDegradedAnswers",
        _share('degraded="true"', "5m") + " > 0.05",
        "5m",
        "high",
        "More than 5% of answers degraded (decided by policy, not by the model)",
        "degraded share",
        "percentunit",
    ),
    PromAlert(
        "TicketguardErrorRate",
        f'sum(rate(ticketguard_request_seconds_count{{{SCORING},status=~"5.."}}[5m]))'
        f" / sum(rate(ticketguard_request_seconds_count{{{SCORING}}}[5m])) > 0.01",
        "5m",
        "high",
        "More than 1% of scoring requests answered 5xx",
        "5xx share",
        "percentunit",
    ),
    PromAlert(
        "TicketguardApiDown",
        'up{job="ticketguard-api"} == 0',
        "1m",
        "critical",
        "Prometheus cannot scrape the scoring API",
        "API up",
        "none",
    ),
)


def prometheus_rules() -> dict[str, Any]:
    return {
        "groups": [
            {
                "name": "ticketguard",
                "rules": [
                    {
                        "alert": a.name,
                        "expr": a.expr,
                        "for": a.for_,
                        "labels": {"severity": a.severity, "service": "ticketguard"},
                        "annotations": {"summary": a.summary},
                    }
                    for a in ALERTS
                ],
            }
        ]
    }


def _timeseries(
    title: str, x: int, y: int, targets: list[dict[str, Any]], defaults: dict[str, Any]
) -> dict[str, Any]:
    """One 12×8 Grafana time-series panel on the dashboard's Prometheus data source."""
    return {
        "type": "timeseries",
        "title": title,
        "gridPos": {"x": x, "y": y, "w": 12, "h": 8},
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
    }


def grafana_dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = [
        _timeseries(
            "scoring requests/s by status",
            0,
            0,
            [
                {
                    "expr": f"sum by (status) (rate(ticketguard_request_seconds_count{{{SCORING}}}[1m]))",
                    "legendFormat": "{{status}}",
                    "refId": "A",
                }
            ],
            {"unit": "reqps"},
        ),
        _timeseries(
            "decisions/s",
            12,
            0,
            [
                {
                    "expr": f"sum by (decision) (rate(ticketguard_decisions_total{{{FRESH}}}[1m]))",
                    "legendFormat": "{{decision}}",
                    "refId": "A",
                }
            ],
            {"unit": "ops"},
        ),
    ]
    for i, a in enumerate(ALERTS[:-1]):
        threshold = float(a.expr.rsplit(">", 1)[1])
        panels.append(
            _timeseries(
                f"{a.panel} (alert {a.name})",
                (i % 2) * 12,
                8 + (i // 2) * 8,
                [{"expr": a.expr.rsplit(">", 1)[0].strip(), "refId": "A"}],
                {
                    "unit": a.unit,
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [
                            {"color": "green", "value": None},
                            {"color": "red", "value": threshold},
                        ],
                    },
                    "custom": {"thresholdsStyle": {"mode": "line"}},
                },
            )
        )
    return {
        "title": "ticketguard scoring API",
        "uid": "ticketguard-api",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["ticketguard"],
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}
            ]
        },
        "panels": panels,
    }


def write_prometheus(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rules = out_dir / "ticketguard-alerts.yml"
    header = "# Generated by `ticketguard alerts export --prometheus` (src/ticketguard/alerts/export.py).\n"
    rules.write_text(
        header + yaml.safe_dump(prometheus_rules(), sort_keys=False, width=200), encoding="utf-8"
    )
    dashboard = out_dir / "ticketguard-dashboard.json"
    dashboard.write_text(json.dumps(grafana_dashboard(), indent=2) + "\n", encoding="utf-8")
    return [rules, dashboard]
