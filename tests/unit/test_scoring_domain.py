"""The pure scoring decisions: threshold ladder, list overrides, confidence, reasons, fingerprints."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from ticketguard.features.specs import FEATURE_NAMES, FeatureParams, feature_names
from ticketguard.scoring import domain
from ticketguard.scoring.domain import ListStatus, Thresholds

T = Thresholds(block=0.85, review=0.65, twofa=0.40)


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.0, "APPROVED"),
        (0.40, "APPROVED"),  # strict ">" at every threshold, as the guide writes it
        (0.4000001, "REQUIRE_2FA"),
        (0.65, "REQUIRE_2FA"),
        (0.66, "MANUAL_REVIEW"),
        (0.85, "MANUAL_REVIEW"),
        (0.851, "BLOCKED"),
        (1.0, "BLOCKED"),
    ],
)
def test_ladder_follows_the_configured_thresholds(score: float, expected: str) -> None:
    assert domain.decide(score, T) == expected


def test_custom_thresholds_move_the_rungs() -> None:
    strict = Thresholds(block=0.5, review=0.3, twofa=0.1)
    assert domain.decide(0.2, strict) == "REQUIRE_2FA"
    assert domain.decide(0.2, T) == "APPROVED"


def test_thresholds_out_of_order_are_refused_with_the_values() -> None:
    with pytest.raises(ValueError, match=r"2fa=0\.7"):
        Thresholds(block=0.85, review=0.65, twofa=0.7)


def test_blocks_blacklisted_wallet_even_with_low_score() -> None:
    lists = ListStatus(blocked=True, reasons=("wallet is on the blacklist",))
    assert domain.decide(0.01, T, lists) == "BLOCKED"
    assert domain.confidence(0.01, "BLOCKED", lists) == 1.0


def test_allowlisted_wallet_skips_2fa_and_review_but_not_block() -> None:
    vip = ListStatus(allowlisted=True)
    assert domain.decide(0.5, T, vip) == "APPROVED"
    assert domain.decide(0.7, T, vip) == "APPROVED"
    assert domain.decide(0.9, T, vip) == "BLOCKED"


def test_block_wins_over_allow_list() -> None:
    both = ListStatus(allowlisted=True).merge(ListStatus(blocked=True))
    assert domain.decide(0.0, T, both) == "BLOCKED"


def test_nan_score_is_never_approved() -> None:
    assert domain.decide(math.nan, T) == "MANUAL_REVIEW"


def test_confidence_is_the_probability_of_the_decided_side() -> None:
    assert domain.confidence(0.12, "APPROVED") == pytest.approx(0.88)
    assert domain.confidence(0.95, "BLOCKED") == pytest.approx(0.95)
    assert domain.confidence(0.45, "REQUIRE_2FA") == 0.5  # floored: the model leans legit here


def test_top_contributions_rank_by_magnitude_and_drop_zeros() -> None:
    top = domain.top_contributions({"a": 0.1, "b": -2.0, "c": 0.0, "d": 1.5}, {"a": 1, "b": 2, "d": 3}, 5)
    assert [c.feature for c in top] == ["b", "d", "a"]
    assert top[0].value == 2


def test_reasons_lead_with_lists_then_what_pushed_towards_the_decision() -> None:
    top = [
        domain.Contribution("txn_velocity_1h", 1.31, 12.0),
        domain.Contribution("wallet_age_days", -0.4, 300.0),
    ]
    lists = ListStatus(blocked=True, reasons=("wallet is on the blacklist",))
    reasons = domain.reasons_for("BLOCKED", top, lists)
    assert reasons[0] == "wallet is on the blacklist"
    assert reasons[1] == "12 purchases by this wallet in the last hour (raises risk, +1.31)"
    assert len(reasons) == 2  # the risk-lowering one does not explain a block
    approved = domain.reasons_for("APPROVED", top, domain.NOT_LISTED)
    assert approved == ["wallet first seen 300 days ago (lowers risk, -0.40)"]


def test_every_catalogue_feature_has_words_for_a_reviewer() -> None:
    # Hand-written features have their phrase; the generated ones get one from the family declaration.
    for name in FEATURE_NAMES + feature_names(FeatureParams(windows=(timedelta(minutes=90),))):
        text = domain.reason(domain.Contribution(name, 0.5, 3.0))
        assert not text.startswith(f"{name} ="), f"{name} has no words: {text}"
        assert "{" not in text, text
        assert "3" in text, text
    reason = domain.reason(domain.Contribution("event_fraud_reported_7d", 0.8, 4.0))
    assert reason == "4 frauds reported for this event in the last 7 days (raises risk, +0.80)"
    assert domain.reason(domain.Contribution("ip_txn_24h", 0.2, 9.0)).startswith(
        "9 purchases from this IP in the last 24 h"
    )
    assert domain.reason(domain.Contribution("amount_vs_wallet_mean_90m", 0.2, 2.5)).startswith(
        "amount is 2.5× this wallet's average over the last 90 min"
    )
    # A name nothing generates keeps the plain form.
    assert domain.reason(domain.Contribution("unknown_feature", 0.1, 1.0)).startswith("unknown_feature = 1")


def test_fingerprint_is_canonical() -> None:
    a = domain.fingerprint({"x": 1, "y": "b"})
    assert a == domain.fingerprint({"y": "b", "x": 1})
    assert a != domain.fingerprint({"x": 2, "y": "b"})
    assert len(a) == 64
