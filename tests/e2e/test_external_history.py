"""Issue 13: bringing one's own history works the first time. A small file shaped like the public simulated
card-transaction history a user imported (integer customer and terminal ids, amounts with float noise and
some zeros, naive timestamps, 0/1 labels without a label time) goes through `ticketguard import`, `train`
and `evaluate` with the documented flags only — and `train/evaluate --data` read it with the same flags."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ticketguard.cli import app
from ticketguard.wallets import opaque_wallet

SMALL = {
    "TRAIN_MAX_ROUNDS": "60",
    "TRAIN_EARLY_STOPPING_ROUNDS": "15",
    "TRAIN_LEARNING_RATE": "0.2",
    "TRAIN_MAX_DEPTH": "4",
    "TRAIN_SCALE_POS_WEIGHT_OPTIONS": "[1, 8]",
    "EVAL_BOOTSTRAP_SAMPLES": "20",
}
MAP = {
    "TRANSACTION_ID": "transaction_id",
    "TX_DATETIME": "timestamp",
    "CUSTOMER_ID": "wallet_address",
    "TERMINAL_ID": "event_id",
    "TX_AMOUNT": "price_paid",
    "TX_FRAUD": "is_fraud",
}
DAYS = 84


def card_history(path: Path, *, seed: int = 3, per_day: int = 50) -> pd.DataFrame:
    """Customers buy at terminals; from day 10 on, a few customers are compromised for a few days each and
    their transactions are frauds with large amounts; some terminals are compromised too (every
    transaction there for a week is fraud). Amounts carry float noise (x * 1.1 written with repr), 2 % are
    free (0.00). Timestamps are naive (no offset), as the public file writes them."""
    rng = np.random.default_rng(seed)
    start = (datetime.now(UTC) - timedelta(days=DAYS + 2)).replace(hour=0, minute=0, second=0, microsecond=0)
    n = DAYS * per_day
    day = np.repeat(np.arange(DAYS), per_day)
    seconds = rng.integers(0, 86_400, n)
    customer = rng.integers(0, 400, n)
    terminal = rng.integers(0, 200, n)
    amount = np.round(rng.gamma(2.0, 25.0, n), 2)
    fraud = np.zeros(n, dtype=int)
    for d0 in range(10, DAYS, 4):  # compromised customers: 14 days, large amounts
        victims = rng.choice(400, 3, replace=False)
        hit = np.isin(customer, victims) & (day >= d0) & (day < d0 + 14) & (rng.random(n) < 0.6)
        fraud[hit] = 1
        amount[hit] = np.round(amount[hit] * 4 + 150, 2)
    for d0 in range(10, DAYS, 7):  # compromised terminals: a week
        bad = rng.choice(200, 2, replace=False)
        fraud[np.isin(terminal, bad) & (day >= d0) & (day < d0 + 7)] = 1
    noisy = amount * 1.1 / 1.1  # float arithmetic as an export would do it: 85.64999999999999 and the like
    text = [repr(float(a)) for a in noisy]
    text = [t if rng.random() > 0.02 else "0.00" for t in text]
    order = np.lexsort((seconds, day))
    frame = pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(n)[order],
            "TX_DATETIME": [
                (start + timedelta(days=int(d), seconds=int(s))).strftime("%Y-%m-%d %H:%M:%S")
                for d, s in zip(day[order], seconds[order], strict=True)
            ],
            "CUSTOMER_ID": customer[order],
            "TERMINAL_ID": terminal[order],
            "TX_AMOUNT": np.array(text, dtype=object)[order],
            "TX_TIME_SECONDS": (day * 86_400 + seconds)[order],
            "TX_FRAUD": fraud[order],
        }
    )
    frame.to_csv(path, index=False)
    return frame


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": db_url, "DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200", **SMALL}


def run(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == code, f"{args} exited {result.exit_code}:\n{result.output}"
    return result.output


def test_import_train_evaluate_an_external_card_history_first_time(
    env: dict[str, str], tmp_path: Path
) -> None:
    csv = tmp_path / "transactions.csv"
    frame = card_history(csv)
    noisy = sum(len(a.split(".")[-1]) > 8 for a in frame["TX_AMOUNT"] if "." in a)
    assert noisy > 100  # the file really has float noise
    assert (frame["TX_AMOUNT"] == "0.00").sum() > 20
    maps = [arg for theirs, ours in MAP.items() for arg in ("--map", f"{theirs}={ours}")]

    # As documented (docs/import.md): customer ids → --opaque-ids, naive timestamps → --timezone.
    output = run(
        env,
        "import",
        str(csv),
        *maps,
        "--opaque-ids",
        "--timezone",
        "UTC",
        "--id-map",
        str(tmp_path / "ids.csv"),
    )
    assert re.search(rf"transactions written\s+│\s+{len(frame):,} │", output), output
    assert "amount(s) had more than 8 decimal places" in output
    assert "TX_TIME_SECONDS" in output  # listed as ignored
    ids = pd.read_csv(tmp_path / "ids.csv", dtype=str)
    assert ids.loc[0, "wallet_address"] == opaque_wallet(ids.loc[0, "id"])

    output = run(env, "train", "--version", "ext-1")
    assert "test auc_roc" in output
    output = run(env, "evaluate", "--model", "ext-1")
    report = tmp_path / "data" / "reports" / "ext-1"
    numbers = json.loads((report / "metrics.json").read_text())
    assert numbers["metrics"]["auc_roc"]["value"] > 0.6
    assert numbers["wallet_precision_at_k"]["k"] == 100
    assert numbers["wallet_precision_at_k"]["days"] == 21  # whole UTC days: the default test days
    rows = pd.read_parquet(report / "scores.parquet")
    assert len(rows) == numbers["rows"]
    assert numbers["evaluation window"].split(" – ")[0].endswith("T00:00:00+00:00")  # a UTC midnight
    assert set(rows["wallet"]) <= set(ids["wallet_address"])
    assert rows["event"].str.fullmatch(r"\d+").all()  # terminal ids are events, kept as written

    # The same file straight into train/evaluate --data, with the same reading flags (issue 13: --timezone
    # was missing there) and a chosen test window.
    last_day = pd.to_datetime(frame["TX_DATETIME"]).max().date()
    test_from = (last_day - timedelta(days=13)).isoformat()
    refused = run(env, "train", "--data", str(csv), *maps, "--opaque-ids", "--version", "ext-0", code=1)
    assert "--timezone" in refused
    output = run(
        env,
        "train",
        "--data",
        str(csv),
        *maps,
        "--opaque-ids",
        "--timezone",
        "UTC",
        "--test-from",
        test_from,
        "--version",
        "ext-2",
    )
    assert "model ext-2 (file transactions.csv)" in output
    output = run(
        env,
        "evaluate",
        "--model",
        "ext-2",
        "--data",
        str(csv),
        *maps,
        "--opaque-ids",
        "--timezone",
        "UTC",
        "--top-k",
        "20",
    )
    numbers = json.loads((tmp_path / "data" / "reports" / "ext-2" / "metrics.json").read_text())
    assert numbers["wallet_precision_at_k"]["k"] == 20
    assert numbers["wallet_precision_at_k"]["days"] == 14
    assert numbers["evaluation window"].startswith(f"{test_from}T00:00:00+00:00")
