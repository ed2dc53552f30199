"""The data-quality verdicts, as pure functions of measured values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ticketguard.quality import checks

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_volume_within_tolerance_of_the_median_passes_and_outside_fails() -> None:
    week = [100, 90, 110, 5, 100, 95, 105]  # one bad day must not move the baseline: median 100
    assert checks.volume(150, week, 0.5).status == "pass"
    assert checks.volume(50, week, 0.5).status == "pass"
    low = checks.volume(49, week, 0.5)
    assert low.status == "fail"
    assert "below the usual 50–150 (median 100 of 7 days ± 50%)" in low.message
    assert checks.volume(151, week, 0.5).status == "fail"
    assert checks.volume(0, week, 0.5).status == "fail"


def test_volume_without_a_baseline_is_skipped_not_failed() -> None:
    result = checks.volume(40, [0, 0, 0, 0, 3, 5, 9], 0.5)
    assert result.status == "skipped"
    assert "no baseline yet" in result.message


def test_freshness_fails_when_the_newest_row_is_older_than_allowed() -> None:
    assert checks.freshness(NOW - timedelta(hours=5, minutes=59), NOW, timedelta(hours=6)).status == "pass"
    stale = checks.freshness(NOW - timedelta(hours=7), NOW, timedelta(hours=6))
    assert stale.status == "fail"
    assert stale.severity == "high"
    assert stale.observed == 7.0
    assert checks.freshness(None, NOW, timedelta(hours=6)).status == "skipped"


def test_nulls_and_duplicates_name_what_is_wrong() -> None:
    ok = checks.nulls(
        "required_columns_transactions",
        "transactions",
        {"ticket_id": 0, "status": 0},
        10,
        timedelta(hours=24),
    )
    assert ok.status == "pass"
    bad = checks.nulls(
        "required_columns_transactions",
        "transactions",
        {"ticket_id": 2, "status": 0},
        10,
        timedelta(hours=24),
    )
    assert bad.status == "fail"
    assert bad.details["null_counts"] == {"ticket_id": 2}
    assert "ticket_id: 2" in bad.message
    dup = checks.duplicates("d", "transactions", "things twice", 2, ["a", "b"], "high")
    assert (dup.status, dup.observed, dup.severity) == ("fail", 2, "high")
