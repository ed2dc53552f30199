"""The outbox: enqueue in the caller's transaction, deliver at least once from the worker.

Claiming works as a lease: a batch of due rows is taken in one short transaction (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so concurrent deliverers never take the same row; SQLite has one writer) and their
``next_attempt_at`` moved to the end of the lease. Each message is then sent outside any transaction and
its outcome written. A deliverer that dies after sending but before writing "sent" leaves the row to be
taken again when the lease ends: the receiver sees it twice, with the same idempotency key — that is the
"at least once" of the contract, and why every message carries that key.

Only the oldest pending message of an ordering key is ever claimed, so messages sharing a key (a PagerDuty
trigger and its resolve) are sent in the order they were written, even across retries.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, and_, exists, func, select, update
from sqlalchemy.orm import aliased

from ticketguard.kit.db import dialect_insert
from ticketguard.security.events import SecurityEvent, write_events
from ticketguard.tables import outbox

log = logging.getLogger(__name__)

NOTIFICATION_FAILED = "notification_failed"
MAX_ERROR_CHARS = 500
MAX_KEY_CHARS = 128


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    channel: str
    destination: str
    payload: dict[str, Any]
    idempotency_key: str
    source: str
    attempts: int  # including the one in progress
    created_at: datetime
    ordering_key: str | None = None


class DeliveryError(Exception):
    """A send failed. ``retryable=False`` (e.g. a 4xx other than 408/429) sends the row straight to dead;
    ``retry_after`` (seconds) is the receiver's own wish, honoured up to the policy's maximum delay."""

    def __init__(self, reason: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


class Sender(Protocol):
    def send(self, message: OutboxMessage) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 12
    base_seconds: float = 5.0
    max_seconds: float = 300.0
    jitter: float = 0.2  # each delay is scaled by a random factor in [1 - jitter, 1]
    lease_seconds: float = 120.0  # a claimed batch must be sent (or given up) within this

    def delay(self, attempts: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds before the next try after ``attempts`` failed tries (exponential, capped, jittered)."""
        backoff = min(self.max_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        backoff *= 1 - self.jitter * rng.random()
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, self.max_seconds))
        return backoff

    def total_seconds(self) -> float:
        """How long a message keeps being retried (no jitter): the receiver outage it survives."""
        return sum(min(self.max_seconds, self.base_seconds * 2**n) for n in range(self.max_attempts - 1))


@dataclass
class DeliveryReport:
    attempted: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    waiting_without_sender: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        return {
            "attempted": self.attempted,
            "sent": self.sent,
            "retried": self.retried,
            "dead": self.dead,
            "waiting_without_sender": sum(self.waiting_without_sender.values()),
        }


def _now() -> datetime:
    return datetime.now(UTC)


def enqueue(
    conn: Connection,
    *,
    channel: str,
    payload: Mapping[str, Any],
    idempotency_key: str,
    source: str,
    destination: str = "",
    ordering_key: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Queue one message in the caller's transaction; False if that idempotency key is already queued."""
    if not idempotency_key or len(idempotency_key) > MAX_KEY_CHARS:
        raise ValueError(f"idempotency_key must be 1..{MAX_KEY_CHARS} characters, got {len(idempotency_key)}")
    if ordering_key is not None and len(ordering_key) > MAX_KEY_CHARS:
        raise ValueError(f"ordering_key must be at most {MAX_KEY_CHARS} characters")
    when = now or _now()
    statement = (
        dialect_insert(conn, outbox)
        .values(
            channel=channel,
            destination=destination,
            payload=dict(payload),
            idempotency_key=idempotency_key,
            ordering_key=ordering_key,
            source=source,
            status="pending",
            attempts=0,
            next_attempt_at=when,
            created_at=when,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(outbox.c.id)
    )
    return conn.execute(statement).first() is not None


def _claim(
    engine: Engine, channels: Iterable[str], now: datetime, limit: int, lease: timedelta
) -> list[OutboxMessage]:
    earlier = aliased(outbox)
    due = (
        select(outbox.c.id)
        .where(
            outbox.c.status == "pending",
            outbox.c.next_attempt_at <= now,
            outbox.c.channel.in_(list(channels)),
            ~exists().where(
                and_(
                    earlier.c.ordering_key == outbox.c.ordering_key,
                    earlier.c.status == "pending",
                    earlier.c.id < outbox.c.id,
                )
            ),
        )
        .order_by(outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    with engine.begin() as conn:
        ids = list(conn.execute(due).scalars())
        if not ids:
            return []
        rows = conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(ids))
            .values(next_attempt_at=now + lease, attempts=outbox.c.attempts + 1)
            .returning(outbox)
        ).mappings()
        messages = [
            OutboxMessage(
                id=r["id"],
                channel=r["channel"],
                destination=r["destination"],
                payload=dict(r["payload"]),
                idempotency_key=r["idempotency_key"],
                source=r["source"],
                attempts=r["attempts"],
                created_at=r["created_at"],
                ordering_key=r["ordering_key"],
            )
            for r in rows
        ]
    return sorted(messages, key=lambda m: m.id)


def _mark_waiting(engine: Engine, configured: set[str]) -> dict[str, int]:
    """Pending rows of channels with no sender: counted, and told why they wait."""
    with engine.begin() as conn:
        waiting: dict[str, int] = dict(
            conn.execute(
                select(outbox.c.channel, func.count())
                .where(outbox.c.status == "pending", outbox.c.channel.not_in(configured))
                .group_by(outbox.c.channel)
            ).all()
        )
        for channel in waiting:
            reason = f"no sender configured for channel {channel!r}"
            conn.execute(
                update(outbox)
                .where(
                    outbox.c.status == "pending",
                    outbox.c.channel == channel,
                    (outbox.c.last_error.is_(None)) | (outbox.c.last_error != reason),
                )
                .values(last_error=reason)
            )
    return {str(k): int(v) for k, v in waiting.items()}


def _outcome(
    engine: Engine,
    message: OutboxMessage,
    error: DeliveryError | None,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random,
) -> str:
    with engine.begin() as conn:
        if error is None:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == message.id)
                .values(status="sent", sent_at=now, last_error=None, next_attempt_at=now)
            )
            return "sent"
        reason = error.reason[:MAX_ERROR_CHARS]
        if error.retryable and message.attempts < policy.max_attempts:
            wait = policy.delay(message.attempts, rng, error.retry_after)
            conn.execute(
                update(outbox)
                .where(outbox.c.id == message.id)
                .values(last_error=reason, next_attempt_at=now + timedelta(seconds=wait))
            )
            return "retried"
        conn.execute(
            update(outbox)
            .where(outbox.c.id == message.id)
            .values(status="dead", last_error=reason, next_attempt_at=now)
        )
        write_events(
            conn,
            [
                SecurityEvent(
                    event_type=NOTIFICATION_FAILED,
                    severity="high",
                    user_id=f"outbox:{message.id}",
                    metadata={
                        "channel": message.channel,
                        "source": message.source,
                        "idempotency_key": message.idempotency_key,
                        "attempts": message.attempts,
                        "error": reason,
                        "retryable": error.retryable,
                    },
                    timestamp=now,
                )
            ],
        )
        return "dead"


