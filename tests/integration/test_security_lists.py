"""`ticketguard blocklist …` on SQLite and PostgreSQL (audited, IPs hashed), the IP block cache over Redis
(a Redis restart lifts nothing), and the buffered security-event writer."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from ticketguard import tables
from ticketguard.cli import app
from ticketguard.security import lists
from ticketguard.security.events import SecurityEvent, SecurityEventWriter
from ticketguard.security.redact import hash_ip

runner = CliRunner()
PEPPER = "an-integration-test-pepper-of-32-characters!"
WALLET = "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"  # EIP-55 checksummed ("ab" * 20)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def cli_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SECURITY_PEPPER", PEPPER)
    return db_url


@pytest.mark.parametrize(
    "command",
    [
        ["blocklist"],
        ["blocklist", "add"],
        ["blocklist", "remove"],
        ["blocklist", "list"],
        ["security", "responses"],
        ["security", "revert"],
        ["security", "rules"],
        ["security", "events"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_blocklist_add_list_remove_audited(cli_db: str, engine: Engine) -> None:
    added_wallet = runner.invoke(
        app, ["blocklist", "add", "wallet", WALLET, "--reason", "chargebacks", "--actor", "ana"]
    )
    assert added_wallet.exit_code == 0
    assert WALLET.lower() not in added_wallet.output.lower()  # masked in the terminal too
    assert (
        runner.invoke(
            app, ["blocklist", "add", "vip", "0x" + "cd" * 20, "--reason", "artist", "--expires-in", "7d"]
        ).exit_code
        == 0
    )
    added = runner.invoke(
        app,
        [
            "blocklist",
            "add",
            "ip",
            "198.51.100.23",
            "--reason",
            "scraper",
            "--expires-in",
            "2h",
            "--actor",
            "ana",
        ],
    )
    assert added.exit_code == 0, added.output
    with engine.connect() as conn:
        black = conn.execute(select(tables.blacklisted_wallets)).one()
        block = conn.execute(select(tables.ip_blocks)).one()
        actions = (
            conn.execute(select(tables.admin_audit_log.c.action).order_by(tables.admin_audit_log.c.id))
            .scalars()
            .all()
        )
        audit_text = str(conn.execute(select(tables.admin_audit_log.c.metadata)).scalars().all())
    assert black.wallet_address == WALLET.lower()
    assert black.added_by == "ana"
    assert black.reason == "chargebacks"
    assert block.ip_hash == hash_ip("198.51.100.23", PEPPER.encode())
    assert block.ip_masked == "198.51.100.x"
    assert block.expires_at is not None
    assert actions == ["blacklist.add", "allowlist.add", "ip_block.add"]
    assert "198.51.100.23" not in audit_text
    assert WALLET.lower() not in audit_text

    listed = runner.invoke(app, ["blocklist", "list"])
    assert listed.exit_code == 0
    assert "198.51.100.x" in listed.stdout
    assert "198.51.100.23" not in listed.stdout

    assert runner.invoke(app, ["blocklist", "remove", "ip", "198.51.100.23"]).exit_code == 0
    assert runner.invoke(app, ["blocklist", "remove", "wallet", WALLET]).exit_code == 0
    again = runner.invoke(app, ["blocklist", "remove", "wallet", WALLET])
    assert again.exit_code == 1
    assert "not on the list" in again.output
    with engine.connect() as conn:
        actions = (
            conn.execute(select(tables.admin_audit_log.c.action).order_by(tables.admin_audit_log.c.id))
            .scalars()
            .all()
        )
    assert actions[-2:] == ["ip_block.remove", "blacklist.remove"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "ip", "999.1.1.1", "--reason", "x"], "ip must be an IPv4 or IPv6 address"),
        (["add", "wallet", "0xZZ", "--reason", "x"], "wallet must be 0x"),
        (["add", "ip", "1.2.3.4", "--reason", "x", "--expires-in", "soon"], "--expires-in"),
        (["add", "thing", "x", "--reason", "x"], "KIND must be one of wallet, vip, ip"),
    ],
)
def test_bad_input_names_the_field(cli_db: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["blocklist", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_scoring_path_sees_blacklisted_wallet(engine: Engine) -> None:
    from ticketguard.scoring.store import wallet_lists

    with engine.begin() as conn:
        lists.add_wallet(conn, "blacklist", WALLET, reason="r", actor="t", now=NOW)
        lists.add_wallet(
            conn,
            "allowlist",
            "0x" + "ee" * 20,
            reason="vip",
            actor="t",
            now=NOW,
            expires_at=NOW + timedelta(hours=1),
        )
    with engine.connect() as conn:
        assert wallet_lists(conn, WALLET.lower(), NOW + timedelta(seconds=1)).blocked
        assert wallet_lists(conn, "0x" + "ee" * 20, NOW + timedelta(minutes=5)).allowlisted
        assert not wallet_lists(conn, "0x" + "ee" * 20, NOW + timedelta(hours=2)).allowlisted


@pytest.mark.redis
def test_ip_block_cache_survives_a_redis_restart(engine: Engine, redis_url: str) -> None:
    prefix = f"tg:test:{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(redis_url, socket_timeout=0.5)
    key = PEPPER.encode()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        forever = lists.block_ip(
            conn, "203.0.113.5", pepper=key, reason="r", actor="t", now=now, expires_at=None
        )
        brief = lists.block_ip(
            conn,
            "203.0.113.6",
            pepper=key,
            reason="r",
            actor="t",
            now=now,
            expires_at=now + timedelta(seconds=1),
        )
    assert lists.publish_ip_blocks(engine, client, key_prefix=prefix)
    cache = lists.IpBlockCache(engine, client, max_age=0.0, key_prefix=prefix)
    cache.refresh(force=True)
    assert cache.source == "redis"
    assert cache.is_blocked(forever)
    assert cache.is_blocked(brief)
    assert not cache.is_blocked(hash_ip("203.0.113.7", key))

    # "Restart": Redis loses everything of ours. The next refresh reloads from the database.
    client.delete(prefix + lists.REDIS_BLOCKS_KEY, prefix + lists.REDIS_LOADED_KEY)
    later = [0.0]  # seconds this cache's clock runs ahead of the wall clock
    fresh = lists.IpBlockCache(
        engine, client, max_age=0.0, key_prefix=prefix, clock=lambda: time.time() + later[0]
    )
    fresh.refresh(force=True)
    assert fresh.is_blocked(forever)
    assert fresh.is_blocked(brief)
    assert client.exists(prefix + lists.REDIS_LOADED_KEY)
    later[0] = 1.5  # past the brief block's expiry, without waiting for it
    assert not fresh.is_blocked(brief)
    assert fresh.is_blocked(forever)
    client.close()


def test_ip_block_cache_without_redis_reads_the_database(engine: Engine) -> None:
    with engine.begin() as conn:
        token = lists.block_ip(
            conn,
            "2001:db8::5",
            pepper=b"k" * 32,
            reason="r",
            actor="t",
            now=datetime.now(UTC),
            expires_at=None,
        )
    cache = lists.IpBlockCache(engine, None, max_age=60)
    cache.refresh(force=True)
    assert cache.source == "database"
    assert cache.is_blocked(token)


def test_event_writer_batches_and_redacts(engine: Engine) -> None:
    writer = SecurityEventWriter(engine)
    for i in range(30):
        writer.record(
            SecurityEvent(
                "auth_failed",
                "medium",
                f"ip:{i:04d}",
                metadata={
                    "reason": "token refused",
                    "authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
                    "note": "from 198.51.100.23",
                },
            )
        )
    assert writer.record_throttled(("rate", "ip:1"), SecurityEvent("rate_limited", "low", "ip:1"), 10)
    assert not writer.record_throttled(("rate", "ip:1"), SecurityEvent("rate_limited", "low", "ip:1"), 10)
    writer.close()
    with engine.connect() as conn:
        rows = conn.execute(select(tables.security_events)).all()
    assert len(rows) == 31
    assert writer.written == 31
    assert writer.dropped == 0
    text = str([tuple(r) for r in rows])
    assert "eyJ" not in text
    assert "198.51.100.23" not in text
    assert "[REDACTED]" in text
    with pytest.raises(ValueError, match="severity"):
        SecurityEvent("x", "urgent")


def test_event_writer_keeps_events_while_the_database_cannot_take_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A failed write keeps its batch (bounded by MAX_QUEUED) for the next try instead of dropping it."""
    from ticketguard.kit import migrate
    from ticketguard.kit.db import make_engine

    url = f"sqlite:///{tmp_path / 'later.db'}"  # no tables yet: every write fails
    engine = make_engine(url)
    writer = SecurityEventWriter(engine)
    writer.MAX_QUEUED = 5  # type: ignore[misc]
    writer.FLUSH_SECONDS = 3600  # type: ignore[misc]  # the background thread stays asleep: flushes are ours
    for i in range(7):
        writer.record(SecurityEvent("auth_failed", "medium", f"ip:{i:04d}"))
    assert writer.dropped == 2  # the queue is bounded
    assert writer.flush() == 0
    assert writer.pending_failed
    assert writer.dropped == 2  # the failed batch went back to the queue, nothing more lost
    migrate.upgrade(url)
    assert writer.flush() == 5
    assert not writer.pending_failed
    with engine.connect() as conn:
        assert conn.execute(select(tables.security_events)).all().__len__() == 5
    writer.close()
    engine.dispose()


@pytest.mark.redis
def test_jobs_push_new_ip_blocks_to_the_settings_redis(engine: Engine, redis_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The security-correlation and evaluate-alerts jobs publish a new block at once through
    `publish_ip_blocks_with`; without a Redis configured there is nothing to push."""
    from ticketguard.config import Settings

    key = PEPPER.encode()
    with engine.begin() as conn:
        token = lists.block_ip(
            conn, "198.51.100.7", pepper=key, reason="r", actor="t", now=datetime.now(UTC), expires_at=None
        )
    without = Settings(database_url=str(engine.url), data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert without.resolved_redis_url is None
    assert not lists.publish_ip_blocks_with(engine, without)
    settings = Settings(  # type: ignore[call-arg]
        database_url=str(engine.url), redis_url=redis_url, data_dir=tmp_path, _env_file=None
    )
    assert lists.publish_ip_blocks_with(engine, settings)
    client = redis.Redis.from_url(redis_url)
    try:
        assert token.encode() in client.hkeys(lists.REDIS_BLOCKS_KEY)
        assert client.exists(lists.REDIS_LOADED_KEY)
    finally:
        client.close()
