"""The outbox on SQLite and PostgreSQL, sending to a real HTTP receiver on 127.0.0.1: enqueued with the
caller's transaction, signed, retried with backoff, at least once across a crash, in order per key, never
twice at once, and dead after its last try with a security event."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from delivery_fixtures import Receiver
from ticketguard import tables
from ticketguard.config import Settings
from ticketguard.delivery.outbox import (
    DeliveryError,
    OutboxMessage,
    RetryPolicy,
    deliver_due,
    enqueue,
    retry_dead,
)
from ticketguard.delivery.senders import WebhookSender
from ticketguard.delivery.signing import verify
from ticketguard.jobs.runner import run_job

SECRET = "test-webhook-secret-0123456789abcdef"
T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=4, base_seconds=10, max_seconds=60, jitter=0.0, lease_seconds=120)


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def webhook(receiver: Receiver) -> Iterator[WebhookSender]:
    sender = WebhookSender(SECRET, timeout_seconds=5, default_url=receiver.url)
    yield sender
    sender.close()


def _queue(
    engine: Engine,
    key: str,
    *,
    ordering_key: str | None = None,
    payload: dict | None = None,
    now: datetime = T0,
) -> None:
    with engine.begin() as conn:
        enqueue(
            conn,
            channel="webhook",
            payload=payload or {"transaction_id": key, "outcome": "fraud"},
            idempotency_key=key,
            source="test",
            ordering_key=ordering_key,
            now=now,
        )


def _rows(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(tables.outbox).order_by(tables.outbox.c.id)).mappings()]


def _events(engine: Engine, kind: str) -> list[dict]:
    with engine.connect() as conn:
        query = select(tables.security_events).where(tables.security_events.c.event_type == kind)
        return [dict(r) for r in conn.execute(query).mappings()]


def test_enqueue_belongs_to_the_callers_transaction_and_dedupes_on_its_key(engine: Engine) -> None:
    def fails_after_enqueue() -> None:
        with engine.begin() as conn:
            enqueue(conn, channel="webhook", payload={"a": 1}, idempotency_key="k1", source="test")
            raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        fails_after_enqueue()
    assert _rows(engine) == []
    with engine.begin() as conn:
        assert enqueue(conn, channel="webhook", payload={"a": 1}, idempotency_key="k1", source="test")
        assert not enqueue(conn, channel="webhook", payload={"a": 2}, idempotency_key="k1", source="test")
    rows = _rows(engine)
    assert len(rows) == 1
    assert rows[0]["payload"] == {"a": 1}
    assert rows[0]["status"] == "pending"


def test_webhook_arrives_signed_with_its_idempotency_key(
    engine: Engine,
    receiver: Receiver,
    webhook: WebhookSender,
    clock: Clock,
) -> None:
    _queue(engine, "review-1:fraud", payload={"transaction_id": "t-1", "outcome": "fraud"})
    report = deliver_due(engine, {"webhook": webhook}, policy=POLICY, clock=clock)
    assert report.counts() == {
        "attempted": 1,
        "sent": 1,
        "retried": 0,
        "dead": 0,
        "waiting_without_sender": 0,
    }
    (got,) = receiver.requests
    assert json.loads(got.body) == {"transaction_id": "t-1", "outcome": "fraud"}
    assert got.headers["x-ticketguard-idempotency-key"] == "review-1:fraud"
    assert got.headers["content-type"] == "application/json"
    verify(SECRET, got.body, got.headers["x-ticketguard-signature"], now=time.time())
    (row,) = _rows(engine)
    assert row["status"] == "sent"
    assert row["sent_at"] == T0
    assert deliver_due(engine, {"webhook": webhook}, policy=POLICY, clock=clock).attempted == 0


def test_failures_are_retried_with_backoff_and_delivered_once(
    engine: Engine,
    receiver: Receiver,
    webhook: WebhookSender,
    clock: Clock,
) -> None:
    receiver.statuses = [500, 503]
    _queue(engine, "k")
    senders = {"webhook": webhook}
    assert deliver_due(engine, senders, policy=POLICY, clock=clock).retried == 1
    (row,) = _rows(engine)
    assert (row["attempts"], row["status"], row["next_attempt_at"]) == (
        1,
        "pending",
        T0 + timedelta(seconds=10),
    )
    assert row["last_error"] == "webhook receiver answered HTTP 500"
    clock.advance(9)
    assert deliver_due(engine, senders, policy=POLICY, clock=clock).attempted == 0  # not due yet
    clock.advance(1)
    assert deliver_due(engine, senders, policy=POLICY, clock=clock).retried == 1
    assert _rows(engine)[0]["next_attempt_at"] == clock.now + timedelta(seconds=20)  # doubled
    clock.advance(20)
    assert deliver_due(engine, senders, policy=POLICY, clock=clock).sent == 1
    assert [r.headers["x-ticketguard-idempotency-key"] for r in receiver.requests] == ["k", "k", "k"]
    (row,) = _rows(engine)
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 3, None)


def test_a_receiver_down_for_ten_minutes_gets_the_message_once_it_is_back(
    engine: Engine,
    receiver: Receiver,
    webhook: WebhookSender,
) -> None:
    policy = RetryPolicy()  # the shipped defaults
    clock = Clock()
    receiver.default_status = 503
    _queue(engine, "k")
    while clock.now < T0 + timedelta(minutes=10):
        deliver_due(engine, {"webhook": webhook}, policy=policy, clock=clock)
        clock.advance(5)  # the worker's poll
    assert _rows(engine)[0]["status"] == "pending"
    receiver.default_status = 200
    for _ in range(200):
        if deliver_due(engine, {"webhook": webhook}, policy=policy, clock=clock).sent:
            break
        clock.advance(5)
    (row,) = _rows(engine)
    assert row["status"] == "sent"
    assert (
        sum(r.headers["x-ticketguard-idempotency-key"] == "k" for r in receiver.requests) == row["attempts"]
    )
    assert [receiver_status for receiver_status in receiver.statuses] == []
    assert policy.total_seconds() > 20 * 60


def test_a_refused_request_is_dead_at_once_with_a_security_event(
    engine: Engine,
    receiver: Receiver,
    webhook: WebhookSender,
    clock: Clock,
) -> None:
    receiver.statuses = [400]
    _queue(engine, "k")
    assert deliver_due(engine, {"webhook": webhook}, policy=POLICY, clock=clock).dead == 1
    (row,) = _rows(engine)
    assert (row["status"], row["attempts"]) == ("dead", 1)
    (event,) = _events(engine, "notification_failed")
    assert event["severity"] == "high"
    assert event["metadata"]["idempotency_key"] == "k"
    assert event["metadata"]["retryable"] is False


def test_after_the_last_try_the_message_is_dead_and_can_be_queued_again(
    engine: Engine,
    receiver: Receiver,
    webhook: WebhookSender,
    clock: Clock,
) -> None:
    receiver.default_status = 502
    _queue(engine, "k")
    for _ in range(POLICY.max_attempts):
        deliver_due(engine, {"webhook": webhook}, policy=POLICY, clock=clock)
        clock.advance(POLICY.max_seconds)
    (row,) = _rows(engine)
    assert (row["status"], row["attempts"]) == ("dead", POLICY.max_attempts)
    assert len(receiver.requests) == POLICY.max_attempts
    assert len(_events(engine, "notification_failed")) == 1
    assert not retry_dead(engine, row["id"] + 1000)
    receiver.default_status = 200
    assert retry_dead(engine, row["id"], now=clock.now)
    assert deliver_due(engine, {"webhook": webhook}, policy=POLICY, clock=clock).sent == 1
    assert not retry_dead(engine, row["id"])  # sent is not dead


def test_retry_after_is_honoured_up_to_the_maximum_delay(
    engine: Engine,
    receiver: Receiver,
    webhook: WebhookSender,
    clock: Clock,
) -> None:
    receiver.statuses = [429]
    receiver.retry_after = "45"
    _queue(engine, "k")
    deliver_due(engine, {"webhook": webhook}, policy=POLICY, clock=clock)
    assert _rows(engine)[0]["next_attempt_at"] == T0 + timedelta(seconds=45)


def test_messages_with_one_ordering_key_are_sent_in_order_across_retries(
    engine: Engine,
    receiver: Receiver,
    webhook: WebhookSender,
    clock: Clock,
) -> None:
    receiver.statuses = [500]  # the trigger fails once
    _queue(engine, "rule-a:trigger", ordering_key="rule-a")
    _queue(engine, "rule-a:resolve", ordering_key="rule-a")
    _queue(engine, "rule-b:trigger", ordering_key="rule-b")
    report = deliver_due(engine, {"webhook": webhook}, policy=POLICY, clock=clock)
    assert (report.attempted, report.sent, report.retried) == (2, 1, 1)  # the resolve waited
    clock.advance(POLICY.max_seconds)
    deliver_due(engine, {"webhook": webhook}, policy=POLICY, clock=clock)
    deliver_due(engine, {"webhook": webhook}, policy=POLICY, clock=clock)
    keys = [r.headers["x-ticketguard-idempotency-key"] for r in receiver.requests]
    assert keys == ["rule-a:trigger", "rule-b:trigger", "rule-a:trigger", "rule-a:resolve"]


def test_a_deliverer_that_dies_after_sending_leaves_the_message_to_be_sent_again(
    engine: Engine,
    receiver: Receiver,
    webhook: WebhookSender,
    clock: Clock,
) -> None:
    class DiesAfterSending:
        def send(self, message: OutboxMessage) -> None:
            webhook.send(message)
            raise SystemExit("killed between send and mark")  # not an Exception: nothing catches it

    _queue(engine, "k")
    with pytest.raises(SystemExit):
        deliver_due(engine, {"webhook": DiesAfterSending()}, policy=POLICY, clock=clock)
    (row,) = _rows(engine)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert deliver_due(engine, {"webhook": webhook}, policy=POLICY, clock=clock).attempted == 0  # leased
    clock.advance(POLICY.lease_seconds)
    assert deliver_due(engine, {"webhook": webhook}, policy=POLICY, clock=clock).sent == 1
    keys = [r.headers["x-ticketguard-idempotency-key"] for r in receiver.requests]
    assert keys == ["k", "k"]  # at least once: the receiver dedupes on the key


def test_a_sender_bug_is_retried_not_lost(engine: Engine, clock: Clock) -> None:
    class Broken:
        def send(self, message: OutboxMessage) -> None:
            raise KeyError("bug")

    _queue(engine, "k")
    assert deliver_due(engine, {"webhook": Broken()}, policy=POLICY, clock=clock).retried == 1
    assert _rows(engine)[0]["last_error"] == "KeyError in the webhook sender"


def test_a_channel_without_sender_waits_and_says_why(engine: Engine, clock: Clock) -> None:
    with engine.begin() as conn:
        enqueue(conn, channel="pagerduty", payload={}, idempotency_key="p", source="test")
    report = deliver_due(engine, {}, policy=POLICY, clock=clock)
    assert report.waiting_without_sender == {"pagerduty": 1}
    (row,) = _rows(engine)
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert row["last_error"] == "no sender configured for channel 'pagerduty'"


def test_the_delivery_job_sends_and_records_only_runs_that_did_something(
    db_url: str,
    engine: Engine,
    receiver: Receiver,
) -> None:
    settings = Settings(database_url=db_url, webhook_signing_secret=SECRET)
    idle = run_job("deliver-outbox", settings, engine, trigger="schedule")
    assert idle.status == "succeeded"
    assert idle.id is None
    with engine.begin() as conn:
        enqueue(
            conn,
            channel="webhook",
            payload={"x": 1},
            idempotency_key="k",
            source="test",
            destination=receiver.url,
        )
    busy = run_job("deliver-outbox", settings, engine, trigger="schedule")
    assert busy.counts["sent"] == 1
    with engine.connect() as conn:
        recorded = conn.execute(select(tables.job_runs.c.job_name, tables.job_runs.c.counts)).all()
    assert [(name, counts["sent"]) for name, counts in recorded] == [("deliver-outbox", 1)]
    assert len(receiver.requests) == 1


@pytest.mark.postgres
def test_concurrent_deliverers_never_send_one_message_twice(postgres_url: str, receiver: Receiver) -> None:
    from ticketguard.kit.db import make_engine

    engine = make_engine(postgres_url, pool_size=4)
    try:
        for i in range(60):
            _queue(engine, f"k{i}", now=datetime.now(UTC) - timedelta(seconds=1))

        class Slow:
            def __init__(self) -> None:
                self.inner = WebhookSender(SECRET, default_url=receiver.url)

            def send(self, message: OutboxMessage) -> None:
                time.sleep(0.005)  # widen the window in which two deliverers could collide
                self.inner.send(message)

        reports = []

        def run() -> None:
            reports.append(
                deliver_due(engine, {"webhook": Slow()}, policy=POLICY, batch=5, rng=random.Random(1))
            )

        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        keys = [r.headers["x-ticketguard-idempotency-key"] for r in receiver.requests]
        assert sorted(keys) == sorted(f"k{i}" for i in range(60))  # each exactly once
        assert sum(r.sent for r in reports) == 60
        assert sum(1 for r in reports if r.sent) >= 2  # they really ran side by side
        with engine.connect() as conn:
            pending = conn.execute(
                select(func.count()).select_from(tables.outbox).where(tables.outbox.c.status != "sent")
            ).scalar_one()
        assert pending == 0
    finally:
        engine.dispose()


def test_delivery_error_keeps_its_reason() -> None:
    error = DeliveryError("x answered HTTP 400", retryable=False)
    assert (str(error), error.retryable, error.retry_after) == ("x answered HTTP 400", False, None)
