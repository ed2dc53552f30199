"""`ticketguard simulate → train → evaluate → models …` through the CLI, and training on an imported CSV
whose columns are named differently (--map)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ticketguard.cli import app
from ticketguard.simulate import SimulationConfig, simulate
from ticketguard.simulate.service import labelled_frame

SMALL = {
    "TRAIN_MAX_ROUNDS": "60",
    "TRAIN_EARLY_STOPPING_ROUNDS": "15",
    "TRAIN_LEARNING_RATE": "0.2",
    "TRAIN_MAX_DEPTH": "4",
    "TRAIN_SCALE_POS_WEIGHT_OPTIONS": "[1, 8]",
    "EVAL_BOOTSTRAP_SAMPLES": "20",
}


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": db_url, "DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200", **SMALL}


def as_json(output: str) -> dict:  # type: ignore[type-arg]
    return json.loads(output[output.index("{") :])  # stderr (progress) comes first in the captured output


def run(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == code, f"{args} exited {result.exit_code}:\n{result.output}"
    return result.output


def test_simulate_train_evaluate_promote_rollback(env: dict[str, str], tmp_path: Path) -> None:
    run(env, "simulate", "--transactions", "6000", "--seed", "3")
    output = run(
        env, "train", "--output", str(tmp_path / "out" / "fraud_model_v1.2.3.ubj"), "--version", "v1.2.3"
    )
    assert "test auc_roc" in output
    assert (tmp_path / "out" / "fraud_model_v1.2.3.metadata.json").exists()
    assert (tmp_path / "data" / "models" / "v1.2.3" / "model.ubj").exists()

    output = run(env, "evaluate", "--model", "v1.2.3")
    report = tmp_path / "data" / "reports" / "v1.2.3"
    numbers = json.loads((report / "metrics.json").read_text())
    assert {"auc_roc", "auc_pr", "f1", "detection_at_fpr_2pct", "precision_at_90_recall"} <= set(
        numbers["metrics"]
    )
    assert set(numbers["decision_thresholds"]) == {"REQUIRE_2FA", "MANUAL_REVIEW", "BLOCKED"}
    assert "normal" in numbers["patterns"]
    assert sum(p["fraud"] for p in numbers["patterns"].values()) == numbers["fraud"]
    assert numbers["top_k_per_day"]["k"] == 50
    for plot in ("roc", "pr", "scores", "calibration", "shap"):
        assert (report / f"{plot}.png").stat().st_size > 1000
    assert "![shap](shap.png)" in (report / "report.md").read_text()
    # The exported file evaluates the same way.
    run(
        env,
        "evaluate",
        "--model",
        str(tmp_path / "out" / "fraud_model_v1.2.3.ubj"),
        "--report-dir",
        str(tmp_path / "file-report"),
    )
    assert (
        json.loads((tmp_path / "file-report" / "metrics.json").read_text())["metrics"] == numbers["metrics"]
    )

    run(env, "models", "promote", "v1.2.3")
    run(env, "train", "--version", "v1.2.4", "--promote")
    listed = {
        line.split("│")[1].strip(): line for line in run(env, "models", "list").splitlines() if "│" in line
    }
    assert "live" in listed["v1.2.4"]
    assert "live" not in listed["v1.2.3"]
    assert "rolled back from v1.2.4" in run(env, "models", "rollback", "--reason", "test")
    shown = as_json(run(env, "models", "show", "v1.2.3"))
    assert shown["live"] is True
    # v1.2.3's own features (what it kept), not v1.2.4's: compared with the file exported at its training.
    # (Not a fixed name: `simulate` ends its history now, so which features a small run keeps depends on
    # the time of day the day-aligned split falls at.)
    exported = json.loads((tmp_path / "out" / "fraud_model_v1.2.3.metadata.json").read_text())
    assert shown["feature_names"] == exported["feature_names"]
    assert [d["action"] for d in shown["deployments"]] == ["promote", "rollback"]

    gate = as_json(run(env, "train", "--auto-deploy"))
    assert gate["live_before"] == "v1.2.3"
    assert "candidate_holdout_aucpr" in gate
    assert gate["promoted"] == (gate["candidate_holdout_aucpr"] > gate["live_holdout_aucpr"])

    assert "never pickled" in run(env, "train", "--output", str(tmp_path / "m.pkl"), code=1)
    assert "no model version 'nope'" in run(env, "evaluate", "--model", "nope", code=1)


def test_train_on_an_imported_csv_with_other_column_names(env: dict[str, str], tmp_path: Path) -> None:
    start = (datetime.now(UTC) - timedelta(days=200)).replace(hour=0, minute=0, second=0, microsecond=0)
    history = simulate(SimulationConfig(transactions=6000, seed=4, start=start, fraud_rate=0.05))
    renamed = {
        "transaction_id": "OrderRef",
        "wallet_address": "Buyer",
        "price_paid": "Amount",
        "timestamp": "CreatedAt",
        "is_fraud": "Chargeback",
        "seller_address": "Seller",
    }
    frame = labelled_frame(history).rename(columns=renamed)
    csv = tmp_path / "platform_export.csv"
    frame.to_csv(csv, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    events = tmp_path / "events.csv"
    history.events.to_csv(events, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    maps = [arg for theirs, ours in renamed.items() for arg in ("--map", f"{ours}={theirs}")]

    refused = run(env, "train", "--data", str(csv), "--events", str(events), "--version", "f0", code=1)
    assert "transaction_id" in refused  # without the mapping the required columns are missing

    output = run(env, "train", "--data", str(csv), "--events", str(events), *maps, "--version", "f1")
    assert "model f1 (file platform_export.csv)" in output
    run(env, "evaluate", "--model", "f1", "--data", str(csv), "--events", str(events), *maps)
    numbers = json.loads((tmp_path / "data" / "reports" / "f1" / "metrics.json").read_text())
    assert numbers["rows"] > 500
    assert numbers["data"] == "file platform_export.csv"
    assert pd.notna(numbers["metrics"]["auc_roc"]["value"])
