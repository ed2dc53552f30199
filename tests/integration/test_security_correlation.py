"""Correlation rules over crafted event streams in a real database: responses fire on attacks, not on
look-alikes, are applied exactly once, audited, and reversible."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select
from typer.testing import CliRunner

from ticketguard import tables
from ticketguard.cli import app
from ticketguard.security.api import GlobalLimit
from ticketguard.security.correlation import run_correlation
from ticketguard.security.rules import load_rules

runner = CliRunner()
RULES = load_rules()
NOW = datetime.now(UTC).replace(microsecond=0)


def add_events(engine: Engine, kind: str, ips: list[str], at: list[datetime]) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(tables.security_events),
            [
                {"event_type": kind, "severity": "medium", "source_ip": ip, "metadata": {}, "timestamp": t}
                for ip, t in zip(ips, at, strict=True)
            ],
        )


def failures(engine: Engine, ip: str, minutes_ago: list[float], end: datetime = NOW) -> None:
    add_events(
        engine, "auth_failed", [ip] * len(minutes_ago), [end - timedelta(minutes=m) for m in minutes_ago]
    )


def responses(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                tables.security_responses.c.rule,
                tables.security_responses.c.action,
                tables.security_responses.c.target,
            ).order_by(tables.security_responses.c.id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def run(engine: Engine, now: datetime = NOW) -> int:
    return len(run_correlation(engine, RULES, now=now, global_limit=10_000).applied)


def test_brute_force_blocks_once_audited_and_reversible(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures(engine, "ip:attacker", [4, 3, 2, 1, 0.5])
    failures(engine, "ip:typo", [4, 3, 2, 1])  # four: benign
    failures(engine, "ip:slow", [40, 30, 20, 10, 1])  # five, but over 40 minutes
    assert run(engine) == 1
    assert responses(engine) == [("brute_force", "block_ip", "ip:attacker")]
    with engine.connect() as conn:
        block = conn.execute(select(tables.ip_blocks)).one()
        audit = conn.execute(
            select(tables.admin_audit_log.c.admin_user, tables.admin_audit_log.c.action)
        ).all()
        applied = conn.execute(
            select(tables.security_events).where(tables.security_events.c.event_type == "response_applied")
        ).all()
    assert block.ip_hash == "ip:attacker"
    assert block.added_by == "rule:brute_force"
    assert block.expires_at is not None
    assert abs((block.expires_at - NOW) - timedelta(hours=1)) < timedelta(seconds=1)
    assert ("rule:brute_force", "response.block_ip") in [tuple(a) for a in audit]
    assert len(applied) == 1

    # Exactly once: the same burst, seen again a minute later, changes nothing.
    assert run(engine, NOW + timedelta(minutes=1)) == 0
    assert len(responses(engine)) == 1

    # Reversible through the CLI; the reverted burst does not fire again.
    monkeypatch.setenv("DATABASE_URL", db_url)
    reverted = runner.invoke(app, ["security", "revert", "1", "--actor", "ana"])
    assert reverted.exit_code == 0, reverted.output
    with engine.connect() as conn:
        assert conn.execute(select(tables.ip_blocks)).first() is None
        last_audit = conn.execute(
            select(tables.admin_audit_log.c.admin_user, tables.admin_audit_log.c.action).order_by(
                tables.admin_audit_log.c.id.desc()
            )
        ).first()
    assert tuple(last_audit) == ("ana", "response.revert.block_ip")  # type: ignore[arg-type]
    assert run(engine, NOW + timedelta(minutes=2)) == 0
    assert runner.invoke(app, ["security", "revert", "1"]).exit_code == 0  # idempotent

    # A new burst after the response is a new attack.
    later = NOW + timedelta(minutes=3)
    failures(engine, "ip:attacker", [0.4, 0.3, 0.2, 0.1, 0.0], end=later)
    assert run(engine, later) == 1
    # "30 min" before NOW, the module's clock: xdist may import this module many minutes before it runs.
    late = int((datetime.now(UTC) - NOW).total_seconds() // 60)
    events = runner.invoke(
        app, ["security", "events", "--type", "auth_failed", "--since-minutes", str(30 + late)]
    )
    assert events.exit_code == 0, events.output
    assert "auth_failed 17" in events.output  # attacker 5 + typo 4 + slow 3 within 30 min + new burst 5
    listed = runner.invoke(app, ["security", "responses"])
    assert listed.exit_code == 0
    assert "2 response(s)" in listed.stdout


def test_revert_keeps_an_entry_a_person_made_first(engine: Engine) -> None:
    from ticketguard.security import lists
    from ticketguard.security.responses import revert_response

    with engine.begin() as conn:
        lists.block_ip_token(
            conn, "ip:known", masked=None, reason="manual", actor="ana", now=NOW, expires_at=None
        )
    failures(engine, "ip:known", [4, 3, 2, 1, 0])
    assert run(engine) == 1
    with engine.begin() as conn:
        revert_response(conn, 1, actor="ana", now=NOW)
    with engine.connect() as conn:
        assert conn.execute(select(tables.ip_blocks.c.added_by)).scalar_one() == "ana"


def add_decision(
    engine: Engine,
    txn: str,
    wallet: str,
    minutes_ago: float,
    *,
    ip: str | None = None,
    seller: str | None = None,
    decision: str = "BLOCKED",
) -> None:
    at = NOW - timedelta(minutes=minutes_ago)
    with engine.begin() as conn:
        conn.execute(
            insert(tables.transactions).values(
                transaction_id=txn,
                wallet_address=wallet,
                event_id="e1",
                ticket_id=txn,
                price_paid=10,
                timestamp=at,
                ip_address=ip,
                seller_address=seller,
                source="api",
            )
        )
        conn.execute(
            insert(tables.fraud_predictions).values(
                transaction_id=txn, fraud_score=0.9, decision=decision, model_version="t", timestamp=at
            )
        )


def test_fraud_ring_blacklists_linked_wallets_once(engine: Engine) -> None:
    a, b, c, d = ("0x" + ch * 40 for ch in "abcd")
    add_decision(engine, "t1", a, 30, ip="198.51.100.1")
    add_decision(engine, "t2", b, 20, ip="198.51.100.1")
    add_decision(engine, "t3", c, 10, seller=b)
    add_decision(engine, "t4", d, 10, decision="MANUAL_REVIEW")  # not a fraud decision
    add_decision(engine, "t5", d, 9, decision="MANUAL_REVIEW")
    add_decision(engine, "t6", d, 8, decision="MANUAL_REVIEW")
    assert run(engine) == 3
    assert sorted(r[2] for r in responses(engine)) == [a, b, c]
    with engine.connect() as conn:
        black = conn.execute(
            select(tables.blacklisted_wallets.c.wallet_address, tables.blacklisted_wallets.c.added_by)
        ).all()
    assert sorted(black) == [(a, "rule:fraud_ring"), (b, "rule:fraud_ring"), (c, "rule:fraud_ring")]
    # Blacklisted wallets keep getting BLOCKED answers; those must not re-fire the rule.
    add_decision(engine, "t7", a, 1, ip="198.51.100.1")
    assert run(engine) == 0


def test_fraud_ring_quiet_on_unlinked_wallets(engine: Engine) -> None:
    for i, ch in enumerate("efg"):
        add_decision(engine, f"u{i}", "0x" + ch * 40, 10 + i, ip=f"203.0.113.{i}")
    assert run(engine) == 0


def test_ddos_alerts_and_tightens_global_limit_once(engine: Engine) -> None:
    add_events(
        engine,
        "rate_limited",
        [f"ip:{i:03d}" for i in range(49)],
        [NOW - timedelta(seconds=200 - i) for i in range(49)],
    )
    assert run(engine) == 0  # 49 distinct IPs: below the threshold
    add_events(engine, "rate_limited", ["ip:049"], [NOW - timedelta(seconds=5)])
    assert run(engine) == 1
    with engine.connect() as conn:
        alerts = (
            conn.execute(
                select(tables.security_events.c.metadata).where(
                    tables.security_events.c.event_type == "alert"
                )
            )
            .scalars()
            .all()
        )
    assert len(alerts) == 1
    assert alerts[0]["distinct_ips"] == 50
    assert alerts[0]["global_limit"] == 5000
    limit = GlobalLimit(engine, 10_000)
    limit.refresh()
    assert limit.current == 5000
    add_events(engine, "rate_limited", [f"ip:x{i}" for i in range(60)], [NOW + timedelta(seconds=1)] * 60)
    assert run(engine, NOW + timedelta(seconds=2)) == 0  # still active: not applied twice


def test_correlation_job_runs_through_the_jobs_cli(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    from ticketguard.kit.db import make_engine

    engine = make_engine(sqlite_url)
    now = datetime.now(UTC)
    failures(engine, "ip:cli", [3, 2, 1, 0.5, 0.1], end=now)
    result = runner.invoke(app, ["jobs", "run", "security-correlation"])
    assert result.exit_code == 0, result.output
    assert responses(engine) == [("brute_force", "block_ip", "ip:cli")]
    rules = runner.invoke(app, ["security", "rules"])
    assert rules.exit_code == 0
    assert "3 correlation rule(s)" in rules.stdout


@pytest.mark.postgres
def test_two_runs_at_once_apply_each_response_once(postgres_url: str) -> None:
    import threading

    from ticketguard.kit.db import make_engine

    engine = make_engine(postgres_url)
    failures(engine, "ip:race", [4, 3, 2, 1, 0.5])
    barrier = threading.Barrier(4)
    applied: list[int] = []

    def go() -> None:
        barrier.wait()
        applied.append(run(engine))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(applied) == [0, 0, 0, 1]
    assert responses(engine) == [("brute_force", "block_ip", "ip:race")]
    engine.dispose()


def test_exempt_ip_is_never_blocked_by_a_rule(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from ticketguard.kit.db import make_engine
    from ticketguard.security.keys import pepper
    from ticketguard.security.redact import hash_ip

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SECURITY_NO_AUTOBLOCK_IPS", '["10.0.0.5"]')
    from ticketguard.config import Settings

    backend = hash_ip("10.0.0.5", pepper(Settings()))
    engine = make_engine(sqlite_url)
    now = datetime.now(UTC)
    failures(engine, backend, [3, 2, 1, 0.5, 0.1], end=now)  # a misconfigured backend key, say
    failures(engine, "ip:stranger", [3, 2, 1, 0.5, 0.1], end=now)
    result = runner.invoke(app, ["jobs", "run", "security-correlation"])
    assert result.exit_code == 0, result.output
    assert responses(engine) == [("brute_force", "block_ip", "ip:stranger")]
