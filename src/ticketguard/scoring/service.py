"""The scoring service: one request from validated input to a stored, explained answer.

    request ─▶ stored answer? (idempotency) ─▶ features from server state ─▶ lists ─▶ XGBoost score
            ─▶ decision ladder ─▶ contributions + reasons ─▶ group commit (transaction, prediction, audit)

Everything here is blocking (SQL, XGBoost); the API runs it in its thread pool. Features are computed by
`features.online` from the database at the server's clock — never taken from the caller — so they are the
offline definitions exactly (the parity tests hold `SqlFeatureSource` to them). A committed answer is
visible to the next request's features because the request waits for its commit before answering.

Failure policy (docs/api.md §Failure policy): a database that cannot be read or written, or a request
past its deadline, raises `ScoringUnavailable` carrying a MANUAL_REVIEW, ``degraded`` answer that the API
returns with 503 — never an APPROVED, and nothing half-written (one database transaction per batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ticketguard.config import Settings
from ticketguard.features.online import OnlineFeatures, SqlFeatureSource
from ticketguard.features.repository import TransactionFacts
from ticketguard.kit.outage import outage_log
from ticketguard.ml.dataset import feature_params
from ticketguard.ml.registry import RegistryError
from ticketguard.ml.serving import LiveModel, ServingModel
from ticketguard.scoring import domain
from ticketguard.scoring.domain import Answer, ListStatus, Thresholds
from ticketguard.scoring.online import StateKeeper, redis_client
from ticketguard.scoring.overrides import ThresholdRuntime
from ticketguard.scoring.state import CachedFeatureSource
from ticketguard.scoring.store import (
    DatabaseUnavailable,
    GroupCommitter,
    PendingWrite,
    event_of_ticket,
    find_answer,
    precheck,
)
from ticketguard.scoring.trees import FastTrees
from ticketguard.security.lists import ListChangeWatcher
from ticketguard.security.responses import ThresholdOverride
from ticketguard.wallets import canonical_wallet, canonical_wallet_or_none

log = logging.getLogger(__name__)

UNKNOWN_EVENT = "unknown"
NO_MODEL_HELP = (
    "no fraud model is live: train and promote one with `ticketguard train --promote` "
    "(or `make demo`), or pin one with MODEL_VERSION"
)


@dataclass(frozen=True)
class ScoreRequest:
    """A validated scoring request (the API builds it from its request model)."""

    transaction_id: str
    wallet_address: str
    price_paid: Decimal
    ticket_id: str | None = None
    event_id: str | None = None
    payment_method: str | None = None
    is_resale: bool = False
    seller_address: str | None = None
    ip_address: str | None = None
    timestamp: datetime | None = None  # the client's clock: checked and audited, never used for features
    country: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    fingerprint: str = ""  # sha256 of the canonical request (domain.fingerprint)
    actor: str | None = None  # who asked (set by the security layer)

    def __post_init__(self) -> None:
        # One spelling per wallet for everything below: features, list look-ups, the stored rows. The API
        # schema already canonicalised them; this keeps any other caller honest (~0.3 µs each).
        object.__setattr__(self, "wallet_address", canonical_wallet(self.wallet_address))
        object.__setattr__(self, "seller_address", canonical_wallet_or_none(self.seller_address))


class ScoringError(Exception):
    status_code = 500


class IdempotencyConflict(ScoringError):
    """Same transaction_id, different payload."""

    status_code = 409


class ModelUnavailable(ScoringError):
    status_code = 503


class ScoringUnavailable(ScoringError):
    """Part of the path failed; ``answer`` is the policy's answer (MANUAL_REVIEW, degraded), not stored."""

    status_code = 503

    def __init__(self, message: str, answer: Answer) -> None:
        super().__init__(message)
        self.answer = answer


@dataclass(frozen=True)
class Outcome:
    answer: Answer
    replayed: bool  # the stored answer of an earlier identical request


