"""Correlation rules over crafted record streams: fire on attacks, stay quiet on look-alikes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ticketguard.security import rules as R

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RULES = {r.name: r for r in R.load_rules()}


def fails(ip: str, minutes: list[float], kind: str = "auth_failed") -> list[R.EventRecord]:
    return [R.EventRecord(kind, ip, T0 + timedelta(minutes=m)) for m in minutes]


def test_default_rules_file_loads_the_three_rules() -> None:
    assert set(RULES) == {"brute_force", "fraud_ring", "ddos"}
    assert RULES["brute_force"].threshold == 5
    assert RULES["brute_force"].window == timedelta(minutes=5)
    assert RULES["ddos"].action == "tighten_global_limit"
    assert RULES["ddos"].factor == 0.5


def test_brute_force_fires_on_five_failures_within_five_minutes() -> None:
    events = fails("ip:a", [0, 1, 2, 3, 4.9]) + fails("ip:b", [0, 1])
    found = R.failed_logins_per_ip(RULES["brute_force"], events)
    assert [(f.target, f.count) for f in found] == [("ip:a", 5)]


def test_brute_force_counts_dashboard_logins_too() -> None:
    events = fails("ip:a", [0, 1, 2], "login_failed") + fails("ip:a", [3, 4])
    assert R.failed_logins_per_ip(RULES["brute_force"], events)


@pytest.mark.parametrize(
    "minutes",
    [[0, 1, 2, 3], [0, 2, 4, 6, 8, 10, 12], [0, 1, 2, 3, 5.5]],
    ids=["four-failures", "slow-drip", "fifth-outside-window"],
)
def test_brute_force_quiet_on_benign_streams(minutes: list[float]) -> None:
    assert R.failed_logins_per_ip(RULES["brute_force"], fails("ip:a", minutes)) == []


def test_brute_force_ignores_other_event_types() -> None:
    events = [R.EventRecord("rate_limited", "ip:a", T0 + timedelta(seconds=i)) for i in range(20)]
    assert R.failed_logins_per_ip(RULES["brute_force"], events) == []


def limited(n_ips: int, spread_minutes: float) -> list[R.EventRecord]:
    step = spread_minutes / max(1, n_ips - 1)
    return [R.EventRecord("rate_limited", f"ip:{i}", T0 + timedelta(minutes=i * step)) for i in range(n_ips)]


def test_ddos_fires_on_fifty_distinct_ips_in_five_minutes() -> None:
    found = R.distinct_rate_limited_ips(RULES["ddos"], limited(50, 4))
    assert len(found) == 1
    assert found[0].target == "global"
    assert found[0].count == 50


def test_ddos_quiet_below_threshold_or_spread_out() -> None:
    assert R.distinct_rate_limited_ips(RULES["ddos"], limited(49, 4)) == []
    assert R.distinct_rate_limited_ips(RULES["ddos"], limited(60, 30)) == []
    same_ip = [R.EventRecord("rate_limited", "ip:1", T0 + timedelta(seconds=i)) for i in range(500)]
    assert R.distinct_rate_limited_ips(RULES["ddos"], same_ip) == []


def decision(
    txn: str,
    wallet: str,
    minute: float,
    ip: str | None = None,
    seller: str | None = None,
    kind: str = "BLOCKED",
) -> R.DecisionRecord:
    return R.DecisionRecord(txn, wallet, kind, T0 + timedelta(minutes=minute), ip, seller)


def test_fraud_ring_one_wallet_three_blocked_decisions() -> None:
    found = R.fraud_decisions_per_wallet_group(
        RULES["fraud_ring"], [decision("t1", "0xa", 0), decision("t2", "0xa", 10), decision("t3", "0xa", 50)]
    )
    assert [f.target for f in found] == ["0xa"]


def test_fraud_ring_linked_by_shared_ip_and_resale() -> None:
    decisions = [
        decision("t1", "0xa", 0, ip="9.9.9.9"),
        decision("t2", "0xb", 5, ip="9.9.9.9"),
        decision("t3", "0xc", 9, seller="0xb"),
        decision("t4", "0xz", 9, ip="8.8.8.8"),  # unrelated
    ]
    found = R.fraud_decisions_per_wallet_group(RULES["fraud_ring"], decisions)
    assert sorted(f.target for f in found) == ["0xa", "0xb", "0xc"]
    assert all(f.detail["ring_size"] == 3 for f in found)


def test_fraud_ring_linked_through_an_ordinary_transaction() -> None:
    decisions = [decision("t1", "0xa", 0), decision("t2", "0xb", 1), decision("t3", "0xc", 2, ip="7.7.7.7")]
    links = [R.LinkRecord("0xa", "7.7.7.7"), R.LinkRecord("0xb", None, "0xa")]
    assert len(R.fraud_decisions_per_wallet_group(RULES["fraud_ring"], decisions, links)) == 3


def test_fraud_ring_quiet_on_benign_streams() -> None:
    rule = RULES["fraud_ring"]
    unlinked = [decision(f"t{i}", f"0x{i}", i) for i in range(5)]
    assert R.fraud_decisions_per_wallet_group(rule, unlinked) == []
    reviews = [decision(f"t{i}", "0xa", i, kind="MANUAL_REVIEW") for i in range(5)]
    assert R.fraud_decisions_per_wallet_group(rule, reviews) == []
    spread = [decision("t1", "0xa", 0), decision("t2", "0xa", 40), decision("t3", "0xa", 90)]
    assert R.fraud_decisions_per_wallet_group(rule, spread) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: 3", "`rules:` list"),
        ("rules:\n  - {name: x, kind: nope, threshold: 1, window: 5m}", "kind must be one of"),
        ("rules:\n  - {name: x, kind: failed_logins_per_ip, threshold: 0, window: 5m}", "threshold"),
        ("rules:\n  - {name: x, kind: failed_logins_per_ip, threshold: 2, window: soon}", "window"),
        (
            "rules:\n  - {name: x, kind: failed_logins_per_ip, threshold: 2, window: 5m, action: rm_rf}",
            "action",
        ),
        (
            "rules:\n  - {name: x, kind: distinct_rate_limited_ips, threshold: 2, window: 5m, factor: 2}",
            "factor",
        ),
        ("rules: [", "not valid YAML"),
    ],
)
def test_bad_rules_file_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(R.RulesError, match=message):
        R.load_rules(path)


def test_missing_rules_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(R.RulesError, match="SECURITY_RULES_PATH"):
        R.load_rules(tmp_path / "nope.yaml")
