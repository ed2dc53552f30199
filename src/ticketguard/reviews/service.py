"""The review queue over SQLAlchemy Core: each MANUAL_REVIEW prediction is a case until an analyst decides it.

Nothing is added to the scoring path: a case *is* its ``fraud_predictions`` row (decision MANUAL_REVIEW),
and its ``review_cases`` row appears at the first claim. The queue is the MANUAL_REVIEW predictions of the
last ``horizon`` (REVIEW_QUEUE_HORIZON_DAYS) without a decided case, oldest first — an index range scan of
``idx_fraud_predictions_decision_ts`` and a primary-key probe of ``review_cases`` per row, never a full scan.

Two analysts can never decide one case: ``claim`` and ``decide`` are one conditional upsert each
(``INSERT … SELECT … ON CONFLICT (transaction_id) DO UPDATE … WHERE <not decided, not claimed by someone
else>`` RETURNING the row). On PostgreSQL the loser of a race waits for the winner's row lock, re-checks the
condition on the committed row and gets no row back; SQLite has one writer at a time. Call them first in
their transaction (on SQLite a read before the write can meet "database is locked" under contention).

``decide`` writes, in the caller's transaction, the case, the ``fraud_labels`` row (source ``analyst``,
``labelled_at`` = now, so the next training run and the delayed-label features see it from now on), one
``admin_audit_log`` row and, when REVIEW_CALLBACK_URL is set, the signed callback in the outbox. The
entrypoint commits (or rolls all of it back). Services never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)

from ticketguard import tables
from ticketguard.delivery.outbox import enqueue
from ticketguard.kit.db import dialect_insert
from ticketguard.reviews.domain import (
    API_STATUS,
    CLAIMED,
    DECIDED,
    DEFAULT_CLAIM_SECONDS,
    NOT_A_REVIEW_CASE,
    OPEN,
    ReviewConflict,
    ReviewError,
    ReviewInvalid,
    ReviewNotFound,
    callback_key,
    callback_ordering_key,
    check_analyst,
    check_claim_seconds,
    check_note,
    check_outcome,
    check_transaction_id,
    effective_status,
)
from ticketguard.security.audit import audit

if TYPE_CHECKING:
    from ticketguard.config import Settings

__all__ = [
    "API_STATUS",
    "DEFAULT_CLAIM_SECONDS",
    "DEFAULT_HORIZON",
    "NOT_A_REVIEW_CASE",
    "Lookup",
    "QueueStats",
    "ReviewCase",
    "ReviewConflict",
    "ReviewError",
    "ReviewInvalid",
    "ReviewNotFound",
    "case_detail",
    "claim",
    "decide",
    "get_case",
    "lookup",
    "queue",
    "queue_stats",
    "release",
]

MANUAL_REVIEW = "MANUAL_REVIEW"
DEFAULT_HORIZON = timedelta(days=14)
MAX_PAGE = 500
HISTORY_LIMIT = 20
LABEL_SOURCE = "analyst"
# A label from the payment network is evidence; an analyst's opinion does not overwrite it (the decision is
# still recorded on the case and in the audit log).
AUTHORITATIVE_LABEL_SOURCES = ("chargeback",)

p = tables.fraud_predictions
pa = tables.fraud_predictions_archive
c = tables.review_cases
t = tables.transactions
ta = tables.transactions_archive
labels = tables.fraud_labels


@dataclass(frozen=True)
class ReviewCase:
    transaction_id: str
    scored_at: datetime
    score: float | None
    decision: str
    reasons: list[str]
    top_features: list[dict[str, Any]]
    wallet_address: str | None
    event_id: str | None
    price: Decimal | None
    status: str  # open | claimed | decided, as of the `now` it was read at (an expired claim is open)
    claimed_by: str | None
    claim_expires_at: datetime | None
    outcome: str | None  # fraud | legitimate once decided
    decided_by: str | None
    decided_at: datetime | None
    note: str | None
    # Added beyond the agreed interface:
    model_version: str | None = None
    degraded: bool = False  # decided by the failure policy, not the model (the score may be missing)

    def age_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.scored_at).total_seconds())

    @property
    def api_status(self) -> str:
        return API_STATUS[self.status]


@dataclass(frozen=True)
class QueueStats:
    size: int  # undecided cases within the horizon (claimed ones included)
    claimed: int  # of which under a live claim
    oldest_age_seconds: float | None  # age of the oldest undecided case; None when the queue is empty


# ---------------------------------------------------------------------------------------------- reading
_CASE_COLUMNS = (
    c.c.status.label("case_status"),
    c.c.claimed_by,
    c.c.claim_expires_at,
    c.c.outcome,
    c.c.decided_by,
    c.c.decided_at,
    c.c.note,
)


def _prediction_select(pred: Any) -> Select[Any]:
    """A prediction with its case row and its transaction's facts (live or archived: retention moves the
    two tables on their own schedules)."""
    return select(
        pred.c.transaction_id,
        pred.c.timestamp,
        pred.c.fraud_score,
        pred.c.decision,
        pred.c.reasons,
        pred.c.top_features,
        pred.c.model_version,
        pred.c.degraded,
        func.coalesce(t.c.wallet_address, ta.c.wallet_address).label("wallet_address"),
        func.coalesce(t.c.event_id, ta.c.event_id).label("event_id"),
        func.coalesce(t.c.price_paid, ta.c.price_paid).label("price_paid"),
        *_CASE_COLUMNS,
    ).select_from(
        pred.outerjoin(c, c.c.transaction_id == pred.c.transaction_id)
        .outerjoin(t, t.c.transaction_id == pred.c.transaction_id)
        .outerjoin(ta, ta.c.transaction_id == pred.c.transaction_id)
    )


def _to_case(row: Any, now: datetime) -> ReviewCase:
    status, live = effective_status(row.case_status, row.claim_expires_at, now)
    return ReviewCase(
        transaction_id=row.transaction_id,
        scored_at=row.timestamp,
        score=None if row.fraud_score is None else float(row.fraud_score),
        decision=row.decision,
        reasons=list(row.reasons or []),
        top_features=list(row.top_features or []),
        wallet_address=row.wallet_address,
        event_id=row.event_id,
        price=row.price_paid,
        status=status,
        claimed_by=row.claimed_by if live else None,
        claim_expires_at=row.claim_expires_at if live else None,
        outcome=row.outcome if status == DECIDED else None,
        decided_by=row.decided_by if status == DECIDED else None,
        decided_at=row.decided_at if status == DECIDED else None,
        note=row.note if status == DECIDED else None,
        model_version=row.model_version,
        degraded=bool(row.degraded),
    )


# Constants written into the SQL, not bound: PostgreSQL then plans with the decision's own statistics (3 %
# of rows, so idx_fraud_predictions_decision_ts) even in a generic plan of a prepared statement (psycopg
# prepares a query after 5 runs; the API runs force_generic_plan). Bound, the generic plan guessed 1 row in
# 4 and scanned the timestamp index: 10x slower at 1 M predictions (benchmarks/bench_reviews.py).
_MANUAL_REVIEW_SQL: ColumnElement[str] = literal_column("'MANUAL_REVIEW'", String())
_DECIDED_SQL: ColumnElement[str] = literal_column("'decided'", String())


def _undecided() -> Any:
    return or_(c.c.status.is_(None), c.c.status != _DECIDED_SQL)


def _in_queue(now: datetime, horizon: timedelta) -> list[Any]:
    return [p.c.decision == _MANUAL_REVIEW_SQL, p.c.timestamp >= now - horizon, _undecided()]


def _check_page(limit: int, offset: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ReviewInvalid(f"limit must be 1-{MAX_PAGE}, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ReviewInvalid(f"offset must be an integer >= 0, got {offset!r}")


def _check_horizon(horizon: timedelta) -> None:
    if not isinstance(horizon, timedelta) or horizon <= timedelta(0):
        raise ReviewInvalid(f"horizon must be a positive timedelta, got {horizon!r}")


def queue(
    conn: Connection,
    *,
    now: datetime,
    limit: int = 50,
    offset: int = 0,
    horizon: timedelta = DEFAULT_HORIZON,
    status: str | None = None,
) -> list[ReviewCase]:
    """Undecided MANUAL_REVIEW cases scored within ``horizon`` before ``now``, oldest first. ``status``
    ('open' or 'claimed') keeps only those; None: both."""
    _check_page(limit, offset)
    _check_horizon(horizon)
    where = _in_queue(now, horizon)
    live_claim = and_(c.c.status == CLAIMED, c.c.claim_expires_at > now)
    if status == CLAIMED:
        where.append(live_claim)
    elif status == OPEN:
        where.append(~live_claim | c.c.status.is_(None))
    elif status is not None:
        raise ReviewInvalid(f"status must be open or claimed (decided cases are not queued), got {status!r}")
    rows = conn.execute(
        _prediction_select(p).where(*where).order_by(p.c.timestamp, p.c.id).limit(limit).offset(offset)
    )
    return [_to_case(row, now) for row in rows]


def queue_stats(conn: Connection, *, now: datetime, horizon: timedelta = DEFAULT_HORIZON) -> QueueStats:
    """Size of the queue, how much of it is claimed, and the age of its oldest case (one indexed query)."""
    _check_horizon(horizon)
    live = and_(c.c.status == CLAIMED, c.c.claim_expires_at > now)
    row = conn.execute(
        select(
            func.count().label("size"),
            func.coalesce(func.sum(case((live, 1), else_=0)), 0).label("claimed"),
            func.min(p.c.timestamp).label("oldest"),
        )
        .select_from(p.outerjoin(c, c.c.transaction_id == p.c.transaction_id))
        .where(*_in_queue(now, horizon))
    ).one()
    oldest = row.oldest
    return QueueStats(
        size=int(row.size),
        claimed=int(row.claimed or 0),
        oldest_age_seconds=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
    )


def _find(conn: Connection, transaction_id: str) -> Any:
    """The prediction (live, else archived) with its case and transaction, whatever its decision."""
    row = conn.execute(_prediction_select(p).where(p.c.transaction_id == transaction_id)).first()
    if row is None:
        row = conn.execute(_prediction_select(pa).where(pa.c.transaction_id == transaction_id)).first()
    return row


def get_case(conn: Connection, transaction_id: str, *, now: datetime | None = None) -> ReviewCase | None:
    """The case of a MANUAL_REVIEW transaction (decided or not), or None when it is not one."""
    row = _find(conn, transaction_id)
    if row is None or row.decision != MANUAL_REVIEW:
        return None
    return _to_case(row, now or datetime.now(UTC))


@dataclass(frozen=True)
class Lookup:
    """What the read API answers: any scored transaction, with its case when it is one."""

    transaction_id: str
    decision: str
    scored_at: datetime
    case: ReviewCase | None

    @property
    def api_status(self) -> str:
        return NOT_A_REVIEW_CASE if self.case is None else self.case.api_status


def lookup(conn: Connection, transaction_id: str, *, now: datetime) -> Lookup | None:
    """The scored transaction and, if it is a MANUAL_REVIEW case, its case; None when it was never scored
    (or its prediction is no longer kept)."""
    row = _find(conn, transaction_id)
    if row is None:
        return None
    found = _to_case(row, now) if row.decision == MANUAL_REVIEW else None
    return Lookup(row.transaction_id, str(row.decision), row.timestamp, found)


def case_detail(
    conn: Connection, transaction_id: str, *, now: datetime | None = None, history_limit: int = HISTORY_LIMIT
) -> dict[str, Any]:
    """Everything an analyst needs to decide: the case, all features, the contributions and reasons, the
    transaction, and the wallet's recent history (its transactions with their decisions and labels, and
    counts). Raises ReviewNotFound when the transaction is not a MANUAL_REVIEW case."""
    when = now or datetime.now(UTC)
    row = _find(conn, transaction_id)
    if row is None or row.decision != MANUAL_REVIEW:
        raise ReviewNotFound(f"transaction {transaction_id!r} is not a MANUAL_REVIEW case")
    found = _to_case(row, when)
    prediction = (
        conn.execute(
            select(p.c.features, p.c.degraded_reason, p.c.confidence).where(
                p.c.transaction_id == transaction_id
            )
        ).first()
        or conn.execute(
            select(pa.c.features, pa.c.degraded_reason, pa.c.confidence).where(
                pa.c.transaction_id == transaction_id
            )
        ).first()
    )
    transaction = None
    for table in (t, ta):
        txn_row = conn.execute(select(table).where(table.c.transaction_id == transaction_id)).first()
        if txn_row is not None:
            transaction = {k: v for k, v in txn_row._mapping.items() if k != "archived_at"}
            break
    label = conn.execute(
        select(labels.c.is_fraud, labels.c.source, labels.c.labelled_at, labels.c.labelled_by).where(
            labels.c.transaction_id == transaction_id
        )
    ).first()
    return {
        "case": found,
        "features": dict(prediction.features or {}) if prediction is not None else {},
        "contributions": found.top_features,
        "reasons": found.reasons,
        "confidence": None if prediction is None else prediction.confidence,
        "degraded_reason": None if prediction is None else prediction.degraded_reason,
        "transaction": transaction,
        "label": None if label is None else dict(label._mapping),
        "wallet_history": _wallet_history(conn, found.wallet_address, history_limit),
        "wallet_summary": _wallet_summary(conn, found.wallet_address, when),
    }


def _wallet_history(conn: Connection, wallet: str | None, limit: int) -> list[dict[str, Any]]:
    """The wallet's newest transactions (idx_transactions_wallet_ts) with decision, score and label."""
    if wallet is None:
        return []
    rows = conn.execute(
        select(
            t.c.transaction_id,
            t.c.timestamp,
            t.c.event_id,
            t.c.price_paid,
            t.c.is_resale,
            t.c.seller_address,
            t.c.country,
            p.c.decision,
            p.c.fraud_score,
            labels.c.is_fraud.label("labelled_fraud"),
            labels.c.source.label("label_source"),
        )
        .select_from(
            t.outerjoin(p, p.c.transaction_id == t.c.transaction_id).outerjoin(
                labels, labels.c.transaction_id == t.c.transaction_id
            )
        )
        .where(t.c.wallet_address == wallet)
        .order_by(t.c.timestamp.desc(), t.c.transaction_id.desc())
        .limit(limit)
    ).mappings()
    return [dict(r) for r in rows]


