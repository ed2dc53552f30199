"""What issue 11's hardening adds to the scoring path, per request: the strict JSON parse (against the
standard library's plain `json.loads`, which FastAPI used), the wallet canonicalisation (already canonical,
short, EIP-55 checksummed), and the outage log's `ok()` while up.

    .venv/bin/python benchmarks/bench_hot_path_hardening.py [--json docs/threats/bench_hot_path.json]

Best of 7 repeats of timeit loops; microseconds per call.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import timeit
from datetime import UTC, datetime
from pathlib import Path

from eth_utils import to_checksum_address

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from scoring_fixtures import request_body

from ticketguard.api.body import strict_loads
from ticketguard.kit.outage import OutageLog
from ticketguard.wallets import canonical_wallet


def per_call_us(fn: object, number: int) -> float:
    timer = timeit.Timer(fn)  # type: ignore[arg-type]
    return min(timer.repeat(repeat=7, number=number)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    single = json.dumps(request_body(ip_address="203.0.113.9", payment_method="card_x")).encode()
    batch = json.dumps({"transactions": [request_body() for _ in range(100)]}).encode()
    canonical = "0x" + "ab" * 20
    short = "0x742d35Cc6634C0532925a3b844Bc9e7595f0bEb"
    checksummed = to_checksum_address(canonical)
    outage = OutageLog(logging.getLogger("bench"), "database")
    rows = {
        "json.loads, single request (before)": per_call_us(lambda: json.loads(single), 20_000),
        "strict_loads, single request (after)": per_call_us(lambda: strict_loads(single), 20_000),
        "json.loads, batch of 100 (before)": per_call_us(lambda: json.loads(batch), 500),
        "strict_loads, batch of 100 (after)": per_call_us(lambda: strict_loads(batch), 500),
        "canonical_wallet, already canonical": per_call_us(lambda: canonical_wallet(canonical), 200_000),
        "canonical_wallet, 39-digit mixed case (guide)": per_call_us(
            lambda: canonical_wallet(short), 100_000
        ),
        "canonical_wallet, EIP-55 checksummed (cached)": per_call_us(
            lambda: canonical_wallet(checksummed), 100_000
        ),
        "OutageLog.ok() while up": per_call_us(outage.ok, 500_000),
    }
    width = max(map(len, rows))
    for name, us in rows.items():
        print(f"{name:<{width}}  {us:8.3f} µs")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "python": platform.python_version(),
                    "single_body_bytes": len(single),
                    "batch_body_bytes": len(batch),
                    "microseconds_per_call": {k: round(v, 3) for k, v in rows.items()},
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