def deliver_due(
    engine: Engine,
    senders: Mapping[str, Sender],
    *,
    policy: RetryPolicy | None = None,
    limit: int = 500,
    batch: int = 20,
    clock: Callable[[], datetime] = _now,
    rng: random.Random | None = None,
) -> DeliveryReport:
    """Send what is due, up to ``limit`` messages, ``batch`` claimed at a time. Never raises for a
    receiver's failure: it is recorded on the row (and, after the last try, as a security event)."""
    policy = policy or RetryPolicy()
    rng = rng or random.Random()  # nosec B311 - backoff jitter, not security
    report = DeliveryReport(waiting_without_sender=_mark_waiting(engine, set(senders)))
    if not senders:
        return report
    lease = timedelta(seconds=policy.lease_seconds)
    while report.attempted < limit:
        messages = _claim(engine, senders, clock(), min(batch, limit - report.attempted), lease)
        if not messages:
            break
        for message in messages:
            report.attempted += 1
            error: DeliveryError | None = None
            try:
                senders[message.channel].send(message)
            except DeliveryError as exc:
                error = exc
            except Exception as exc:  # a sender bug must not lose the message: retry it like a failure
                log.exception("sender raised", extra={"channel": message.channel, "outbox_id": message.id})
                error = DeliveryError(f"{type(exc).__name__} in the {message.channel} sender")
            outcome = _outcome(engine, message, error, clock(), policy, rng)
            setattr(report, outcome, getattr(report, outcome) + 1)
            if outcome != "sent":
                log.warning(
                    "outbox delivery failed",
                    extra={
                        "channel": message.channel,
                        "outbox_id": message.id,
                        "attempts": message.attempts,
                        "outcome": outcome,
                        "error": error.reason if error else None,
                    },
                )
    return report


# ------------------------------------------------------------------------------------------ reading
def status(engine: Engine) -> list[dict[str, Any]]:
    """Per channel and status: count, oldest created_at (for pending: how long the backlog is)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                outbox.c.channel,
                outbox.c.status,
                func.count().label("count"),
                func.min(outbox.c.created_at).label("oldest"),
            )
            .where(outbox.c.status != "sent")
            .group_by(outbox.c.channel, outbox.c.status)
            .order_by(outbox.c.channel, outbox.c.status)
        ).mappings()
        out = [dict(r) for r in rows]
        sent = conn.execute(
            select(outbox.c.channel, func.count().label("count"))
            .where(outbox.c.status == "sent")
            .group_by(outbox.c.channel)
        ).mappings()
        out += [
            {"channel": r["channel"], "status": "sent", "count": r["count"], "oldest": None} for r in sent
        ]
    return out


def recent_failures(engine: Engine, limit: int = 20) -> list[dict[str, Any]]:
    """Messages that failed at least once and are not sent yet (pending with a last error, or dead)."""
    columns = [
        outbox.c.id,
        outbox.c.channel,
        outbox.c.source,
        outbox.c.status,
        outbox.c.attempts,
        outbox.c.last_error,
        outbox.c.next_attempt_at,
        outbox.c.created_at,
    ]
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(*columns)
                .where(outbox.c.status != "sent", outbox.c.last_error.is_not(None))
                .order_by(outbox.c.id.desc())
                .limit(limit)
            ).mappings()
        ]


def retry_dead(engine: Engine, message_id: int, *, now: datetime | None = None) -> bool:
    """Put a dead message back in the queue with a fresh count of attempts; False if it is not dead."""
    with engine.begin() as conn:
        result = conn.execute(
            update(outbox)
            .where(outbox.c.id == message_id, outbox.c.status == "dead")
            .values(status="pending", attempts=0, next_attempt_at=now or _now())
        )
    return result.rowcount == 1
