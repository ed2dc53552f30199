"""The review queue on SQLite and PostgreSQL: what is queued, claims with expiry, one decision per case even
under concurrent analysts, and the decision's writes (case, label, audit, callback) in one transaction."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from review_fixtures import T0, WALLET, scored
from ticketguard import tables
from ticketguard.config import Settings
from ticketguard.reviews import service
from ticketguard.reviews.service import (
    QueueStats,
    ReviewConflict,
    ReviewInvalid,
    ReviewNotFound,
    case_detail,
    claim,
    decide,
    get_case,
    queue,
    queue_stats,
    release,
)

NOW = T0 + timedelta(hours=1)
NOTE = "card owner confirmed by phone"


def _count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _rows(engine: Engine, table: Any, *where: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).where(*where)).mappings()]


def _in_tx(engine: Engine, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with engine.begin() as conn:
        return fn(conn, *args, **kwargs)


# ---------------------------------------------------------------------------------------------- queue
def test_queue_holds_undecided_manual_reviews_oldest_first_within_the_horizon(engine: Engine) -> None:
    scored(engine, "r-new", at=T0 - timedelta(minutes=5))
    scored(engine, "r-old", at=T0 - timedelta(hours=3))
    scored(engine, "r-mid", at=T0 - timedelta(hours=1))
    scored(engine, "approved", decision="APPROVED")
    scored(engine, "blocked", decision="BLOCKED")
    scored(engine, "2fa", decision="REQUIRE_2FA")
    scored(engine, "r-ancient", at=T0 - timedelta(days=20))  # past the 14-day horizon
    scored(engine, "r-done", at=T0 - timedelta(hours=2))
    _in_tx(engine, decide, "r-done", analyst="ana", outcome="legitimate", note=NOTE, now=NOW)

    with engine.connect() as conn:
        cases = queue(conn, now=NOW)
        assert [c.transaction_id for c in cases] == ["r-old", "r-mid", "r-new"]
        first = cases[0]
        assert first.status == "open"
        assert first.decision == "MANUAL_REVIEW"
        assert first.wallet_address == WALLET
        assert first.event_id == "ev-1"
        assert str(first.price) == "120.00000000"
        assert first.score == pytest.approx(0.7)
        assert first.reasons
        assert first.top_features[0]["feature"] == "new_ip_for_wallet"
        assert [c.transaction_id for c in queue(conn, now=NOW, limit=1, offset=1)] == ["r-mid"]
        wide = queue(conn, now=NOW, horizon=timedelta(days=30))
        assert next(c.transaction_id for c in wide) == "r-ancient"
        stats = queue_stats(conn, now=NOW)
    assert stats == QueueStats(size=3, claimed=0, oldest_age_seconds=stats.oldest_age_seconds)
    assert stats.oldest_age_seconds == pytest.approx(4 * 3600 - 0.02, abs=0.01)


def test_queue_stats_count_live_claims_and_an_empty_queue_has_no_age(engine: Engine) -> None:
    with engine.connect() as conn:
        assert queue_stats(conn, now=NOW) == QueueStats(0, 0, None)
    scored(engine, "a", at=T0)
    scored(engine, "b", at=T0 + timedelta(minutes=1))
    _in_tx(engine, claim, "a", analyst="ana", now=NOW, ttl_seconds=600)
    with engine.connect() as conn:
        assert queue_stats(conn, now=NOW).claimed == 1
        assert [c.transaction_id for c in queue(conn, now=NOW, status="claimed")] == ["a"]
        assert [c.transaction_id for c in queue(conn, now=NOW, status="open")] == ["b"]
        later = NOW + timedelta(seconds=601)  # the claim ran out: open again
        assert queue_stats(conn, now=later).claimed == 0
        assert [c.transaction_id for c in queue(conn, now=later, status="open")] == ["a", "b"]


def test_queue_rejects_bad_paging(engine: Engine) -> None:
    with engine.connect() as conn:
        for kwargs in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
            with pytest.raises(ReviewInvalid, match=r"limit|offset"):
                queue(conn, now=NOW, **kwargs)
        with pytest.raises(ReviewInvalid, match="status"):
            queue(conn, now=NOW, status="decided")


# ---------------------------------------------------------------------------------------------- claims
def test_a_claim_keeps_other_analysts_out_until_it_expires_or_is_released(engine: Engine) -> None:
    scored(engine, "t1")
    case = _in_tx(engine, claim, "t1", analyst="ana", now=NOW, ttl_seconds=300, ip="10.0.0.5")
    assert (case.status, case.claimed_by) == ("claimed", "ana")
    [claimed] = _rows(engine, tables.admin_audit_log)
    assert (claimed["action"], claimed["admin_user"], claimed["ip_address"]) == (
        "review.claim",
        "ana",
        "10.0.0.5",
    )
    assert case.claim_expires_at == NOW + timedelta(seconds=300)

    with pytest.raises(ReviewConflict, match="claimed by ana"):
        _in_tx(engine, claim, "t1", analyst="bob", now=NOW + timedelta(seconds=10))
    with pytest.raises(ReviewConflict, match="claimed by ana"):
        _in_tx(engine, decide, "t1", analyst="bob", outcome="fraud", note=NOTE, now=NOW)
    with pytest.raises(ReviewConflict, match="claimed by ana"):
        _in_tx(engine, release, "t1", analyst="bob", now=NOW)

    # ana extends her own claim
    again = _in_tx(engine, claim, "t1", analyst="ana", now=NOW + timedelta(seconds=200), ttl_seconds=300)
    assert again.claim_expires_at == NOW + timedelta(seconds=500)
    # after it runs out, bob may take it
    taken = _in_tx(engine, claim, "t1", analyst="bob", now=NOW + timedelta(seconds=501))
    assert taken.claimed_by == "bob"
    assert taken.claim_expires_at == NOW + timedelta(seconds=501 + service.DEFAULT_CLAIM_SECONDS)
    with pytest.raises(ReviewConflict, match="claimed by bob"):
        _in_tx(
            engine, decide, "t1", analyst="ana", outcome="fraud", note=NOTE, now=NOW + timedelta(seconds=502)
        )

    _in_tx(engine, release, "t1", analyst="bob", now=NOW + timedelta(seconds=600))
    with engine.connect() as conn:
        released = get_case(conn, "t1", now=NOW + timedelta(seconds=600))
    assert released is not None
    assert (released.status, released.claimed_by) == ("open", None)
    _in_tx(engine, release, "t1", analyst="bob", now=NOW + timedelta(seconds=601))  # nothing held: no-op
    assert _in_tx(engine, claim, "t1", analyst="ana", now=NOW + timedelta(seconds=610)).claimed_by == "ana"
    actions = [r["action"] for r in _rows(engine, tables.admin_audit_log)]
    assert actions.count("review.claim") == 4
    assert actions.count("review.release") == 1


def test_only_manual_review_decisions_are_cases(engine: Engine) -> None:
    scored(engine, "ok", decision="APPROVED")
    for fn, kwargs in (
        (claim, {"analyst": "ana", "now": NOW}),
        (decide, {"analyst": "ana", "outcome": "fraud", "note": NOTE, "now": NOW}),
        (release, {"analyst": "ana", "now": NOW}),
    ):
        for txn in ("ok", "never-scored"):
            with pytest.raises(ReviewNotFound, match="not a MANUAL_REVIEW case"):
                _in_tx(engine, fn, txn, **kwargs)
    assert _count(engine, tables.review_cases) == 0
    with engine.connect() as conn:
        assert get_case(conn, "ok") is None
        with pytest.raises(ReviewNotFound):
            case_detail(conn, "ok")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outcome": "maybe"}, "outcome must be one of fraud, legitimate"),
        ({"note": "   "}, "note is required"),
        ({"note": "x" * 2001}, "note must be at most 2000 characters, got 2001"),
        ({"note": "bad\x00byte"}, "control characters"),
        ({"analyst": ""}, "analyst must be a non-empty name"),
        ({"analyst": "a" * 65}, "analyst must be at most 64"),
    ],
)
def test_decide_refuses_bad_input_and_writes_nothing(engine: Engine, kwargs: dict, message: str) -> None:
    scored(engine, "t1")
    args = {"analyst": "ana", "outcome": "fraud", "note": NOTE, "now": NOW, **kwargs}
    with pytest.raises(ReviewInvalid, match=message):
        _in_tx(engine, decide, "t1", **args)
    for table in (tables.review_cases, tables.fraud_labels, tables.admin_audit_log, tables.outbox):
        assert _count(engine, table) == 0


def test_claim_refuses_bad_durations(engine: Engine) -> None:
    scored(engine, "t1")
    for ttl in (0, -5, 86_401, "900", True):
        with pytest.raises(ReviewInvalid, match="claim duration"):
            _in_tx(engine, claim, "t1", analyst="ana", now=NOW, ttl_seconds=ttl)


# ---------------------------------------------------------------------------------------------- decide
def test_decide_writes_case_label_and_audit_and_is_final(engine: Engine) -> None:
    scored(engine, "t1")
    _in_tx(engine, claim, "t1", analyst="ana", now=NOW)
    decided_at = NOW + timedelta(minutes=3)
    case = _in_tx(
        engine,
        decide,
        "t1",
        analyst="ana",
        outcome="fraud",
        note=f"  {NOTE}\n",
        now=decided_at,
        ip="10.1.2.3",
    )
    assert (case.status, case.outcome, case.decided_by, case.decided_at) == (
        "decided",
        "fraud",
        "ana",
        decided_at,
    )
    assert case.note == NOTE
    assert case.claimed_by is None

    [label] = _rows(engine, tables.fraud_labels)
    assert label["transaction_id"] == "t1"
    assert label["is_fraud"] is True
    assert (label["source"], label["labelled_at"], label["labelled_by"]) == ("analyst", decided_at, "ana")
    assert label["notes"] == NOTE
    [entry] = _rows(engine, tables.admin_audit_log, tables.admin_audit_log.c.action == "review.decide")
    assert (entry["admin_user"], entry["ip_address"], entry["timestamp"]) == ("ana", "10.1.2.3", decided_at)
    assert entry["metadata"]["transaction_id"] == "t1"
    assert entry["metadata"]["outcome"] == "fraud"
    assert entry["metadata"]["label"] == {"written": True}
    assert entry["metadata"]["callback_queued"] is False
    assert _count(engine, tables.outbox) == 0  # no REVIEW_CALLBACK_URL

    for analyst in ("ana", "bob"):
        with pytest.raises(ReviewConflict, match="already decided fraud by ana"):
            _in_tx(engine, decide, "t1", analyst=analyst, outcome="legitimate", note=NOTE, now=decided_at)
        with pytest.raises(ReviewConflict, match="already decided"):
            _in_tx(engine, claim, "t1", analyst=analyst, now=decided_at)
    with engine.connect() as conn:
        assert queue(conn, now=decided_at) == []
        assert get_case(conn, "t1", now=decided_at) == case
    assert _rows(engine, tables.fraud_labels)[0]["is_fraud"] is True


def test_decide_on_an_open_case_claims_and_decides_in_one_step(engine: Engine) -> None:
    scored(engine, "t1")
    case = _in_tx(engine, decide, "t1", analyst="bob", outcome="legitimate", note=NOTE, now=NOW)
    assert (case.status, case.outcome) == ("decided", "legitimate")
    assert _rows(engine, tables.fraud_labels)[0]["is_fraud"] is False


def test_an_analyst_label_replaces_earlier_labels_but_not_a_chargeback(engine: Engine) -> None:
    scored(engine, "sim")
    scored(engine, "cb")
    with engine.begin() as conn:
        conn.execute(
            tables.fraud_labels.insert(),
            [
                {"transaction_id": "sim", "is_fraud": True, "source": "simulator", "labelled_at": T0},
                {"transaction_id": "cb", "is_fraud": True, "source": "chargeback", "labelled_at": T0},
            ],
        )
    _in_tx(engine, decide, "sim", analyst="ana", outcome="legitimate", note=NOTE, now=NOW)
    _in_tx(engine, decide, "cb", analyst="ana", outcome="legitimate", note=NOTE, now=NOW)
    labels = {r["transaction_id"]: r for r in _rows(engine, tables.fraud_labels)}
    assert (labels["sim"]["source"], labels["sim"]["is_fraud"]) == ("analyst", False)
    assert (labels["cb"]["source"], labels["cb"]["is_fraud"], labels["cb"]["labelled_at"]) == (
        "chargeback",
        True,
        T0,
    )
    audit = {
        r["metadata"]["transaction_id"]: r["metadata"]["label"]
        for r in _rows(engine, tables.admin_audit_log, tables.admin_audit_log.c.action == "review.decide")
    }
    assert audit["sim"] == {"written": True, "previous": {"is_fraud": True, "source": "simulator"}}
    assert audit["cb"] == {"written": False, "previous": {"is_fraud": True, "source": "chargeback"}}


@pytest.mark.parametrize("failing", ["audit", "enqueue", "label"])
def test_decide_is_one_transaction_a_late_failure_leaves_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    scored(engine, "t1")
    _in_tx(engine, claim, "t1", analyst="ana", now=NOW)
    claims_before = _rows(engine, tables.review_cases)

    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError(f"{failing} failed")

    target = {"audit": "audit", "enqueue": "enqueue", "label": "_write_label"}[failing]
    monkeypatch.setattr(service, target, boom)
    settings = Settings(review_callback_url="http://127.0.0.1:9/hook", webhook_signing_secret="s" * 32)
    with pytest.raises(RuntimeError, match=f"{failing} failed"):
        _in_tx(engine, decide, "t1", analyst="ana", outcome="fraud", note=NOTE, now=NOW, settings=settings)
    assert _rows(engine, tables.review_cases) == claims_before  # still claimed, not decided
    assert _count(engine, tables.fraud_labels) == 0
    assert _count(engine, tables.outbox) == 0
    assert _count(engine, tables.admin_audit_log, tables.admin_audit_log.c.action == "review.decide") == 0
    monkeypatch.undo()
    # and it can be decided afterwards
    _in_tx(engine, decide, "t1", analyst="ana", outcome="fraud", note=NOTE, now=NOW, settings=settings)
    assert _count(engine, tables.fraud_labels) == 1
    assert _count(engine, tables.outbox) == 1


def test_decide_queues_the_callback_when_a_url_is_set(engine: Engine) -> None:
    scored(engine, "t1")
    settings = Settings(
        review_callback_url="https://backend.example/reviews", webhook_signing_secret="s" * 32
    )
    _in_tx(engine, decide, "t1", analyst="ana", outcome="fraud", note=NOTE, now=NOW, settings=settings)
    [row] = _rows(engine, tables.outbox)
    assert (row["channel"], row["destination"], row["source"]) == (
        "webhook",
        "https://backend.example/reviews",
        "review",
    )
    assert (row["idempotency_key"], row["ordering_key"]) == ("review:t1:fraud", "review:t1")
    assert row["payload"] == {
        "type": "review.decided",
        "transaction_id": "t1",
        "outcome": "fraud",
        "decided_at": NOW.isoformat(),
    }
    assert NOTE not in str(row["payload"])
    assert "ana" not in str(row["payload"])


# ---------------------------------------------------------------------------------------------- races
def test_two_analysts_claiming_at_once_one_wins(engine: Engine) -> None:
    """The loser's statement runs while the winner's transaction is still open: on PostgreSQL it waits for
    the row lock and then sees the committed claim; on SQLite it waits for the write lock."""
    scored(engine, "race")
    results: dict[str, Any] = {}
    started = threading.Event()

    def bob() -> None:
        started.set()
        try:
            results["bob"] = _in_tx(engine, claim, "race", analyst="bob", now=NOW)
        except Exception as exc:
            results["bob"] = exc

    with engine.begin() as conn:
        results["ana"] = claim(conn, "race", analyst="ana", now=NOW)
        thread = threading.Thread(target=bob)
        thread.start()
        started.wait(5)
        thread.join(0.5)
        assert thread.is_alive(), "bob's claim must wait for ana's open transaction"
    thread.join(15)
    assert results["ana"].claimed_by == "ana"
    assert isinstance(results["bob"], ReviewConflict), results["bob"]
    assert "claimed by ana" in str(results["bob"])
    [row] = _rows(engine, tables.review_cases)
    assert row["claimed_by"] == "ana"


def test_many_analysts_deciding_at_once_leave_exactly_one_decision(engine: Engine) -> None:
    scored(engine, "race")
    barrier = threading.Barrier(6)

    def attempt(i: int) -> str:
        barrier.wait(10)
        try:
            outcome = "fraud" if i % 2 else "legitimate"
            _in_tx(engine, decide, "race", analyst=f"analyst-{i}", outcome=outcome, note=NOTE, now=NOW)
            return "won"
        except ReviewConflict:
            return "conflict"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(attempt, range(6)))
    assert sorted(outcomes) == ["conflict"] * 5 + ["won"]
    [case] = _rows(engine, tables.review_cases)
    [label] = _rows(engine, tables.fraud_labels)
    assert label["labelled_by"] == case["decided_by"]
    assert label["is_fraud"] == (case["outcome"] == "fraud")
    assert _count(engine, tables.admin_audit_log, tables.admin_audit_log.c.action == "review.decide") == 1


# ---------------------------------------------------------------------------------------------- detail
def test_case_detail_has_features_contributions_and_the_wallets_history(engine: Engine) -> None:
    scored(engine, "old-1", decision="APPROVED", at=T0 - timedelta(days=2))
    scored(engine, "old-2", decision="BLOCKED", at=T0 - timedelta(days=1))
    scored(engine, "other", decision="APPROVED", wallet="0x" + "cd" * 20)
    scored(engine, "t1")
    with engine.begin() as conn:
        conn.execute(
            tables.fraud_labels.insert().values(
                transaction_id="old-2", is_fraud=True, source="chargeback", labelled_at=T0
            )
        )
    with engine.connect() as conn:
        detail = case_detail(conn, "t1", now=NOW)
    assert detail["case"].transaction_id == "t1"
    assert detail["features"] == {"is_resale": 0.0, "new_ip_for_wallet": 1.0}
    assert detail["contributions"][0]["feature"] == "new_ip_for_wallet"
    assert detail["reasons"] == ["first purchase from this IP (raises risk, +1.20)"]
    assert detail["transaction"]["wallet_address"] == WALLET
    assert [h["transaction_id"] for h in detail["wallet_history"]] == ["t1", "old-2", "old-1"]
    assert detail["wallet_history"][1]["decision"] == "BLOCKED"
    assert detail["wallet_history"][1]["labelled_fraud"] is True
    assert detail["wallet_summary"] == {
        "transactions_30d": 3,
        "fraud_labels_30d": 1,
        "blocked_30d": 1,
        "reviews_30d": 1,
        "blacklisted": False,
    }


# ---------------------------------------------------------------------------------------------- labels used
def test_an_analyst_label_reaches_training_and_the_delayed_label_features(engine: Engine) -> None:
    """The next training run reads labels through `read_history`; the delayed-label features (an event's or
    seller's known fraud) count a label from its labelled_at on; the API workers' in-memory feature state
    reloads labels when `labels_fingerprint` changes."""
    from ticketguard.features.repository import TransactionFacts, read_primitives
    from ticketguard.features.specs import FeatureParams
    from ticketguard.history import read_history
    from ticketguard.scoring.online import labels_fingerprint, read_labels

    scored(engine, "t1", event_id="ev-hot")
    params = FeatureParams()
    decided_at = T0 + timedelta(days=1)
    later = TransactionFacts(
        transaction_id="later",
        wallet_address="0x" + "ef" * 20,
        event_id="ev-hot",
        timestamp=T0 + timedelta(days=10),  # past the label delay (7 d): t1 is in the risk window
        price_paid=50.0,
    )
    with engine.connect() as conn:
        assert read_primitives(conn, later, params)["e_risk_fraud"] == 0
        fingerprint = labels_fingerprint(conn)
    _in_tx(engine, decide, "t1", analyst="ana", outcome="fraud", note=NOTE, now=decided_at)
    with engine.connect() as conn:
        assert read_primitives(conn, later, params)["e_risk_fraud"] == 1
        before_label = TransactionFacts(**{**later.__dict__, "timestamp": decided_at - timedelta(seconds=1)})
        assert read_primitives(conn, before_label, params)["e_risk_fraud"] == 0  # not known yet then
        # Reported fraud has no maturity offset: a minute after the decision the event shows it.
        soon = TransactionFacts(**{**later.__dict__, "timestamp": decided_at + timedelta(minutes=1)})
        assert read_primitives(conn, soon, params)["e_kf_7d"] == 1
        assert read_primitives(conn, soon, params)["e_risk_fraud"] == 0  # the risk window waits 7 d
        assert read_primitives(conn, before_label, params)["e_kf_7d"] == 0
        assert labels_fingerprint(conn) != fingerprint
        [known] = [label for label in read_labels(conn) if label.tid == "t1"]
        history = read_history(conn)
    labels = history.labels.set_index("transaction_id")
    assert bool(labels.loc["t1", "is_fraud"]) is True
    assert labels.loc["t1", "source"] == "analyst"
    assert labels.loc["t1", "labelled_at"] == decided_at
    assert known.labelled_us == int(decided_at.timestamp() * 1_000_000)
