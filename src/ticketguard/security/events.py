"""Security events: auth failures, rate-limit hits, blocked requests, BLOCKED decisions, rule responses.

The request path never waits on the table: `SecurityEventWriter.record` appends to a bounded in-memory
queue and a background thread inserts batches (every FLUSH_SECONDS or BATCH_ROWS events). A flood that
fills the queue drops events and counts the drops (logged), rather than slowing or failing requests.
Personal data is redacted before it is queued: IPs and user ids are keyed hashes (``ip:…``, ``user:…``),
metadata passes through the redactor (no tokens, keys, passwords, raw wallets or IPs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert

from ticketguard.security.redact import Redactor, hash_token
from ticketguard.tables import security_events

log = logging.getLogger(__name__)

SEVERITIES = ("low", "medium", "high", "critical")

# Event types the rules and the dashboard read.
AUTH_FAILED = "auth_failed"
LOGIN_FAILED = "login_failed"  # admin log-ins (dashboard); counted by the brute-force rule too
RATE_LIMITED = "rate_limited"
REQUEST_BLOCKED = "request_blocked"  # a request from a blocked IP
DECISION_BLOCKED = "decision_blocked"
RESPONSE_APPLIED = "response_applied"
RESPONSE_REVERTED = "response_reverted"
ALERT = "alert"


@dataclass(frozen=True)
class SecurityEvent:
    event_type: str
    severity: str
    source_ip: str | None = None  # already a hash token (ip:…)
    user_id: str | None = None  # already a hash token (user:…) or a non-personal id (client id, rule)
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}")
        if len(self.event_type) > 32:
            raise ValueError(f"event_type must be at most 32 characters, got {len(self.event_type)}")


def user_token(subject: str, pepper: bytes) -> str:
    return hash_token("user", subject, pepper)


def write_events(conn: Connection, events: Iterable[SecurityEvent], redactor: Redactor | None = None) -> int:
    scrub = redactor or Redactor()
    rows = [
        {
            "event_type": e.event_type,
            "severity": e.severity,
            "source_ip": e.source_ip,
            "user_id": e.user_id,
            "metadata": scrub.value(e.metadata),
            "timestamp": e.timestamp,
        }
        for e in events
    ]
    if rows:
        conn.execute(insert(security_events), rows)
    return len(rows)


class SecurityEventWriter:
    FLUSH_SECONDS = 0.5
    BATCH_ROWS = 500
    MAX_QUEUED = 20_000

    def __init__(self, engine: Engine, redactor: Redactor | None = None) -> None:
        self._engine = engine
        self._redactor = redactor or Redactor()
        self._queue: deque[SecurityEvent] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.written = 0
        self.pending_failed = False  # the last write failed; its events wait in the queue
        self._throttle: dict[tuple[str, str], float] = {}

    def record(self, event: SecurityEvent) -> None:
        with self._lock:
            if len(self._queue) >= self.MAX_QUEUED:
                self.dropped += 1
                return
            self._queue.append(event)
            full = len(self._queue) >= self.BATCH_ROWS
        if full:
            self._wake.set()
        self._ensure_started()

    def record_throttled(
        self,
        key: tuple[str, str],
        event: SecurityEvent,
        every_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> bool:
        """Record at most one event per ``key`` every ``every_s`` seconds (per process): a client held at
        its limit makes one rate_limited event per period, not one per refused request."""
        now = clock()
        with self._lock:
            last = self._throttle.get(key)
            if last is not None and now - last < every_s:
                return False
            if len(self._throttle) > 50_000:
                self._throttle.clear()
            self._throttle[key] = now
        self.record(event)
        return True

    def _ensure_started(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._stop.clear()
                    self._thread = threading.Thread(target=self._run, name="security-events", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            # after failed writes back off (0.5 s doubling to 30 s): a database that is down is not hammered
            self._wake.wait(min(30.0, self.FLUSH_SECONDS * 2**failures))
            self._wake.clear()
            self.flush()
            failures = failures + 1 if self.pending_failed else 0
        self.flush()

    def flush(self) -> int:
        written = 0
        while True:
            with self._lock:
                batch = [self._queue.popleft() for _ in range(min(self.BATCH_ROWS, len(self._queue)))]
            if not batch:
                return written
            try:
                with self._engine.begin() as conn:
                    written += write_events(conn, batch, self._redactor)
                self.written += len(batch)
            except Exception as exc:  # the database is down: keep the batch (bounded) for the next try
                with self._lock:
                    keep = batch[: max(0, self.MAX_QUEUED - len(self._queue))]
                    self._queue.extendleft(reversed(keep))
                    self.dropped += len(batch) - len(keep)
                self.pending_failed = True
                log.warning(
                    "could not write %d security events (%s); %d kept for the next try",
                    len(batch),
                    type(exc).__name__,
                    len(keep),
                )
                return written
            self.pending_failed = False

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        self.flush()