def _wallet_summary(conn: Connection, wallet: str | None, now: datetime) -> dict[str, Any]:
    if wallet is None:
        return {}
    since = now - timedelta(days=30)
    counts = conn.execute(
        select(
            func.count().label("transactions_30d"),
            func.coalesce(func.sum(case((labels.c.is_fraud.is_(True), 1), else_=0)), 0).label(
                "fraud_labels_30d"
            ),
            func.coalesce(func.sum(case((p.c.decision == "BLOCKED", 1), else_=0)), 0).label("blocked_30d"),
            func.coalesce(func.sum(case((p.c.decision == MANUAL_REVIEW, 1), else_=0)), 0).label(
                "reviews_30d"
            ),
        )
        .select_from(
            t.outerjoin(p, p.c.transaction_id == t.c.transaction_id).outerjoin(
                labels, labels.c.transaction_id == t.c.transaction_id
            )
        )
        .where(t.c.wallet_address == wallet, t.c.timestamp >= since)
    ).one()
    bl = tables.blacklisted_wallets
    blacklisted = conn.execute(
        select(
            exists().where(
                bl.c.wallet_address == wallet, or_(bl.c.expires_at.is_(None), bl.c.expires_at > now)
            )
        )
    ).scalar()
    return {**{k: int(v or 0) for k, v in counts._mapping.items()}, "blacklisted": bool(blacklisted)}


