"""The retention policy as settings define it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from ticketguard.config import Settings
from ticketguard.retention.erasure import ErasureError, check_wallet, ip_pseudonym, wallet_pseudonym
from ticketguard.retention.policy import policy_from_settings


def test_defaults_follow_the_compliance_table() -> None:
    policy = policy_from_settings(Settings())
    rules = {r.table: (r.archive_table, r.hot.days, r.horizon.days) for r in policy.archives}
    assert rules == {
        "transactions": ("transactions_archive", 90, 730),
        "fraud_predictions": ("fraud_predictions_archive", 180, 1825),
        "admin_audit_log": ("admin_audit_log_archive", 365, 2555),
    }
    assert policy.sessions == timedelta(days=30)
    now = datetime(2026, 11, 25, tzinfo=UTC)
    assert policy.archives[0].cutoffs(now) == (now - timedelta(days=90), now - timedelta(days=730))


def test_an_archive_horizon_shorter_than_the_hot_period_is_refused() -> None:
    with pytest.raises(
        ValidationError,
        match=r"RETENTION_AUDIT_ARCHIVE_DAYS \(30\) must be at least RETENTION_AUDIT_HOT_DAYS",
    ):
        Settings(retention_audit_hot_days=60, retention_audit_archive_days=30)


def test_pseudonyms_are_keyed_stable_case_insensitive_and_fit_the_columns() -> None:
    from eth_utils import to_checksum_address

    wallet = to_checksum_address("0x" + "ab" * 20)
    a = wallet_pseudonym(b"k" * 32, wallet)
    assert a == wallet_pseudonym(b"k" * 32, wallet.lower())
    assert a == wallet_pseudonym(b"k" * 32, wallet.upper().replace("0X", "0x"))
    # One wallet, one pseudonym: the short spelling is the same address.
    padded = "0x" + "0" * 32 + "deadbeef"
    assert wallet_pseudonym(b"k" * 32, "0xdeadbeef") == wallet_pseudonym(b"k" * 32, padded)
    assert a != wallet_pseudonym(b"j" * 32, wallet)
    assert len(a) == 42
    assert a.startswith("erased:")
    assert len(ip_pseudonym(b"k" * 32, "2001:db8::1")) == 45
    with pytest.raises(ErasureError, match="wallet must be 0x followed by 1-40 hex digits"):
        check_wallet("0x" + "g" * 40)
    with pytest.raises(ErasureError, match="EIP-55"):
        check_wallet("0x" + "aB" * 20)
