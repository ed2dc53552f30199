"""Load for the smoke test: concurrent scoring requests through nginx for a while; optionally a command (the
SIGTERM of one API container) fired part-way. Prints a JSON summary and writes the ids answered 200.

    python3 deploy/smoke_load.py --url https://localhost:8443 --ca tls.crt --api-key KEY \\
        --seconds 12 --concurrency 8 --at 4 --command "docker stop -t 30 CONTAINER" --ok-ids ok.txt

Standard library and httpx only. Every request has a fresh transaction_id with the run's prefix.
"""

from __future__ import annotations

import argparse
import collections
import json
import shlex
import subprocess
import threading
import time
import uuid

import httpx


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", default=None)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--at", type=float, default=None, help="seconds into the run to fire --command")
    parser.add_argument("--command", default=None)
    parser.add_argument("--prefix", default=f"smoke-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--ok-ids", required=True)
    args = parser.parse_args()

    statuses: collections.Counter[str] = collections.Counter()
    ok_ids: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + args.seconds
    headers = {"X-API-Key": args.api_key} if args.api_key else {}

    def run(n: int) -> None:
        with httpx.Client(base_url=args.url, verify=args.ca or True, timeout=15, headers=headers) as client:
            i = 0
            while time.monotonic() < stop_at:
                i += 1
                tid = f"{args.prefix}-{n}-{i}"
                body = {
                    "transaction_id": tid,
                    "wallet_address": "0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8],
                    "ticket_id": f"evt_{n:03d}-{i:06d}",
                    "price_paid": "50.00",
                }
                detail = ""
                try:
                    response = client.post("/api/v1/ml/predict/fraud", json=body)
                    key = str(response.status_code)
                    if key != "200":
                        detail = response.text[:300]
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                with lock:
                    statuses[key] += 1
                    if key == "200":
                        ok_ids.append(tid)
                    elif len(failures) < 20:
                        failures.append(f"{tid}: {key} {detail}".strip())

    threads = [threading.Thread(target=run, args=(n,)) for n in range(args.concurrency)]
    started = time.monotonic()
    for t in threads:
        t.start()
    fired: dict[str, object] = {}
    if args.command and args.at is not None:
        time.sleep(max(0.0, args.at))
        fired["at_s"] = round(time.monotonic() - started, 2)
        fired["command"] = args.command
        proc = subprocess.Popen(shlex.split(args.command), stdout=subprocess.DEVNULL)  # noqa: S603 - ours

        def timed() -> None:
            fired["exit_code"] = proc.wait()
            fired["done_s"] = round(time.monotonic() - started, 2)

        watcher = threading.Thread(target=timed)
        watcher.start()
    for t in threads:
        t.join()
    if args.command and args.at is not None:
        watcher.join(60)
    with open(args.ok_ids, "w") as f:
        f.write("\n".join(ok_ids) + "\n")
    total = sum(statuses.values())
    summary = {
        "requests": total,
        "seconds": round(time.monotonic() - started, 1),
        "by_status": dict(statuses),
        "failed": total - statuses["200"],
        "failures": failures,
        "fired": fired,
        "prefix": args.prefix,
    }
    print(json.dumps(summary, indent=2))
    return 0 if summary["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
