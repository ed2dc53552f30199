"""A second benchmark that is not our simulator: "otherworld", a card-payments-style history whose fraud
mechanics were not written with ticketguard's features in mind — our pipeline against a plain baseline.

    .venv/bin/python benchmarks/otherworld.py                      # 400,000 transactions, seeds 1-8
    .venv/bin/python benchmarks/otherworld.py --transactions 100000 --seeds 1

The world (mapped onto our schema: customer → wallet_address, merchant → event_id, amount → price_paid;
no tickets, sellers, IPs, payment methods or locations — an integration that sends only the required
fields):

- customers with their own spending level and activity, each shopping at a few dozen merchants of its own
  region (Zipf popularity), with legitimate look-alikes: occasional large purchases (3-6× the customer's
  usual) and trips to another region's merchants;
- **merchant breaches**: a few merchants a week are breached for 10-20 days; 40 % of their transactions in
  that time are fraud (amounts as usual) — only delayed-label risk of the merchant sees it;
- **account takeover with card testing**: a compromised customer gets 2-4 tiny test payments (0.5-2.0)
  within an hour, then 2-6 purchases at 3-10× its usual amount over two days at merchants of other
  regions;
- **mule wallets**: wallets never seen before make 3-8 purchases of 150-600 within six hours at one or two
  merchants;
- labels arrive late: fraud after a lognormal delay (median 10 days, at least 2), legitimate after 60 days.

Both models see the same history and the same split (the split our pipeline's `train` makes: train and
validation before a 14-day gap, the last 21 days as test; training labels as known at the test start):

- **ours**: `ticketguard.ml.service.train_model` with default settings (feature catalogue, prequential
  selection, missing-field augmentation) — exactly what `ticketguard train` runs;
- **baseline**: XGBoost, 100 trees of depth 3 (learning rate 0.1, hist), on 15 textbook features computed
  here independently with pandas: amount, weekend, night, the customer's transaction count and mean amount
  over 1/7/30 days, the merchant's transaction count and fraud rate over 1/7/30 days ending 7 days before
  the transaction (labels known by then).

Reported on the test days: average precision (AP), AUC-ROC, and wallet precision@100 per day (each day,
wallets ranked by their highest score; share of the top 100 that made a fraudulent transaction that day;
mean over days). Results: docs/ml/otherworld.json and docs/ml/otherworld.png; docs/ml.md §8.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import average_precision_score, roc_auc_score

from ticketguard.config import Settings
from ticketguard.frames import EVENT_COLUMNS, LABEL_COLUMNS, TRANSACTION_COLUMNS, History, conform
from ticketguard.ml import metrics
from ticketguard.ml.dataset import _us
from ticketguard.ml.service import train_model

DOCS = Path(__file__).resolve().parent.parent / "docs" / "ml"
DAY_S = 86400.0
START = datetime(2026, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------------------ the world
def generate(transactions: int, seed: int, days: int = 150) -> History:
    """A labelled history of about ``transactions`` rows (see the module doc)."""
    rng = np.random.default_rng(seed)
    regions = 10
    n_customers = max(transactions // 55, 200)
    n_merchants = max(transactions // 200, 200)
    m_region = rng.integers(0, regions, n_merchants)
    m_pop = 1.0 / np.arange(1, n_merchants + 1) ** 0.8
    rng.shuffle(m_pop)
    c_region = rng.integers(0, regions, n_customers)
    c_mean = np.exp(rng.normal(3.4, 0.6, n_customers))
    c_rate = rng.gamma(2.0, 0.2, n_customers)  # transactions a day
    by_region = [np.flatnonzero(m_region == r) for r in range(regions)]

    # Legitimate transactions: a Poisson process per customer, at merchants of its region.
    counts = rng.poisson(c_rate * days)
    scale = transactions * 0.985 / max(counts.sum(), 1)
    counts = rng.poisson(c_rate * days * scale)
    cust = np.repeat(np.arange(n_customers), counts)
    n = len(cust)
    day = rng.random(n) * days
    hour = np.clip(rng.normal(14, 4, n), 0, 23.99) / 24.0
    t = np.floor(day) + hour
    amount = c_mean[cust] * np.exp(rng.normal(0, 0.35, n))
    big = rng.random(n) < 0.02
    amount[big] *= rng.uniform(3, 6, big.sum())
    travel = rng.random(n) < 0.03
    region = np.where(travel, rng.integers(0, regions, n), c_region[cust])
    merchant = np.empty(n, dtype=np.int64)
    for r in range(regions):
        rows = np.flatnonzero(region == r)
        pool = by_region[r]
        p = m_pop[pool] / m_pop[pool].sum()
        merchant[rows] = rng.choice(pool, len(rows), p=p)
    fraud = np.zeros(n, dtype=bool)
    pattern = np.full(n, "normal", dtype=object)
    pattern[big] = "big_purchase"
    pattern[travel] = "traveller"

    # Merchant breaches: 40 % of a breached merchant's transactions are fraud for 10-20 days.
    scale = transactions / 100_000
    for _ in range(int(days / 7 * scale) + 1):
        m = rng.choice(n_merchants, p=m_pop / m_pop.sum())
        start = rng.uniform(0, days - 5)
        end = start + rng.uniform(10, 20)
        hit = (merchant == m) & (t >= start) & (t < end) & (rng.random(n) < 0.4)
        fraud |= hit
        pattern[hit] = "merchant_breach"

    extra: list[dict[str, object]] = []
    # Account takeover with card testing.
    for _ in range(int(days * 0.6 * scale)):
        c = int(rng.integers(0, n_customers))
        t0 = rng.uniform(1, days - 2)
        for _i in range(int(rng.integers(2, 5))):
            extra.append(
                {
                    "c": c,
                    "t": t0 + rng.random() / 24,
                    "amount": rng.uniform(0.5, 2.0),
                    "m": int(rng.integers(0, n_merchants)),
                    "pattern": "card_testing",
                }
            )
        others = np.flatnonzero(m_region != c_region[c])
        for _i in range(int(rng.integers(2, 7))):
            extra.append(
                {
                    "c": c,
                    "t": t0 + 1 / 24 + rng.random() * 2,
                    "amount": c_mean[c] * rng.uniform(3, 10),
                    "m": int(rng.choice(others)),
                    "pattern": "account_takeover",
                }
            )
    # Mule wallets: never seen before, a burst of large purchases at one or two merchants.
    next_customer = n_customers
    for _ in range(int(days * 0.5 * scale)):
        t0 = rng.uniform(0, days - 0.3)
        shops = rng.choice(n_merchants, int(rng.integers(1, 3)), p=m_pop / m_pop.sum())
        for _i in range(int(rng.integers(3, 9))):
            extra.append(
                {
                    "c": next_customer,
                    "t": t0 + rng.random() / 4,
                    "amount": rng.uniform(150, 600),
                    "m": int(rng.choice(shops)),
                    "pattern": "mule",
                }
            )
        next_customer += 1
    ex = pd.DataFrame(extra)
    cust = np.concatenate([cust, ex["c"].to_numpy()])
    t = np.concatenate([t, ex["t"].to_numpy()])
    amount = np.concatenate([amount, ex["amount"].to_numpy()])
    merchant = np.concatenate([merchant, ex["m"].to_numpy()])
    fraud = np.concatenate([fraud, np.ones(len(ex), dtype=bool)])
    pattern = np.concatenate([pattern, ex["pattern"].to_numpy(dtype=object)])
    keep = (t >= 0) & (t < days)
    order = np.argsort(t[keep], kind="stable")
    cust, t, amount, merchant = cust[keep][order], t[keep][order], amount[keep][order], merchant[keep][order]
    fraud, pattern = fraud[keep][order], pattern[keep][order]
    m = len(t)
    ts = pd.to_datetime(START) + pd.to_timedelta(t * DAY_S, unit="s").round("us")
    tids = np.array([f"ow-{seed}-{i:08d}" for i in range(m)], dtype=object)
    wallets = np.array([f"0x{c:040x}" for c in range(next_customer)], dtype=object)
    tx = pd.DataFrame(
        {
            "transaction_id": tids,
            "wallet_address": wallets[cust],
            "event_id": np.char.add("m-", merchant.astype(str)).astype(object),
            "ticket_id": None,
            "price_paid": np.round(amount, 2),
            "payment_method": None,
            "is_resale": False,
            "status": "completed",
            "timestamp": ts,
            "seller_address": None,
            "ip_address": None,
            "country": None,
            "latitude": np.nan,
            "longitude": np.nan,
            "source": "import",
        }
    )
    delay = np.where(fraud, np.maximum(np.exp(rng.normal(np.log(10), 0.5, m)), 2.0), 60.0)
    labels = pd.DataFrame(
        {
            "transaction_id": tids,
            "is_fraud": fraud,
            "pattern": pattern,
            "source": "import",
            "labelled_at": ts + pd.to_timedelta(delay * DAY_S, unit="s").round("us"),
        }
    )
    return History(
        events=conform(pd.DataFrame(columns=list(EVENT_COLUMNS)), EVENT_COLUMNS),
        transactions=conform(tx, TRANSACTION_COLUMNS),
        labels=conform(labels, LABEL_COLUMNS),
    )


# ------------------------------------------------------------------------------------------ baseline
def textbook_features(history: History, delay_days: float = 7.0) -> pd.DataFrame:
    """The 15 textbook features, with pandas, independently of ticketguard's feature code."""
    tx = history.transactions[
        ["transaction_id", "wallet_address", "event_id", "price_paid", "timestamp"]
    ].copy()
    tx = tx.merge(
        history.labels[["transaction_id", "is_fraud", "labelled_at"]], on="transaction_id", how="left"
    )
    tx["row"] = np.arange(len(tx))
    ts = pd.to_datetime(tx["timestamp"], utc=True)
    out = pd.DataFrame(index=tx.index)
    out["amount"] = tx["price_paid"].astype(float)
    out["weekend"] = (ts.dt.day_of_week >= 5).astype(float)
    out["night"] = (ts.dt.hour < 6).astype(float)
    frame = tx.assign(ts=ts.dt.tz_localize(None)).sort_values(["wallet_address", "ts"], kind="stable")
    for days in (1, 7, 30):
        roll = frame.groupby("wallet_address").rolling(f"{days}D", on="ts", closed="left")["price_paid"]
        count = roll.count().to_numpy()
        mean = roll.mean().to_numpy()
        out.loc[frame.index, f"customer_n_{days}d"] = np.nan_to_num(count)
        out.loc[frame.index, f"customer_mean_{days}d"] = np.nan_to_num(mean)
    # Merchant risk: transactions in [t - delay - w, t - delay), and the frauds among them whose label was
    # known before t. A fraud counts for t in (max(ts + delay, labelled_at), ts + delay + w].
    frame = tx.assign(ts=ts.dt.tz_localize(None)).sort_values(["event_id", "ts"], kind="stable")
    t_ns = frame["ts"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    t_ns = t_ns - t_ns.min()
    lab = pd.to_datetime(frame["labelled_at"], utc=True).dt.tz_localize(None)
    lab_ns = lab.to_numpy().astype("datetime64[ns]").astype(np.int64) - frame["ts"].min().value
    is_fraud = frame["is_fraud"].fillna(False).to_numpy(dtype=bool)
    codes = pd.factorize(frame["event_id"])[0].astype(np.int64)
    d_ns = int(delay_days * DAY_S * 1e9)
    span = int(max(t_ns.max(), lab_ns.max()) + 40 * DAY_S * 1e9 + d_ns)

    def below(group: np.ndarray, value: np.ndarray, qg: np.ndarray, qv: np.ndarray) -> np.ndarray:
        keys = np.sort(group * span + value)
        return np.searchsorted(keys, qg * span + qv, side="left") - np.searchsorted(
            keys, qg * span, side="left"
        )

    for days in (1, 7, 30):
        w_ns = int(days * DAY_S * 1e9)
        n = below(codes, t_ns, codes, t_ns - d_ns) - below(codes, t_ns, codes, t_ns - d_ns - w_ns)
        f = is_fraud
        lower = np.maximum(t_ns[f] + d_ns, lab_ns[f])
        upper = t_ns[f] + d_ns + w_ns
        ok = lower < upper
        known = below(codes[f][ok], lower[ok], codes, t_ns) - below(codes[f][ok], upper[ok], codes, t_ns)
        out.loc[frame.index, f"merchant_n_{days}d"] = n
        out.loc[frame.index, f"merchant_risk_{days}d"] = np.where(n > 0, known / np.maximum(n, 1), 0.0)
    return out


# ------------------------------------------------------------------------------------------ evaluation
def wallet_precision_at_k(
    ts_us: np.ndarray, wallet: np.ndarray, scores: np.ndarray, y: np.ndarray, k: int = 100
) -> float:
    day = ts_us // int(DAY_S * 1_000_000)
    return float(metrics.top_k_per_day(day, wallet, scores, y, k)["precision_mean"])


def figures(y: np.ndarray, scores: np.ndarray, ts_us: np.ndarray, wallet: np.ndarray) -> dict[str, float]:
    return {
        "ap": float(average_precision_score(y, scores)),
        "auc_roc": float(roc_auc_score(y, scores)),
        "wallet_precision_at_100_per_day": wallet_precision_at_k(ts_us, wallet, scores, y, 100),
    }


def run_seed(transactions: int, seed: int, settings: Settings) -> dict[str, object]:
    started = time.perf_counter()
    history = generate(transactions, seed)
    generated = time.perf_counter() - started
    fraud_rate = float(history.labels["is_fraud"].mean())
    started = time.perf_counter()
    run = train_model(settings, history, source="otherworld")
    ours_s = time.perf_counter() - started
    data, parts = run.data, run.splits
    test = parts.test
    ours = figures(parts.y_test, run.test_scores, data.timestamp_us[test], data.wallet[test])

    started = time.perf_counter()
    x = textbook_features(history)
    deploy = _us(parts.plan.test_start)
    fit_rows = parts.train | parts.validation
    y_fit = data.labels_known_at(deploy)[fit_rows]
    booster = xgb.train(
        {
            "objective": "binary:logistic",
            "tree_method": "hist",
            "max_depth": 3,
            "eta": 0.1,
            "seed": settings.train_seed,
            "nthread": settings.train_nthread,
        },
        xgb.DMatrix(x[fit_rows].to_numpy(np.float32), label=y_fit, feature_names=list(x.columns)),
        num_boost_round=100,
    )
    base_scores = booster.inplace_predict(x[test].to_numpy(np.float32))
    baseline_s = time.perf_counter() - started
    baseline = figures(
        parts.y_test, np.asarray(base_scores, dtype=np.float64), data.timestamp_us[test], data.wallet[test]
    )
    patterns = history.labels.set_index("transaction_id").loc[data.transaction_id[test], "pattern"].to_numpy()
    per_pattern = {}
    for name in sorted(set(patterns)):
        rows = patterns == name
        per_pattern[str(name)] = {
            "rows": int(rows.sum()),
            "ours_flagged_at_0_4": float((run.test_scores[rows] > 0.4).mean()),
            "baseline_flagged_at_0_4": float((base_scores[rows] > 0.4).mean()),
        }
    return {
        "seed": seed,
        "transactions": len(history.transactions),
        "fraud_rate": fraud_rate,
        "test_rows": int(test.sum()),
        "test_fraud": int(parts.y_test.sum()),
        "ours": ours,
        "baseline": baseline,
        "ours_features_kept": len(run.card.feature_names),
        "ours_chosen": run.card.params["selection"]["chosen"],
        "per_pattern": per_pattern,
        "seconds": {"generate": generated, "ours_train": ours_s, "baseline": baseline_s},
    }


def plot(results: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["AP", "AUC-ROC", "wallet precision@100/day"]
    keys = ["ap", "auc_roc", "wallet_precision_at_100_per_day"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.38
    for i, (who, colour) in enumerate((("baseline", "#999999"), ("ours", "#1f77b4"))):
        means = [float(np.mean([r[who][k] for r in results])) for k in keys]  # type: ignore[index]
        xs = np.arange(len(keys)) + (i - 0.5) * width
        ax.bar(xs, means, width, label=who, color=colour)
        for xv, m in zip(xs, means, strict=True):
            ax.text(xv, m + 0.01, f"{m:.3f}", ha="center", fontsize=8)
    ax.set_xticks(np.arange(len(keys)), labels)
    ax.set_ylim(0, 1.1)
    ax.set_title(f"otherworld benchmark, mean of {len(results)} seed(s), test days")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=400_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--output", type=Path, default=DOCS / "otherworld.json")
    args = parser.parse_args()
    settings = Settings()
    load = os.getloadavg()
    results = []
    for seed in args.seeds:
        result = run_seed(args.transactions, seed, settings)
        print(json.dumps({k: result[k] for k in ("seed", "ours", "baseline", "seconds")}), flush=True)
        results.append(result)
    summary = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_before": [round(v, 2) for v in load],
        "transactions": args.transactions,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    plot(results, args.output.with_suffix(".png"))
    print(markdown(summary))
    print(f"wrote {args.output} and {args.output.with_suffix('.png')}")


def markdown(summary: dict[str, object]) -> str:
    """The docs/ml.md §8 table from otherworld.json."""
    results = summary["results"]
    assert isinstance(results, list)
    lines = [
        f"{summary['transactions']:,} generated transactions per seed; load average before the run "
        f"{summary['load_average_before'][0]:.2f} (2 cores shared with other work).",  # type: ignore[index]
        "",
        "| seed | test rows (fraud) | AP ours / baseline | AUC-ROC ours / baseline | "
        "wallet precision@100/day ours / baseline | ours chose | train s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        o, b = r["ours"], r["baseline"]
        lines.append(
            f"| {r['seed']} | {r['test_rows']:,} ({r['test_fraud']:,}) | {o['ap']:.3f} / {b['ap']:.3f} | "
            f"{o['auc_roc']:.3f} / {b['auc_roc']:.3f} | {o['wallet_precision_at_100_per_day']:.3f} / "
            f"{b['wallet_precision_at_100_per_day']:.3f} | {r['ours_chosen']}, {r['ours_features_kept']} "
            f"features | {r['seconds']['ours_train']:.0f} |"
        )
    keys = ("ap", "auc_roc", "wallet_precision_at_100_per_day")
    mean = {who: [float(np.mean([r[who][k] for r in results])) for k in keys] for who in ("ours", "baseline")}
    lines.append(
        f"| mean | | {mean['ours'][0]:.3f} / {mean['baseline'][0]:.3f} | {mean['ours'][1]:.3f} / "
        f"{mean['baseline'][1]:.3f} | {mean['ours'][2]:.3f} / {mean['baseline'][2]:.3f} | | |"
    )
    wins = [sum(r["ours"][k] > r["baseline"][k] for r in results) for k in keys]
    lines.append(
        f"| ours ahead on | | {wins[0]} of {len(results)} seeds | {wins[1]} of {len(results)} | "
        f"{wins[2]} of {len(results)} | | |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
