"""`ticketguard alerts export --prometheus`: the committed files are what the code writes, promtool accepts
the rules (where it is installed; under CI it must be), and every rule and panel names a metric the API
really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from ci_gate import unavailable
from ticketguard.alerts.export import ALERTS, grafana_dashboard, prometheus_rules, write_prometheus

ROOT = Path(__file__).resolve().parents[2]
API_METRICS = (ROOT / "src/ticketguard/api/metrics.py").read_text()


def test_committed_files_are_the_export(tmp_path: Path) -> None:
    written = write_prometheus(tmp_path)
    for path in written:
        committed = ROOT / "deploy/prometheus" / path.name
        assert committed.read_text() == path.read_text(), (
            f"run `ticketguard alerts export --prometheus` ({path.name})"
        )


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool", "not installed (Debian package prometheus; .ci/run installs it)")
    rules, _ = write_prometheus(tmp_path)
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_rules_load_and_name_only_metrics_the_api_exports() -> None:
    loaded = yaml.safe_load(yaml.safe_dump(prometheus_rules()))
    rules = loaded["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == [a.name for a in ALERTS]
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
        assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in {"critical", "high", "medium", "low", "info"}
        for metric in re.findall(r"(ticketguard_[a-z_]+?)(?:_bucket|_count|_sum)?\{", rule["expr"]):
            assert f'"{metric}"' in API_METRICS, (
                f"{rule['alert']} uses {metric}, which api/metrics.py does not export"
            )


def test_dashboard_panels_plot_each_alert_with_its_threshold() -> None:
    dashboard = json.loads(json.dumps(grafana_dashboard()))
    titles = [p["title"] for p in dashboard["panels"]]
    for alert in ALERTS[:-1]:
        assert any(alert.name in t for t in titles)
    for panel in dashboard["panels"]:
        assert panel["targets"][0]["expr"]
        assert ">" not in panel["targets"][0]["expr"]
