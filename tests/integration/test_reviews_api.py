"""The backend's side of a review, through a real uvicorn: `GET /api/v1/reviews/{id}` (auth, 404 shape, rate
limit, OpenAPI) and the signed callback from the outbox, delivered once after the receiver comes back."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from scoring_fixtures import (
    free_port,
    ladder_booster,
    make_settings,
    register_model,
    request_body,
    running_api,
)
from sqlalchemy import Engine, select

from delivery_fixtures import Receiver, _handler
from review_fixtures import T0, scored
from ticketguard import tables
from ticketguard.delivery.outbox import deliver_due
from ticketguard.delivery.service import retry_policy, senders_from_settings
from ticketguard.delivery.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify
from ticketguard.kit.db import make_engine
from ticketguard.reviews.service import claim, decide
from ticketguard.security.auth import TokenVerifier
from ticketguard.security.clients import create_client

REVIEWS = "/api/v1/reviews/"
PREDICT = "/api/v1/ml/predict/fraud"
SECRET = "review-callback-secret-0123456789abcdef"
NOTE = "chargeback history on this card"


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def test_the_backend_follows_a_case_from_pending_to_decided(db: Engine, db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path)
    register_model(db, settings.resolved_model_dir, "ladder-r", ladder_booster(), promote=True)
    with running_api(settings) as base, httpx.Client(base_url=base, timeout=10) as client:
        # primary purchase from an IP new to the wallet: the ladder model answers MANUAL_REVIEW
        review = client.post(PREDICT, json=request_body(ip_address="203.0.113.7"))
        assert review.status_code == 200, review.text
        assert review.json()["decision"] == "MANUAL_REVIEW"
        txn = review.json()["transaction_id"]
        approved = client.post(PREDICT, json=request_body())
        assert approved.json()["decision"] == "APPROVED"

        pending = client.get(REVIEWS + txn)
        assert pending.status_code == 200, pending.text
        body = pending.json()
        assert (body["status"], body["decision"], body["outcome"], body["decided_at"]) == (
            "pending",
            "MANUAL_REVIEW",
            None,
            None,
        )
        assert datetime.fromisoformat(body["scored_at"]) <= datetime.now(UTC)
        assert pending.headers["cache-control"] == "no-store"

        now = datetime.now(UTC)
        with db.begin() as conn:
            claim(conn, txn, analyst="ana", now=now)
        assert client.get(REVIEWS + txn).json()["status"] == "claimed"
        with db.begin() as conn:
            decide(conn, txn, analyst="ana", outcome="fraud", note=NOTE, now=now)
        decided = client.get(REVIEWS + txn).json()
        assert decided["status"] == "decided"
        assert decided["outcome"] == "fraud"
        assert datetime.fromisoformat(decided["decided_at"]) == now
        assert "ana" not in json.dumps(decided)
        assert NOTE not in json.dumps(decided)  # the note stays inside

        other = client.get(REVIEWS + approved.json()["transaction_id"]).json()
        assert (other["status"], other["decision"], other["outcome"]) == (
            "not_a_review_case",
            "APPROVED",
            None,
        )

        missing = client.get(REVIEWS + "never-scored-1")
        assert missing.status_code == 404
        assert missing.json() == {
            "error": "not_found",
            "detail": "no scored transaction with transaction_id 'never-scored-1'",
        }
        bad = client.get(REVIEWS + "x" * 65)
        assert bad.status_code == 422
        assert bad.json()["error"] == "validation_error"
        assert "transaction_id" in bad.json()["message"]

        spec = client.get("/openapi.json").json()
        operation = spec["paths"]["/api/v1/reviews/{transaction_id}"]["get"]
        assert set(operation["responses"]) >= {"200", "401", "404", "422", "429", "503"}
        schema = spec["components"]["schemas"]["ReviewStatusResponse"]
        assert schema["properties"]["status"]["enum"] == [
            "pending",
            "claimed",
            "decided",
            "not_a_review_case",
        ]


def test_review_status_is_rate_limited_across_ids(db: Engine, db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, rate_limit_routes={"/api/v1/reviews": 3, "/health": 1_000_000})
    register_model(db, settings.resolved_model_dir, "ladder-r", ladder_booster(), promote=True)
    with running_api(settings) as base, httpx.Client(base_url=base, timeout=10) as client:
        codes = [client.get(REVIEWS + f"id-{i}").status_code for i in range(4)]
        assert codes == [404, 404, 404, 429]
        assert client.post(PREDICT, json=request_body()).status_code == 200  # scoring has its own budget


@pytest.mark.postgres
def test_review_status_needs_the_scoring_credential_when_auth_is_on(
    postgres_url: str, tmp_path: Path
) -> None:
    engine = make_engine(postgres_url)
    pepper = "p" * 40
    settings = make_settings(postgres_url, tmp_path, jwt_secret="s" * 40, security_pepper=pepper)
    register_model(engine, settings.resolved_model_dir, "ladder-r", ladder_booster(), promote=True)
    scored(engine, "case-1", at=datetime.now(UTC) - timedelta(minutes=1))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        _, metrics_key = create_client(
            conn, name="bi", scopes="metrics", actor="t", pepper=pepper.encode(), now=now
        )
        _, score_key = create_client(
            conn, name="backend", scopes="score", actor="t", pepper=pepper.encode(), now=now
        )
    token = TokenVerifier.from_settings(settings).issue("backend", 300, now=int(now.timestamp()))
    try:
        with running_api(settings) as base, httpx.Client(base_url=base, timeout=10) as client:
            assert client.get(REVIEWS + "case-1").status_code == 401
            assert client.get(REVIEWS + "case-1", headers={"X-API-Key": metrics_key}).status_code == 401
            by_key = client.get(REVIEWS + "case-1", headers={"X-API-Key": score_key})
            assert by_key.status_code == 200, by_key.text
            assert by_key.json()["status"] == "pending"
            by_jwt = client.get(REVIEWS + "case-1", headers={"Authorization": f"Bearer {token}"})
            assert by_jwt.status_code == 200
            assert client.get(REVIEWS + "nope", headers={"X-API-Key": score_key}).status_code == 404
    finally:
        engine.dispose()


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_callback_waits_for_a_receiver_that_is_down_and_arrives_once_signed(
    db: Engine, db_url: str, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here yet: the receiver is down
    url = f"http://127.0.0.1:{port}/hook"
    settings = make_settings(db_url, tmp_path, review_callback_url=url, webhook_signing_secret=SECRET)
    scored(db, "t-cb")
    decided_at = T0 + timedelta(minutes=5)
    with db.begin() as conn:
        decide(conn, "t-cb", analyst="ana", outcome="fraud", note=NOTE, now=decided_at, settings=settings)

    clock = Clock(decided_at)
    senders = senders_from_settings(settings)
    policy = retry_policy(settings)
    try:
        first = deliver_due(db, senders, policy=policy, clock=clock)
        assert first.counts()["retried"] == 1
        with db.connect() as conn:
            row = conn.execute(select(tables.outbox)).mappings().one()
        assert row["status"] == "pending"
        assert "unreachable" in row["last_error"]

        # the receiver comes up on that port
        receiver = Receiver(url=url)
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(receiver))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            clock.now += timedelta(seconds=policy.max_seconds + 1)
            second = deliver_due(db, senders, policy=policy, clock=clock)
            assert second.counts()["sent"] == 1
            clock.now += timedelta(hours=1)
            assert deliver_due(db, senders, policy=policy, clock=clock).counts()["attempted"] == 0
            [request] = receiver.wait_for(1)
        finally:
            server.shutdown()
            server.server_close()
    finally:
        for sender in senders.values():
            sender.close()  # type: ignore[attr-defined]

    assert len(receiver.requests) == 1
    assert request.path == "/hook"
    assert request.headers[IDEMPOTENCY_HEADER.lower()] == "review:t-cb:fraud"
    signature = request.headers[SIGNATURE_HEADER.lower()]
    timestamp = int(signature.split(",")[0].removeprefix("t="))
    verify(SECRET, request.body, signature, now=timestamp)  # raises if the HMAC does not match
    with pytest.raises(Exception, match="signature"):
        verify("another-secret-0123456789abcdef0123", request.body, signature, now=timestamp)
    assert json.loads(request.body) == {
        "type": "review.decided",
        "transaction_id": "t-cb",
        "outcome": "fraud",
        "decided_at": decided_at.isoformat(),
    }
    with db.connect() as conn:
        assert conn.execute(select(tables.outbox.c.status)).scalar_one() == "sent"
