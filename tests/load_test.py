"""The deployment guide's load test: ``locust -f tests/load_test.py --host=http://localhost:5001``.

Guide settings: 100 users, spawn rate 10, 5 minutes; expected p95 < 100 ms and 0 errors. Each simulated user
waits 1–3 s between requests (locust's convention) and scores a purchase with a fresh transaction_id.
Wallets, events and tickets come from ``TG_SAMPLES`` (a "wallet,event,ticket" CSV written by
benchmarks/bench_api.py from the database) so the online features read real history; without it, new random
wallets are used. A non-200 answer, or a 200 without the contract's fields, counts as a failure.

Not part of the test suite (it needs a running server); benchmarks/bench_api.py runs it headless.
"""

from __future__ import annotations

import csv
import os
import random
import uuid
from pathlib import Path

from locust import HttpUser, between, task

CONTRACT = {"transaction_id", "fraud_score", "decision", "confidence", "top_features", "model_version"}
DECISIONS = {"APPROVED", "REQUIRE_2FA", "MANUAL_REVIEW", "BLOCKED"}


def _samples() -> list[tuple[str, str, str]]:
    path = Path(os.environ.get("TG_SAMPLES", "/tmp/ticketguard-bench-samples.csv"))
    if not path.exists():
        return []
    with path.open() as f:
        return [(r[0], r[1], r[2]) for r in csv.reader(f) if len(r) >= 3]


SAMPLES = _samples()


def purchase() -> dict[str, object]:
    if SAMPLES:
        wallet, event, ticket = random.choice(SAMPLES)
    else:
        wallet = "0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
        event, ticket = "evt_load", f"evt_load-{uuid.uuid4().hex[:6]}"
    return {
        "transaction_id": f"locust-{uuid.uuid4().hex}",
        "wallet_address": wallet,
        "ticket_id": ticket,
        "event_id": event,
        "price_paid": round(random.uniform(20, 400), 2),
        "payment_method": random.choice(["card", "crypto", "paypal"]),
        "ip_address": f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}",
    }


class TicketBuyer(HttpUser):
    wait_time = between(1, 3)

    @task
    def score_purchase(self) -> None:
        with self.client.post(
            "/api/v1/ml/predict/fraud", json=purchase(), name="predict/fraud", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return
            body = response.json()
            missing = CONTRACT - body.keys()
            if missing or body["decision"] not in DECISIONS:
                response.failure(f"contract: missing {sorted(missing)}, decision {body.get('decision')}")
            else:
                response.success()