# A list check says what a list says about the request. It gets the request's read connection on the SQL
# path, None on the in-memory path (then it answers from its own in-memory view of the list).
ListCheck = Callable[[Connection | None, TransactionFacts], ListStatus]


@dataclass
class _InFlight:
    fingerprint: str
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None


class ScoringService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        live: LiveModel,
        *,
        committer: GroupCommitter | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.live = live
        self.params = feature_params(settings)
        redis = redis_client(settings)
        self.source: SqlFeatureSource | CachedFeatureSource = (
            CachedFeatureSource(engine, self.params, ttl_s=settings.feature_cache_seconds, redis_client=redis)
            if settings.feature_cache_seconds > 0
            else SqlFeatureSource(engine, self.params)
        )
        self.features = OnlineFeatures(self.source, self.params)
        self.keeper = StateKeeper.from_settings(settings, engine, self.params, redis)
        self.thresholds = Thresholds(
            block=settings.fraud_threshold_block,
            review=settings.fraud_threshold_review,
            twofa=settings.fraud_threshold_2fa,
        )
        # alerting (issue 15): stricter thresholds while an alert's tighten_thresholds response is active
        self.threshold_runtime = ThresholdRuntime(engine, self.thresholds)
        self.committer = committer or GroupCommitter(engine, max_batch=settings.scoring_commit_batch_max)
        # Block/allow list changes reach this worker's in-memory copies at once (PostgreSQL NOTIFY).
        self.list_watcher = ListChangeWatcher(engine)
        if self.keeper is not None:
            self.committer.after_commit = self.keeper.publish
            self.list_watcher.subscribe(self.keeper.refresh_lists)
        self.list_watcher.subscribe(self.threshold_runtime.changed)
        self.clock = clock
        self.deadline_s = settings.scoring_deadline_ms / 1000.0
        self.top_k = settings.scoring_top_features
        self.exact_for = settings.scoring_exact_explanations
        # The wallet blacklist / allow list is read with the idempotency check (`store.precheck`); these
        # are the further checks (the security layer adds IP blocks).
        self.list_checks: list[ListCheck] = []
        self._fast: dict[str, FastTrees | None] = {}
        self._fast_lock = threading.Lock()
        self._inflight: dict[str, _InFlight] = {}
        self._inflight_lock = threading.Lock()
        # Failures of a dependency are logged once per outage and interval, not once per request.
        self._database = outage_log("database")

    # ------------------------------------------------------------------------------------------ hooks
    def add_list_check(self, check: ListCheck) -> None:
        """Add a block/allow check (the security layer adds IP blocks); runs in the read connection."""
        self.list_checks.append(check)

    def model(self) -> ServingModel:
        try:
            return self.live.get()
        except RegistryError as exc:
            raise ModelUnavailable(NO_MODEL_HELP) from exc
        except DBAPIError as exc:
            raise ModelUnavailable(
                f"the model registry could not be read: {type(exc.orig).__name__}"
            ) from exc

    def fast_trees(self, model: ServingModel) -> FastTrees | None:
        """The numpy walker of this model's trees (built once per version), or None if it cannot
        reproduce XGBoost for this model (then XGBoost's own predict/explain serve it)."""
        if model.version in self._fast:
            return self._fast[model.version]
        with self._fast_lock:
            if model.version not in self._fast:
                try:
                    self._fast = {model.version: FastTrees.from_booster(model.booster)}
                except ValueError as exc:
                    log.warning("model %s: fast tree path off (%s)", model.version, exc)
                    self._fast = {model.version: None}
        return self._fast[model.version]

    def warm(self) -> None:
        """Load the model and build its fast path now, not on the first request."""
        with contextlib.suppress(ModelUnavailable):
            self.fast_trees(self.model())

    def warm_features(self, limit: int = 1000) -> int:
        """Event bases of the busiest recent events, before the first request (best effort)."""
        if not isinstance(self.source, CachedFeatureSource):
            return 0
        started = time.monotonic()
        try:
            with self.engine.connect() as conn:
                n = self.source.warm(conn, self.clock(), limit)
        except DBAPIError as exc:
            log.warning("event bases not warmed: %s", type(exc.orig).__name__)
            return 0
        log.info("warmed %d event bases in %.1f s", n, time.monotonic() - started)
        return n

    def feature_source_status(self) -> str:
        """For /health: where this worker's features come from now."""
        if self.keeper is None:
            return "sql"
        info = self.keeper.info()
        if info["status"] == "ready":
            return f"memory: ready ({info['transactions']:,} transactions, {info['feed']} feed)"
        return f"memory: {info['status']} (features from SQL meanwhile)"

    def start(self) -> None:
        self.committer.start()
        if self.keeper is not None:
            self.keeper.start()
        self.list_watcher.start()
        self.threshold_runtime.start()

    def stop(self) -> None:
        self.committer.stop()
        self.list_watcher.stop()
        self.threshold_runtime.stop()
        if self.keeper is not None:
            self.keeper.stop()

    # ------------------------------------------------------------------------------------------ scoring
    def score(self, req: ScoreRequest) -> Outcome:
        started = time.monotonic()
        deadline = started + self.deadline_s
        with self._inflight_slot(req) as (mine, owner):
            if owner:
                mine.outcome = self._score(req, started, deadline)
                return mine.outcome
        # The same id is being scored by this process right now: wait for it, then replay or refuse.
        if not mine.done.wait(max(0.0, deadline - time.monotonic())) or mine.outcome is None:
            raise self._unavailable(req, "deadline: a concurrent request with this id did not finish")
        if mine.fingerprint != req.fingerprint:
            raise self._conflict(req.transaction_id)
        return Outcome(mine.outcome.answer, replayed=True)

    @contextlib.contextmanager
    def _inflight_slot(self, req: ScoreRequest) -> Iterator[tuple[_InFlight, bool]]:
        """This id's in-flight entry, and whether this request owns it (it scores, the others wait). The
        owner's entry is marked done and removed on the way out."""
        with self._inflight_lock:
            mine = self._inflight.get(req.transaction_id)
            owner = mine is None
            if mine is None:
                mine = self._inflight[req.transaction_id] = _InFlight(req.fingerprint)
        try:
            yield mine, owner
        finally:
            if owner:
                mine.done.set()
                with self._inflight_lock:
                    self._inflight.pop(req.transaction_id, None)

    def _conflict(self, transaction_id: str) -> IdempotencyConflict:
        return IdempotencyConflict(
            f"transaction_id {transaction_id!r} was already scored with a different payload; "
            "use a new transaction_id, or resend the original request to get its stored answer"
        )

    def _unavailable(self, req: ScoreRequest, why: str) -> ScoringUnavailable:
        policy = self.settings.scoring_unavailable_decision
        answer = Answer(
            transaction_id=req.transaction_id,
            fraud_score=float("nan"),
            decision=policy,
            confidence=0.5,
            top_features=[],
            reasons=[f"scoring unavailable ({why}): decided by policy, retry with the same transaction_id"],
            model_version="",
            degraded=True,
            degraded_reasons=[why],
            explanation="none",
        )
        return ScoringUnavailable(why, answer)

    def _replay(self, req: ScoreRequest, stored_hash: str, answer: Answer) -> Outcome:
        if stored_hash != req.fingerprint:
            raise self._conflict(req.transaction_id)
        return Outcome(answer, replayed=True)

    def _facts(self, req: ScoreRequest, event_id: str | None, now: datetime) -> TransactionFacts:
        return TransactionFacts(
            transaction_id=req.transaction_id,
            wallet_address=req.wallet_address,
            event_id=event_id or UNKNOWN_EVENT,
            timestamp=now,
            price_paid=req.price_paid,
            ticket_id=req.ticket_id,
            payment_method=req.payment_method,
            is_resale=req.is_resale,
            seller_address=req.seller_address if req.is_resale else None,
            ip_address=req.ip_address,
            latitude=req.latitude,
            longitude=req.longitude,
        )

    def _from_memory(
        self, req: ScoreRequest, now: datetime, degraded: list[str]
    ) -> tuple[TransactionFacts, dict[str, float], ListStatus] | None:
        """Features and lists from the worker's online state — no database read — or None when the state
        cannot answer (not loaded, stale, or its feed unreachable: then ``degraded`` says so)."""
        keeper = self.keeper
        if keeper is None or not keeper.ready:
            return None
        event_id = req.event_id
        if event_id is None and req.ticket_id is not None:
            event_id = keeper.event_of_ticket(req.ticket_id)
        facts = self._facts(req, event_id, now)
        primitives, why = keeper.primitives(facts)
        if primitives is None:
            degraded += [why] if why else []
            return None
        lists = keeper.wallet_lists(req.wallet_address, now)
        for check in self.list_checks:
            lists = lists.merge(check(None, facts))
        return facts, primitives, lists

    def _score(self, req: ScoreRequest, started: float, deadline: float) -> Outcome:
        model = self.model()
        now = self.clock()
        degraded: list[str] = []
        # The stored-answer check is the write itself (INSERT … ON CONFLICT): a replay is found there.
        inputs = self._from_memory(req, now, degraded)
        if inputs is None:
            return self._score_sql(req, model, now, degraded, started, deadline)
        answer, future = self._answer_and_submit(req, model, inputs, degraded, started, deadline)
        return self._await_write(req, future, answer, deadline)

    def _from_sql(
        self, req: ScoreRequest, now: datetime, degraded: list[str]
    ) -> tuple[TransactionFacts, dict[str, float], ListStatus] | Outcome:
        """Features and lists from the database (the state is not ready, or its feed is unreachable); or
        the stored answer's replay if this id was answered already."""
        try:
            with self.engine.connect() as conn:
                already, lists = precheck(conn, req.transaction_id, req.wallet_address, now)
                if already:
                    stored = find_answer(conn, req.transaction_id)
                    if stored is not None:
                        return self._replay(req, stored.request_hash, stored.answer)
                event_id = req.event_id
                if event_id is None and req.ticket_id is not None:
                    event_id = event_of_ticket(conn, req.ticket_id)
                facts = self._facts(req, event_id, now)
                if isinstance(self.source, CachedFeatureSource):
                    primitives, why_degraded = self.source.primitives_status(conn, facts)
                    degraded += [why_degraded] if why_degraded and not degraded else []
                else:
                    primitives = self.source.primitives_in(conn, facts)
                for check in self.list_checks:
                    lists = lists.merge(check(conn, facts))
        except DBAPIError as exc:
            self._database.failure(f"read: {type(exc.orig).__name__}")
            raise self._unavailable(req, "database unavailable") from exc
        self._database.ok()
        return facts, primitives, lists

    def _answer_and_submit(
        self,
        req: ScoreRequest,
        model: ServingModel,
        inputs: tuple[TransactionFacts, dict[str, float], ListStatus],
        degraded: list[str],
        started: float,
        deadline: float,
    ) -> tuple[Answer, Future[Any]]:
        facts, primitives, lists = inputs
        features = self.features.finish(facts, primitives)
        row = model.vector(features)
        answer = self._decide(req, model, row, features, lists, degraded)
        if time.monotonic() > deadline:
            raise self._unavailable(req, "deadline exceeded before the answer was stored")
        write = self._pending(req, facts, answer, features, started)
        return answer, self.committer.submit(write)

    def _await_write(
        self, req: ScoreRequest, future: Future[Any], answer: Answer, deadline: float
    ) -> Outcome:
        try:
            result = future.result(timeout=max(0.001, deadline - time.monotonic()))
        except FutureTimeout:
            future.cancel()  # not yet picked up: never written; else it lands and a retry replays it
            raise self._unavailable(req, "deadline exceeded while storing the answer") from None
        except (DatabaseUnavailable, DBAPIError) as exc:
            self._database.failure(f"write: {_kind(exc)}")
            raise self._unavailable(req, "database unavailable") from exc
        return self._written(req, result, answer)

    def _written(self, req: ScoreRequest, result: Any, answer: Answer) -> Outcome:
        if result.status == "duplicate":
            assert result.stored is not None
            return self._replay(req, result.stored.request_hash, result.stored.answer)
        return Outcome(answer, replayed=False)

    # ------------------------------------------------------------------------------------------ inline
    async def score_inline(self, req: ScoreRequest) -> Outcome | None:
        """`score` on the event loop, for the in-memory path: the features, the tree walk and the decision
        (~1.5 ms of CPU, no I/O but the feed's Redis read) run inline and the commit is awaited — no thread
        hand-off. None when that is not the case (the state is not ready, or this id is already in flight
        here): the caller runs `score` in a thread. The SQL fallback (the feed turned out unreachable) runs
        in a thread from here."""
        if self.keeper is None or not self.keeper.ready:
            return None
        started = time.monotonic()
        deadline = started + self.deadline_s
        with self._inflight_slot(req) as (mine, owner):
            if not owner:
                return None  # `score` waits for the other one (in a thread) and replays or refuses
            model = self.model()
            degraded: list[str] = []
            now = self.clock()
            inputs = self._from_memory(req, now, degraded)
            if inputs is None:
                outcome = await asyncio.to_thread(
                    self._score_sql, req, model, now, degraded, started, deadline
                )
            else:
                answer, future = self._answer_and_submit(req, model, inputs, degraded, started, deadline)
                outcome = await self._await_write_async(req, future, answer, deadline)
            mine.outcome = outcome
            return outcome

    def _score_sql(
        self,
        req: ScoreRequest,
        model: ServingModel,
        now: datetime,
        degraded: list[str],
        started: float,
        deadline: float,
    ) -> Outcome:
        inputs = self._from_sql(req, now, degraded)
        if isinstance(inputs, Outcome):
            return inputs
        answer, future = self._answer_and_submit(req, model, inputs, degraded, started, deadline)
        return self._await_write(req, future, answer, deadline)

    async def _await_write_async(
        self, req: ScoreRequest, future: Future[Any], answer: Answer, deadline: float
    ) -> Outcome:
        waiter = asyncio.wrap_future(future)
        done, _ = await asyncio.wait({waiter}, timeout=max(0.001, deadline - time.monotonic()))
        if not done:
            future.cancel()  # not yet picked up: never written; else it lands and a retry replays it
            waiter.add_done_callback(lambda w: w.cancelled() or w.exception())  # nobody else reads it
            raise self._unavailable(req, "deadline exceeded while storing the answer")
        try:
            result = waiter.result()
        except (DatabaseUnavailable, DBAPIError) as exc:
            self._database.failure(f"write: {_kind(exc)}")
            raise self._unavailable(req, "database unavailable") from exc
        return self._written(req, result, answer)

    def _decide(
        self,
        req: ScoreRequest,
        model: ServingModel,
        row: np.ndarray,
        features: dict[str, float],
        lists: ListStatus,
        degraded: list[str],
    ) -> Answer:
        fast = self.fast_trees(model)
        approx: dict[str, float] | None = None
        if fast is not None:
            # One numpy walk of the trees: margin and approximate contributions, no DMatrix.
            margin, values = fast.explain(row)
            score = 1.0 / (1.0 + math.exp(-margin))
            approx = dict(zip(model.feature_names, values.tolist(), strict=True))
            bias = fast.bias
        else:
            score = model.predict(row)
        thresholds, override = self.threshold_runtime.current()
        decision = domain.decide(score, thresholds, lists)
        exact = self.exact_for == "all" or (self.exact_for == "non_approved" and decision != domain.APPROVED)
        if exact or approx is None:
            why = model.explain(row, approximate=not exact)
            contributions, bias = why.contributions, why.bias
        else:
            contributions = approx
        top = domain.top_contributions(contributions, features, self.top_k)
        return Answer(
            transaction_id=req.transaction_id,
            fraud_score=round(score, 6),
            decision=decision,
            confidence=domain.confidence(score, decision, lists),
            top_features=[
                {
                    "feature": c.feature,
                    "contribution": round(c.contribution, 6),
                    "value": _json_float(c.value),
                }
                for c in top
            ],
            reasons=domain.reasons_for(decision, top, lists)
            + _override_reason(override, score, decision, lists, self.thresholds),
            model_version=model.version,
            bias=round(bias, 6),
            degraded=bool(degraded),
            degraded_reasons=list(degraded),
            explanation="exact" if exact else "approximate",
        )

    def _pending(
        self,
        req: ScoreRequest,
        facts: TransactionFacts,
        answer: Answer,
        features: dict[str, float],
        started: float,
    ) -> PendingWrite:
        status = {"APPROVED": "approved", "BLOCKED": "blocked"}.get(answer.decision, "pending")
        transaction = {
            "transaction_id": facts.transaction_id,
            "wallet_address": facts.wallet_address,
            "event_id": facts.event_id,
            "ticket_id": facts.ticket_id,
            "price_paid": req.price_paid,
            "payment_method": facts.payment_method,
            "is_resale": facts.is_resale,
            "status": status,
            "timestamp": facts.timestamp,
            "seller_address": facts.seller_address,
            "ip_address": facts.ip_address,
            "country": req.country,
            "latitude": facts.latitude,
            "longitude": facts.longitude,
            "source": "api",
        }
        prediction = {
            "transaction_id": facts.transaction_id,
            "fraud_score": answer.fraud_score,
            "decision": answer.decision,
            "features": {k: _json_float(v) for k, v in features.items()},
            "model_version": answer.model_version,
            "timestamp": facts.timestamp,
            "confidence": answer.confidence,
            "top_features": answer.top_features,
            "reasons": answer.reasons,
            "degraded": answer.degraded,
            "degraded_reason": "; ".join(answer.degraded_reasons) or None,
            "request_hash": req.fingerprint,
            "latency_ms": round((time.monotonic() - started) * 1000.0, 3),
        }
        audit = {
            "transaction_id": facts.transaction_id,
            "action": "fraud_decision",
            "actor": req.actor,
            "decision": answer.decision,
            "fraud_score": answer.fraud_score,
            "model_version": answer.model_version,
            "degraded": answer.degraded,
            "request_hash": req.fingerprint,
            "metadata": {
                "explanation": answer.explanation,
                "bias": answer.bias,
                "client_timestamp": req.timestamp.isoformat() if req.timestamp else None,
                "event_inferred": req.event_id is None,
            },
            "timestamp": facts.timestamp,
        }
        return PendingWrite(transaction, prediction, audit)


def _kind(exc: BaseException) -> str:
    """A failure's kind for the log: the driver error's type, never its message (it quotes parameters)."""
    if isinstance(exc, DatabaseUnavailable):
        return str(exc).rsplit(": ", 1)[-1]
    return type(getattr(exc, "orig", None) or exc).__name__


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else float(value)


def _override_reason(
    override: ThresholdOverride | None, score: float, decision: str, lists: ListStatus, configured: Thresholds
) -> list[str]:
    """A reason when an alert's stricter thresholds changed this decision (alerting, issue 15)."""
    if override is None or decision == domain.decide(score, configured, lists):
        return []
    would = domain.decide(score, configured, lists)
    return [
        f"stricter thresholds in force ({override.rule}): block above {override.block:g}, review above "
        f"{override.review:g}, 2FA above {override.twofa:g}; the configured ones would give {would}"
    ]
