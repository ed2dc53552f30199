"""examples/backend end to end: the example ticketing backend (its own uvicorn process) in front of a real
ticketguard API (uvicorn, PostgreSQL), its /buy limits in a real Redis, both started here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from client_fixtures import ticketguard_api
from scoring_fixtures import free_port, wallet
from sqlalchemy import select

from ticketguard import tables
from ticketguard.kit.db import make_engine

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "backend"
BUY = "/api/tickets/buy"

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@contextmanager
def backend(ticketguard_url: str, redis_url: str, **env: str) -> Iterator[httpx.Client]:
    port = free_port()
    environ = dict(
        os.environ,
        TICKETGUARD_URL=ticketguard_url,
        REDIS_URL=redis_url,
        TRUSTED_PROXIES="127.0.0.1",  # the test plays the load balancer: X-Forwarded-For is the buyer
        TICKETGUARD_BUDGET_SECONDS="1.0",
        **env,
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(EXAMPLE),
            "app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "example backend did not start:\n" + proc.communicate(timeout=5)[0].decode()
                )
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=10) as client:
            yield client
    finally:
        proc.terminate()
        proc.wait(10)


def buyer(client: httpx.Client, user: str, ip: str) -> Callable[..., httpx.Response]:
    def buy(**body: object) -> httpx.Response:
        payload = {
            "wallet_address": body.pop("wallet"),
            "ticket_id": "evt_001-000001",
            "price_paid": "50.00",
            "event_id": "evt_001",
            **body,
        }
        return client.post(BUY, json=payload, headers={"X-User-Id": user, "X-Forwarded-For": ip})

    return buy


def decisions(database_url: str, ids: list[str]) -> dict[str, str]:
    engine = make_engine(database_url)
    p = tables.fraud_predictions
    with engine.connect() as conn:
        rows = conn.execute(select(p.c.transaction_id, p.c.decision).where(p.c.transaction_id.in_(ids)))
        out = {r.transaction_id: r.decision for r in rows}
    engine.dispose()
    return out


def test_each_decision_gets_the_guides_answer(postgres_url: str, redis_url: str, tmp_path: Path) -> None:
    with ticketguard_api(postgres_url, tmp_path) as guard, backend(guard, redis_url) as client:
        w = wallet()
        buy = buyer(client, "alice", "198.51.100.20")
        review = buy(wallet=w)  # a new wallet from a new IP
        assert review.status_code == 202
        assert review.json()["status"] == "pending_review"
        assert review.json()["next_step"] == "wait_for_review"
        approved = buy(wallet=w)  # the same wallet and IP again
        assert approved.status_code == 200
        assert approved.json()["status"] == "success"
        two_fa = buy(wallet=w, is_resale=True, seller_address=wallet())
        assert two_fa.status_code == 202
        assert (two_fa.json()["status"], two_fa.json()["next_step"]) == ("require_2fa", "complete_2fa")
        blocked = buyer(client, "mallory", "203.0.113.66")(
            wallet=wallet(), is_resale=True, seller_address=wallet()
        )
        assert blocked.status_code == 403
        assert blocked.json()["error"] == "blocked"
        assert "reasons" not in blocked.json()  # the buyer is not told what the model saw
        # Idempotency-Key: the buyer's retry of one purchase is one transaction with one answer.
        key = f"order-{uuid.uuid4().hex[:12]}"
        retried = [
            client.post(
                BUY,
                json={"wallet_address": w, "ticket_id": "evt_001-000002", "price_paid": "50"},
                headers={"X-User-Id": "alice", "X-Forwarded-For": "198.51.100.20", "Idempotency-Key": key},
            )
            for _ in range(2)
        ]
        assert [r.json()["transaction_id"] for r in retried] == [key, key]
    answers = [review, approved, two_fa, blocked]
    ids = [r.json()["transaction_id"] for r in answers]
    assert decisions(postgres_url, ids) == dict(
        zip(ids, ["MANUAL_REVIEW", "APPROVED", "REQUIRE_2FA", "BLOCKED"], strict=True)
    )


def test_the_sixth_buy_in_a_minute_gets_429_with_retry_after(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    with ticketguard_api(postgres_url, tmp_path) as guard, backend(guard, redis_url) as client:
        w = wallet()
        buy = buyer(client, "bob", "198.51.100.30")
        statuses = [buy(wallet=w).status_code for _ in range(5)]
        assert 429 not in statuses
        sixth = buy(wallet=w)
        assert sixth.status_code == 429
        assert 1 <= int(sixth.headers["Retry-After"]) <= 60
        # Another user from the same IP is not refused: the limit is per user (the IP allows 100).
        assert buyer(client, "carol", "198.51.100.30")(wallet=wallet()).status_code in (200, 202)
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        asked = conn.execute(
            select(tables.transactions.c.transaction_id).where(tables.transactions.c.wallet_address == w)
        ).all()
    engine.dispose()
    assert len(asked) == 5  # the refused buy never reached ticketguard


def test_per_ip_limit_counts_every_user_behind_one_address(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    with (
        ticketguard_api(postgres_url, tmp_path) as guard,
        backend(guard, redis_url, BUY_LIMIT_PER_IP="3/minute") as client,
    ):
        answers = [buyer(client, f"user-{i}", "198.51.100.40")(wallet=wallet()).status_code for i in range(4)]
        assert 429 not in answers[:3]
        assert answers[3] == 429
        assert buyer(client, "user-9", "198.51.100.41")(wallet=wallet()).status_code != 429


def test_ticketguard_down_holds_the_purchase(redis_url: str) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with backend(down, redis_url) as client:
        held = buyer(client, "dave", "198.51.100.50")(wallet=wallet())
    assert held.status_code == 202  # MANUAL_REVIEW by the client's fail policy: held, not sold
    assert held.json()["status"] == "pending_review"
    with backend(down, redis_url, TICKETGUARD_FAIL_POLICY="BLOCKED") as client:
        refused = buyer(client, "erin", "198.51.100.51")(wallet=wallet())
    assert refused.status_code == 403


def test_limits_store_down_refuses_rather_than_sells(postgres_url: str, tmp_path: Path) -> None:
    closed_redis = f"redis://127.0.0.1:{free_port()}/0"
    with ticketguard_api(postgres_url, tmp_path) as guard, backend(guard, closed_redis) as client:
        answer = buyer(client, "frank", "198.51.100.60")(wallet=wallet())
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"


def test_a_held_purchase_is_settled_by_the_signed_review_callback(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Buy → 202 held; an analyst decides in ticketguard; the outbox POSTs the signed decision to the
    backend, which records it once (a replay changes nothing) and refuses a forged one; before the webhook
    the backend answers from ticketguard's API."""
    from datetime import UTC, datetime

    from ticketguard.config import Settings
    from ticketguard.delivery.outbox import deliver_due
    from ticketguard.delivery.service import senders_from_settings
    from ticketguard.delivery.signing import sign
    from ticketguard.reviews.service import decide

    secret = "backend-review-secret-0123456789abcdef"
    with (
        ticketguard_api(postgres_url, tmp_path) as guard,
        backend(guard, redis_url, TICKETGUARD_WEBHOOK_SECRET=secret) as client,
    ):
        held = buyer(client, "alice", "198.51.100.40")(wallet=wallet())
        assert held.status_code == 202
        txn = held.json()["transaction_id"]
        before = client.get(f"/api/tickets/purchases/{txn}")
        assert before.json() == {"transaction_id": txn, "review": "pending", "via": "ticketguard"}

        settings = Settings(
            database_url=postgres_url,
            review_callback_url=f"{client.base_url}/webhooks/ticketguard/reviews",
            webhook_signing_secret=secret,
            _env_file=None,  # type: ignore[call-arg]
        )
        engine = make_engine(postgres_url)
        senders = senders_from_settings(settings)
        try:
            with engine.begin() as conn:
                decide(
                    conn,
                    txn,
                    analyst="ana",
                    outcome="fraud",
                    note="stolen card",
                    now=datetime.now(UTC),
                    settings=settings,
                )
            assert deliver_due(engine, senders).counts()["sent"] == 1
            with engine.connect() as conn:
                [row] = conn.execute(select(tables.outbox)).mappings().all()
        finally:
            for sender in senders.values():
                sender.close()  # type: ignore[attr-defined]
            engine.dispose()
        after = client.get(f"/api/tickets/purchases/{txn}")
        assert after.json() == {"transaction_id": txn, "review": "fraud", "via": "webhook"}

        # the same delivery again (at least once): acknowledged, not acted on twice
        body = json.dumps(row["payload"], sort_keys=True, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Ticketguard-Signature": sign(secret, body, int(time.time())),
            "X-Ticketguard-Idempotency-Key": row["idempotency_key"],
        }
        assert client.post("/webhooks/ticketguard/reviews", content=body, headers=headers).json() == {
            "status": "duplicate"
        }
        # a forged decision (wrong secret) and a stale signature are refused
        forged = json.dumps({"transaction_id": txn, "outcome": "legitimate"}).encode()
        bad = {**headers, "X-Ticketguard-Idempotency-Key": "forged-1"}
        bad["X-Ticketguard-Signature"] = sign("not-the-secret-0123456789", forged, int(time.time()))
        assert client.post("/webhooks/ticketguard/reviews", content=forged, headers=bad).status_code == 400
        bad["X-Ticketguard-Signature"] = sign(secret, forged, int(time.time()) - 3600)
        assert client.post("/webhooks/ticketguard/reviews", content=forged, headers=bad).status_code == 400
        assert client.get(f"/api/tickets/purchases/{txn}").json()["review"] == "fraud"