# ---------------------------------------------------------------------------------------------- writing
def _is_review_case() -> Any:
    """EXISTS a MANUAL_REVIEW prediction (live or archived) for the bound :tg_txn."""
    txn = _txn_param()
    return or_(
        exists().where(p.c.transaction_id == txn, p.c.decision == MANUAL_REVIEW),
        exists().where(pa.c.transaction_id == txn, pa.c.decision == MANUAL_REVIEW),
    )


def _txn_param() -> Any:
    return bindparam("tg_txn", type_=String())


def _upsert(
    conn: Connection, transaction_id: str, values: dict[str, Any], allowed: Any, update_columns: list[str]
) -> Any:
    """INSERT the case row if the transaction is a MANUAL_REVIEW case, or UPDATE the existing row when
    ``allowed`` holds for it: one statement, the row returned only when it was written."""
    names = list(values)
    source = select(*(literal(values[name], type_=c.c[name].type).label(name) for name in names)).where(
        _is_review_case()
    )
    insert = dialect_insert(conn, c).from_select(names, source)
    upsert = insert.on_conflict_do_update(
        index_elements=[c.c.transaction_id],
        set_={name: insert.excluded[name] for name in update_columns},
        where=allowed(insert.excluded),
    ).returning(*c.c)
    return conn.execute(upsert, {"tg_txn": transaction_id}).first()


