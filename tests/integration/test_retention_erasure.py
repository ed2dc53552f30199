"""GDPR erasure of one wallet on real SQLite and PostgreSQL: the address is gone from every table and
view, what compliance needs stays, and the request is audited under the pseudonym only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from eth_utils import to_checksum_address
from sqlalchemy import Engine, select, text

from ticketguard import tables
from ticketguard.retention.erasure import ErasureError, erase_wallet, ip_pseudonym, wallet_pseudonym
from ticketguard.views import refresh_views

NOW = datetime.now(UTC).replace(microsecond=0)
KEY = "k" * 32
WALLET = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20
CHECKSUMMED = to_checksum_address(WALLET)


def _tx(tid: str, wallet: str, days: float, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "transaction_id": tid,
        "wallet_address": wallet,
        "event_id": "EV1",
        "ticket_id": tid,
        "price_paid": Decimal("120.5"),
        "is_resale": False,
        "timestamp": NOW - timedelta(days=days),
        "seller_address": None,
        "ip_address": "203.0.113.7",
        "country": "DE",
        "latitude": 52.52,
        "longitude": 13.40,
    }
    row.update(extra)
    return row


def _seed(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            tables.events.insert().values(
                event_id="EV1",
                name="e",
                organizer_id="o",
                capacity=10,
                face_value=Decimal(100),
                on_sale_at=NOW - timedelta(days=300),
                starts_at=NOW + timedelta(days=3),
            )
        )
        conn.execute(
            tables.transactions.insert(),
            [
                _tx("t1", WALLET, 3),
                _tx("t2", OTHER, 2, is_resale=True, seller_address=CHECKSUMMED, ip_address="198.51.100.1"),
                _tx("t3", OTHER, 1, ip_address="198.51.100.1"),
            ],
        )
        conn.execute(
            tables.transactions_archive.insert(), [_tx("t0", CHECKSUMMED, 200, ip_address="192.0.2.9")]
        )
        conn.execute(
            tables.fraud_predictions.insert(),
            [{"transaction_id": "t1", "fraud_score": 0.5, "decision": "REQUIRE_2FA", "timestamp": NOW}],
        )
        conn.execute(
            tables.security_events.insert(),
            [
                {
                    "event_type": "rate_limited",
                    "severity": "low",
                    "source_ip": "203.0.113.7",
                    "user_id": WALLET,
                    "metadata": {"wallet": CHECKSUMMED, "note": "burst"},
                },
                {
                    "event_type": "rate_limited",
                    "severity": "low",
                    "source_ip": "198.51.100.1",
                    "user_id": OTHER,
                    "metadata": {"wallet": OTHER},
                },
            ],
        )
        conn.execute(
            tables.admin_audit_log.insert(),
            [{"admin_user": "ana", "action": "blacklist.add", "metadata": {"wallet": WALLET}}],
        )
        conn.execute(
            tables.fraud_labels.insert(),
            [
                {
                    "transaction_id": "t1",
                    "is_fraud": False,
                    "source": "review",
                    "labelled_at": NOW,
                    "notes": f"customer {WALLET} called",
                }
            ],
        )
        conn.execute(
            tables.review_cases.insert().values(
                transaction_id="t1",
                status="decided",
                outcome="legitimate",
                decided_by="ana",
                decided_at=NOW,
                note=f"owner of {CHECKSUMMED} confirmed by phone",
            )
        )
        conn.execute(tables.allowlisted_wallets.insert().values(wallet_address=WALLET, reason="vip"))
        conn.execute(tables.blacklisted_wallets.insert().values(wallet_address=OTHER, reason="fraud"))
    refresh_views(engine, now=NOW)


def _all_text(engine: Engine) -> str:
    """Every row of every table and view as text, to search for the address in any spelling."""
    chunks: list[str] = []
    with engine.connect() as conn:
        names = [*tables.metadata.tables, "kpi_hourly", "event_analytics", "wallet_segments"]
        for name in names:
            for row in conn.execute(text(f'SELECT * FROM "{name}"')):
                chunks.append(json.dumps([str(v) for v in row]))
    return "\n".join(chunks).lower()


def test_erasure_removes_the_wallet_everywhere_and_keeps_what_compliance_needs(engine: Engine) -> None:
    _seed(engine)
    assert WALLET in _all_text(engine)

    report = erase_wallet(engine, CHECKSUMMED, key=KEY, actor="dpo@example.org", now=NOW)

    pseudonym = wallet_pseudonym(KEY.encode(), WALLET)
    assert report.pseudonym == pseudonym
    assert len(pseudonym) == 42
    assert WALLET not in _all_text(engine)
    assert "203.0.113.7" not in _all_text(engine)
    assert "192.0.2.9" not in _all_text(engine)
    assert report.counts["transactions.buyer"] == 1
    assert report.counts["transactions_archive.buyer"] == 1
    assert report.counts["transactions.seller"] == 1
    assert report.counts["allowlisted_wallets"] == 1

    with engine.connect() as conn:
        t1 = conn.execute(
            select(tables.transactions).where(tables.transactions.c.transaction_id == "t1")
        ).one()
        assert t1.wallet_address == pseudonym
        assert t1.ip_address == ip_pseudonym(KEY.encode(), "203.0.113.7")
        assert (t1.latitude, t1.longitude, t1.country) == (None, None, "DE")
        assert t1.price_paid == Decimal("120.5")
        assert t1.timestamp == NOW - timedelta(days=3)
        t0 = conn.execute(select(tables.transactions_archive)).one()
        assert t0.wallet_address == pseudonym  # the same pseudonym links live and archived rows
        t2 = conn.execute(
            select(tables.transactions).where(tables.transactions.c.transaction_id == "t2")
        ).one()
        assert (t2.wallet_address, t2.seller_address, t2.ip_address) == (OTHER, pseudonym, "198.51.100.1")
        assert t2.latitude == 52.52  # another wallet's row keeps its location
        decision = conn.execute(select(tables.fraud_predictions.c.decision)).scalar_one()
        assert decision == "REQUIRE_2FA"
        other_event = conn.execute(
            select(tables.security_events).where(tables.security_events.c.user_id == OTHER)
        ).one()
        assert other_event.source_ip == "198.51.100.1"
        assert other_event.metadata == {"wallet": OTHER}
        assert conn.execute(select(tables.blacklisted_wallets.c.wallet_address)).scalar_one() == OTHER
        segments = set(conn.execute(text("SELECT wallet_address FROM wallet_segments")).scalars())
        assert pseudonym in segments
        assert WALLET not in {s.lower() for s in segments}
        audit = conn.execute(
            select(tables.admin_audit_log).where(tables.admin_audit_log.c.action == "gdpr.erase_wallet")
        ).one()
        assert audit.admin_user == "dpo@example.org"
        assert audit.metadata["pseudonym"] == pseudonym
        assert audit.metadata["counts"]["transactions.buyer"] == 1

    # Asking again finds nothing left to change, and is audited again.
    again = erase_wallet(engine, WALLET, key=KEY, actor="dpo@example.org", now=NOW)
    assert again.rows == 0


def test_erasure_refuses_bad_input_and_changes_nothing(engine: Engine) -> None:
    _seed(engine)
    before = _all_text(engine)
    with pytest.raises(ErasureError, match=r"wallet must be 0x followed by 1-40 hex digits.*got '0x12z'"):
        erase_wallet(engine, "0x12z", key=KEY, actor="a", now=NOW)
    with pytest.raises(ErasureError, match="EIP-55"):
        erase_wallet(engine, "0x" + "aB" * 20, key=KEY, actor="a", now=NOW)
    with pytest.raises(ErasureError, match="PSEUDONYM_KEY must be a secret of at least 16 characters"):
        erase_wallet(engine, WALLET, key="short", actor="a", now=NOW)
    assert _all_text(engine) == before


def test_erase_wallet_command_records_the_os_user_when_no_actor_is_given(sqlite_url: str) -> None:
    """`ticketguard retention erase-wallet` without --actor: the audit row names who ran it (the OS user)."""
    import getpass

    from typer.testing import CliRunner

    from ticketguard.cli import app
    from ticketguard.kit.db import make_engine

    engine = make_engine(sqlite_url)
    _seed(engine)
    env = {"COLUMNS": "200", "DATABASE_URL": sqlite_url, "PSEUDONYM_KEY": KEY, "ENVIRONMENT": "development"}
    result = CliRunner().invoke(app, ["retention", "erase-wallet", WALLET, "--yes"], env=env)
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        actor = conn.execute(
            select(tables.admin_audit_log.c.admin_user).where(
                tables.admin_audit_log.c.action == "gdpr.erase_wallet"
            )
        ).scalar_one()
    assert actor == getpass.getuser()
    engine.dispose()
