"""`ticketguard clients …` end to end on SQLite and PostgreSQL, and the request-path key check."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner

from ticketguard import tables
from ticketguard.cli import app
from ticketguard.config import Settings
from ticketguard.kit import migrate
from ticketguard.kit.db import make_engine
from ticketguard.security.auth import AuthError
from ticketguard.security.clients import ApiKeyAuthenticator
from ticketguard.security.keys import pepper

runner = CliRunner()
PEPPER = "an-integration-test-pepper-of-32-characters!"


@pytest.fixture
def cli_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SECURITY_PEPPER", PEPPER)
    return db_url


@pytest.mark.parametrize(
    "command",
    [["clients"], ["clients", "create"], ["clients", "list"], ["clients", "revoke"], ["clients", "token"]],
)
def test_every_clients_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_create_list_revoke_with_hashed_key_and_audit(cli_db: str) -> None:
    created = runner.invoke(
        app, ["clients", "create", "backend", "--scopes", "score,metrics", "--actor", "ops"]
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("tgk_")

    engine = make_engine(cli_db)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(tables.api_clients)).one()
            audit = conn.execute(
                select(tables.admin_audit_log.c.action, tables.admin_audit_log.c.admin_user)
            ).all()
        assert key not in str(tuple(row))
        assert row.key_hash != key
        assert audit == [("client.create", "ops")]

        auth = ApiKeyAuthenticator(engine, pepper(Settings(security_pepper=PEPPER)))  # type: ignore[arg-type]
        principal = auth.authenticate(key)
        assert principal.kind == "api_key"
        assert principal.scopes == {"score", "metrics"}
        with pytest.raises(AuthError, match="does not match"):
            auth.authenticate(key[:-2] + ("xy" if not key.endswith("xy") else "zz"))

        listed = runner.invoke(app, ["clients", "list"])
        assert listed.exit_code == 0
        assert "backend" in listed.stdout
        assert key not in listed.stdout

        duplicate = runner.invoke(app, ["clients", "create", "backend"])
        assert duplicate.exit_code == 2
        assert "already exists" in duplicate.output

        revoked = runner.invoke(app, ["clients", "revoke", "backend", "--actor", "ops"])
        assert revoked.exit_code == 0, revoked.output
        again = runner.invoke(app, ["clients", "revoke", "backend", "--actor", "ops"])
        assert again.exit_code == 0
        fresh = ApiKeyAuthenticator(engine, pepper(Settings(security_pepper=PEPPER)))  # type: ignore[arg-type]
        with pytest.raises(AuthError, match="revoked"):
            fresh.authenticate(key)
        with engine.connect() as conn:
            actions = (
                conn.execute(select(tables.admin_audit_log.c.action).order_by(tables.admin_audit_log.c.id))
                .scalars()
                .all()
            )
        assert actions == ["client.create", "client.revoke"]  # the second revoke changed nothing
    finally:
        engine.dispose()


def test_bad_input_names_the_field(cli_db: str) -> None:
    bad = runner.invoke(app, ["clients", "create", "x", "--scopes", "admin"])
    assert bad.exit_code == 2
    assert "--scopes" in bad.output
    assert "metrics, score" in bad.output
    missing = runner.invoke(app, ["clients", "revoke", "nobody"])
    assert missing.exit_code == 2
    assert "no client named" in missing.output


def test_token_command_needs_and_uses_jwt_secret(cli_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert runner.invoke(app, ["clients", "token", "u1"]).exit_code == 2
    monkeypatch.setenv("JWT_SECRET", "x" * 40)
    result = runner.invoke(app, ["clients", "token", "u1", "--ttl", "60"])
    assert result.exit_code == 0
    assert result.stdout.startswith("eyJ")


def _list_triggers(engine: Engine) -> set[str]:
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as conn:
        return set(
            conn.execute(
                text("SELECT tgname FROM pg_trigger WHERE tgname LIKE '%\\_notify' AND NOT tgisinternal")
            ).scalars()
        )


def test_security_migration_round_trip(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        from sqlalchemy import inspect

        notifying = {"blacklisted_wallets_notify", "allowlisted_wallets_notify", "ip_blocks_notify"}
        notifying.add("security_responses_notify")  # alerting (migration 0011): threshold overrides
        at_head = _list_triggers(engine)
        assert at_head == (notifying if engine.dialect.name == "postgresql" else set())
        migrate.downgrade(db_url, "0005")  # 0006: the list-change NOTIFY triggers (PostgreSQL only)
        assert _list_triggers(engine) == set()
        migrate.downgrade(db_url, "0004")
        assert "api_clients" not in inspect(engine).get_table_names()
        migrate.upgrade(db_url)
        names = set(inspect(make_engine(db_url)).get_table_names())
        assert {"api_clients", "ip_blocks", "security_responses"} <= names
        assert _list_triggers(engine) == at_head
    finally:
        engine.dispose()


def _dead_engine() -> object:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/none")


def test_key_check_survives_a_database_blip_only_for_known_keys(sqlite_url: str) -> None:
    from datetime import UTC, datetime

    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        from ticketguard.security.clients import create_client

        _, key = create_client(
            conn, name="m", scopes="score", actor="t", pepper=b"p" * 32, now=datetime.now(UTC)
        )
    clock = [0.0]
    auth = ApiKeyAuthenticator(engine, b"p" * 32, clock=lambda: clock[0])
    assert auth.authenticate(key).kind == "api_key"
    auth._engine = _dead_engine()  # type: ignore[assignment]
    clock[0] = 60.0  # the cache entry is stale and the database is gone: the known key still works
    assert auth.authenticate(key).kind == "api_key"
    from sqlalchemy.exc import OperationalError

    with pytest.raises(OperationalError):  # an unknown key cannot be checked: the API answers 503, not 200
        auth.authenticate("tgk_0badc0de_" + "x" * 43)
    engine.dispose()