def _takeable(now: datetime) -> Any:
    """The ``allowed`` condition of claim and decide: an undecided case that is open, already the
    analyst's, or whose claim has expired."""

    def allowed(excluded: Any) -> Any:
        return and_(
            c.c.status != DECIDED,
            or_(c.c.status == OPEN, c.c.claimed_by == excluded.claimed_by, c.c.claim_expires_at <= now),
        )

    return allowed


def _why_not(conn: Connection, transaction_id: str, analyst: str, now: datetime, verb: str) -> ReviewError:
    row = _find(conn, transaction_id)
    if row is None or row.decision != MANUAL_REVIEW:
        return ReviewNotFound(f"transaction {transaction_id!r} is not a MANUAL_REVIEW case")
    status, _live = effective_status(row.case_status, row.claim_expires_at, now)
    if status == DECIDED:
        when = row.decided_at.isoformat() if row.decided_at else "?"
        return ReviewConflict(
            f"cannot {verb} {transaction_id!r}: already decided {row.outcome} by {row.decided_by} at {when}"
        )
    if status == CLAIMED and row.claimed_by != analyst:
        return ReviewConflict(
            f"cannot {verb} {transaction_id!r}: claimed by {row.claimed_by} until "
            f"{row.claim_expires_at.isoformat()}"
        )
    return ReviewConflict(f"cannot {verb} {transaction_id!r}: it changed meanwhile, try again")


def claim(
    conn: Connection,
    transaction_id: str,
    *,
    analyst: str,
    now: datetime,
    ttl_seconds: float | None = None,
    ip: str | None = None,
) -> ReviewCase:
    """Claim a case for ``ttl_seconds`` (default 900, REVIEW_CLAIM_SECONDS): only its claimant may decide it
    until then. Claiming one's own live claim again extends it; an expired claim may be taken by anyone.
    ReviewConflict when someone else holds it or it is decided; ReviewNotFound when it is not a case."""
    transaction_id = check_transaction_id(transaction_id)
    analyst = check_analyst(analyst)
    seconds = check_claim_seconds(DEFAULT_CLAIM_SECONDS if ttl_seconds is None else ttl_seconds)
    expires = now + timedelta(seconds=seconds)

    row = _upsert(
        conn,
        transaction_id,
        {
            "transaction_id": transaction_id,
            "status": CLAIMED,
            "claimed_by": analyst,
            "claimed_at": now,
            "claim_expires_at": expires,
            "created_at": now,
            "updated_at": now,
        },
        _takeable(now),
        ["status", "claimed_by", "claimed_at", "claim_expires_at", "updated_at"],
    )
    if row is None:
        raise _why_not(conn, transaction_id, analyst, now, "claim")
    audit(
        conn,
        actor=analyst,
        action="review.claim",
        now=now,
        ip_address=ip,
        details={"transaction_id": transaction_id, "claim_expires_at": expires.isoformat()},
    )
    found = get_case(conn, transaction_id, now=now)
    assert found is not None
    return found


def release(
    conn: Connection, transaction_id: str, *, analyst: str, now: datetime, ip: str | None = None
) -> None:
    """Give a claim back (the case is open again). Releasing a case one does not hold is a no-op, unless
    someone else holds it or it is decided (ReviewConflict)."""
    transaction_id = check_transaction_id(transaction_id)
    analyst = check_analyst(analyst)
    result = conn.execute(
        update(c)
        .where(c.c.transaction_id == transaction_id, c.c.status == CLAIMED, c.c.claimed_by == analyst)
        .values(status=OPEN, claimed_by=None, claimed_at=None, claim_expires_at=None, updated_at=now)
    )
    if result.rowcount == 1:
        audit(
            conn,
            actor=analyst,
            action="review.release",
            now=now,
            ip_address=ip,
            details={"transaction_id": transaction_id},
        )
        return
    row = _find(conn, transaction_id)
    if row is None or row.decision != MANUAL_REVIEW:
        raise ReviewNotFound(f"transaction {transaction_id!r} is not a MANUAL_REVIEW case")
    status, _live = effective_status(row.case_status, row.claim_expires_at, now)
    if status == DECIDED or (status == CLAIMED and row.claimed_by != analyst):
        raise _why_not(conn, transaction_id, analyst, now, "release")


def decide(
    conn: Connection,
    transaction_id: str,
    *,
    analyst: str,
    outcome: str,
    note: str,
    now: datetime,
    ip: str | None = None,
    settings: Settings | None = None,
) -> ReviewCase:
    """Decide a case fraud or legitimate, with a note, in the caller's transaction: the case row, the
    ``fraud_labels`` row (source analyst, labelled_at = now), one ``admin_audit_log`` row and, when
    REVIEW_CALLBACK_URL is set, the signed callback in the outbox. Allowed for the analyst holding the claim,
    or on an open case (claim and decision in one step); ReviewConflict otherwise."""
    transaction_id = check_transaction_id(transaction_id)
    analyst = check_analyst(analyst)
    outcome = check_outcome(outcome)
    note = check_note(note)

    row = _upsert(
        conn,
        transaction_id,
        {
            "transaction_id": transaction_id,
            "status": DECIDED,
            "claimed_by": analyst,
            "claimed_at": now,
            "claim_expires_at": None,
            "outcome": outcome,
            "decided_by": analyst,
            "decided_at": now,
            "note": note,
            "created_at": now,
            "updated_at": now,
        },
        _takeable(now),
        [
            "status",
            "claimed_by",
            "claim_expires_at",
            "outcome",
            "decided_by",
            "decided_at",
            "note",
            "updated_at",
        ],
    )
    if row is None:
        raise _why_not(conn, transaction_id, analyst, now, "decide")

    label = _write_label(conn, transaction_id, outcome=outcome, analyst=analyst, note=note, now=now)
    callback = False
    if settings is not None and settings.review_callback_url:
        callback = enqueue(
            conn,
            channel="webhook",
            destination=settings.review_callback_url,
            payload=callback_payload(transaction_id, outcome, now),
            idempotency_key=callback_key(transaction_id, outcome),
            ordering_key=callback_ordering_key(transaction_id),
            source="review",
            now=now,
        )
    audit(
        conn,
        actor=analyst,
        action="review.decide",
        now=now,
        ip_address=ip,
        details={
            "transaction_id": transaction_id,
            "outcome": outcome,
            "label": label,
            "callback_queued": callback,
            "note_chars": len(note),
        },
    )
    found = get_case(conn, transaction_id, now=now)
    assert found is not None
    return found


def callback_payload(transaction_id: str, outcome: str, decided_at: datetime) -> dict[str, Any]:
    """What the backend is told (no analyst name, no note: those stay inside)."""
    return {
        "type": "review.decided",
        "transaction_id": transaction_id,
        "outcome": outcome,
        "decided_at": decided_at.astimezone(UTC).isoformat(),
    }


def _write_label(
    conn: Connection, transaction_id: str, *, outcome: str, analyst: str, note: str, now: datetime
) -> dict[str, Any]:
    """Upsert the analyst's label; what it replaced (or why it kept the old one), for the audit row."""
    previous = conn.execute(
        select(labels.c.is_fraud, labels.c.source).where(labels.c.transaction_id == transaction_id)
    ).first()
    insert = dialect_insert(conn, labels).values(
        transaction_id=transaction_id,
        is_fraud=outcome == "fraud",
        source=LABEL_SOURCE,
        labelled_at=now,
        labelled_by=analyst,
        notes=note,
    )
    upsert = insert.on_conflict_do_update(
        index_elements=[labels.c.transaction_id],
        set_={
            name: insert.excluded[name]
            for name in ("is_fraud", "source", "labelled_at", "labelled_by", "notes", "pattern")
        },
        where=labels.c.source.not_in(AUTHORITATIVE_LABEL_SOURCES),
    ).returning(labels.c.transaction_id)
    written = conn.execute(upsert).first() is not None
    out: dict[str, Any] = {"written": written}
    if previous is not None:
        out["previous"] = {"is_fraud": bool(previous.is_fraud), "source": previous.source}
    return out
