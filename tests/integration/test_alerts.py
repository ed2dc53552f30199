"""Alert evaluation on SQLite and PostgreSQL with a controlled clock, against real receivers on 127.0.0.1:
PagerDuty trigger/resolve pairing, a Slack receiver that is down for a while, silences, test notifications,
the state stored across engines, actions through the security layer's responses, the CLI."""

from __future__ import annotations

import json
import random
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select
from typer.testing import CliRunner

from alert_fixtures import login_failures
from delivery_fixtures import Receiver
from ticketguard import tables
from ticketguard.alerts import rules as R
from ticketguard.alerts.notifiers import PagerDutySender, SlackSender
from ticketguard.alerts.service import evaluate_rules, history, send_test, states
from ticketguard.config import Settings
from ticketguard.delivery.outbox import RetryPolicy, deliver_due
from ticketguard.security.keys import pepper
from ticketguard.security.responses import active_threshold_override, revert_response

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
KEY = "R0UTINGKEY0123456789abcdef012345"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def settings_for(engine: Engine, tmp_path: Path, rules: str, **overrides: Any) -> Settings:
    path = tmp_path / "alert_rules.yaml"
    path.write_text(textwrap.dedent(rules))
    return Settings(  # type: ignore[call-arg]
        database_url=engine.url.render_as_string(hide_password=False),
        data_dir=tmp_path,
        alert_rules_path=path,
        alert_console_url="https://console.example/alerts",
        _env_file=None,
        **overrides,
    )


def ruleset(settings: Settings) -> R.RuleSet:
    from ticketguard.alerts.service import load_rules

    return load_rules(settings)


def add_predictions(engine: Engine, at: datetime, *, total: int, fraud: int, degraded: int = 0) -> None:
    rows = []
    for i in range(total):
        is_fraud = i < fraud
        rows.append(
            {
                "transaction_id": f"a-{uuid.uuid4().hex[:20]}",
                "fraud_score": 0.97 if is_fraud else 0.02,
                "decision": "BLOCKED" if is_fraud else "APPROVED",
                "model_version": "m1",
                "timestamp": at - timedelta(seconds=i % 50),
                "degraded": i >= total - degraded,
                "latency_ms": 5.0 + i % 10,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(tables.fraud_predictions), rows)


def outbox_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(tables.outbox).order_by(tables.outbox.c.id)).mappings()]


SPIKE = """\
alerts:
  - name: fraud_rate_spike
    condition: fraud_rate > 0.03
    duration: 10m
    severity: high
    action: pagerduty
"""


@pytest.fixture
def pagerduty(receiver: Receiver) -> Iterator[PagerDutySender]:
    sender = PagerDutySender(KEY, url=receiver.url, timeout_seconds=5)
    yield sender
    sender.close()


def test_a_spike_pages_once_after_its_duration_then_resolves_once(
    engine: Engine, tmp_path: Path, receiver: Receiver, pagerduty: PagerDutySender
) -> None:
    settings = settings_for(engine, tmp_path, SPIKE)
    rules = ruleset(settings)
    clock = Clock(T0)

    def cycle(at: datetime) -> list[tuple[str, str]]:
        clock.now = at
        report = evaluate_rules(engine, settings, rules, now=at)
        deliver_due(engine, {"pagerduty": pagerduty}, clock=clock)
        return report.transitions

    add_predictions(engine, T0, total=200, fraud=20)  # 10 % of answers scored above the block threshold
    assert cycle(T0) == [("fraud_rate_spike", "pending")]
    for minute in (3, 6, 9):
        add_predictions(engine, T0 + timedelta(minutes=minute), total=200, fraud=20)
        assert cycle(T0 + timedelta(minutes=minute, seconds=30)) == []
    assert receiver.requests == []  # pending for 9.5 minutes: nobody paged yet
    add_predictions(engine, T0 + timedelta(minutes=10), total=200, fraud=20)
    assert cycle(T0 + timedelta(minutes=10)) == [("fraud_rate_spike", "firing")]
    add_predictions(engine, T0 + timedelta(minutes=11), total=200, fraud=20)
    assert cycle(T0 + timedelta(minutes=11)) == []  # still firing: no second page
    assert len(receiver.requests) == 1
    trigger = json.loads(receiver.requests[0].body)
    assert trigger["event_action"] == "trigger"
    assert trigger["routing_key"] == KEY
    assert trigger["dedup_key"] == "ticketguard/fraud_rate_spike"
    assert trigger["payload"]["severity"] == "error"  # high → error
    assert trigger["payload"]["source"] == "ticketguard"
    assert trigger["payload"]["custom_details"]["value"] == pytest.approx(0.1)
    assert trigger["payload"]["custom_details"]["since"] == T0.isoformat()
    assert trigger["links"][0]["href"] == "https://console.example/alerts"

    # it subsides: clean traffic only
    add_predictions(engine, T0 + timedelta(minutes=20), total=200, fraud=1)
    assert cycle(T0 + timedelta(minutes=20)) == [("fraud_rate_spike", "resolved")]
    add_predictions(engine, T0 + timedelta(minutes=21), total=200, fraud=1)
    assert cycle(T0 + timedelta(minutes=21)) == []
    assert len(receiver.requests) == 2
    resolve = json.loads(receiver.requests[1].body)
    assert resolve == {
        "routing_key": KEY,
        "event_action": "resolve",
        "dedup_key": "ticketguard/fraud_rate_spike",
    }
    assert [h["transition"] for h in reversed(history(engine))] == ["pending", "firing", "resolved"]
    keys = [r["idempotency_key"] for r in outbox_rows(engine)]
    firing_id = states(engine)["fraud_rate_spike"]["firing_id"]
    assert keys == [
        f"alert:fraud_rate_spike:{firing_id}:trigger:pagerduty",
        f"alert:fraud_rate_spike:{firing_id}:resolve:pagerduty",
    ]


def test_a_dip_while_pending_starts_the_duration_over(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(engine, tmp_path, SPIKE)
    rules = ruleset(settings)
    add_predictions(engine, T0, total=100, fraud=10)
    assert evaluate_rules(engine, settings, rules, now=T0).transitions == [("fraud_rate_spike", "pending")]
    add_predictions(engine, T0 + timedelta(minutes=6), total=100, fraud=0)
    dip = T0 + timedelta(minutes=6)
    assert evaluate_rules(engine, settings, rules, now=dip).transitions == [("fraud_rate_spike", "inactive")]
    add_predictions(engine, T0 + timedelta(minutes=12), total=100, fraud=10)
    again = T0 + timedelta(minutes=12)
    assert evaluate_rules(engine, settings, rules, now=again).transitions == [("fraud_rate_spike", "pending")]
    # 10 minutes after the first pending, but only 5 after the restart of the count: not firing
    add_predictions(engine, T0 + timedelta(minutes=17), total=100, fraud=10)
    later = T0 + timedelta(minutes=17)
    assert evaluate_rules(engine, settings, rules, now=later).transitions == []
    assert outbox_rows(engine) == []


def test_state_is_stored_a_new_engine_carries_on(engine: Engine, tmp_path: Path) -> None:
    from ticketguard.kit.db import make_engine

    settings = settings_for(engine, tmp_path, SPIKE)
    rules = ruleset(settings)
    add_predictions(engine, T0, total=100, fraud=10)
    evaluate_rules(engine, settings, rules, now=T0)
    other = make_engine(settings.resolved_database_url)  # a restarted worker
    try:
        add_predictions(other, T0 + timedelta(minutes=10), total=100, fraud=10)
        report = evaluate_rules(other, settings, rules, now=T0 + timedelta(minutes=10))
    finally:
        other.dispose()
    assert report.transitions == [("fraud_rate_spike", "firing")]
    assert len(outbox_rows(engine)) == 1


def test_a_rule_removed_while_firing_is_closed(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(engine, tmp_path, SPIKE.replace("10m", "0s"))
    add_predictions(engine, T0, total=100, fraud=10)
    evaluate_rules(engine, settings, ruleset(settings), now=T0)
    assert states(engine)["fraud_rate_spike"]["state"] == "firing"
    other = settings_for(engine, tmp_path, SLACK)  # the file now holds another rule only
    report = evaluate_rules(engine, other, ruleset(other), now=T0 + timedelta(minutes=1))
    assert ("fraud_rate_spike", "resolved") in report.transitions
    assert states(engine)["fraud_rate_spike"]["state"] == "resolved"
    assert history(engine, "fraud_rate_spike")[0]["details"] == {"detail": "rule removed from the rules file"}


SLACK = """\
alerts:
  - name: degraded_answers
    condition: degraded_rate > 5%
    duration: 0s
    severity: high
    action: slack
    annotations:
      summary: Too many degraded answers
"""


def test_slack_down_for_a_while_gets_the_message_once_after_it_recovers(
    engine: Engine, tmp_path: Path, receiver: Receiver
) -> None:
    settings = settings_for(engine, tmp_path, SLACK)
    add_predictions(engine, T0, total=100, fraud=0, degraded=20)
    report = evaluate_rules(engine, settings, ruleset(settings), now=T0)
    assert report.transitions == [("degraded_answers", "firing")]
    receiver.statuses = [500] * 7  # down for seven tries: more than 10 simulated minutes of backoff
    slack = SlackSender(receiver.url)
    clock = Clock(T0)
    policy = RetryPolicy(max_attempts=12, base_seconds=5, max_seconds=300, jitter=0.0)
    rng = random.Random(1)
    from ticketguard.alerts.service import notification_failures

    for _ in range(60):
        deliver_due(engine, {"slack": slack}, policy=policy, clock=clock, rng=rng)
        if outbox_rows(engine)[0]["status"] == "sent":
            break
        if len(receiver.requests) == 2:
            failures = notification_failures(engine)  # what `alerts status` shows meanwhile
            assert failures
            assert failures[0]["last_error"] == "Slack answered HTTP 500"
        clock.now += timedelta(seconds=30)
    slack.close()
    assert len(receiver.requests) == 8
    assert outbox_rows(engine)[0]["status"] == "sent"
    assert clock.now - T0 >= timedelta(minutes=10)
    bodies = {r.body for r in receiver.requests}
    assert len(bodies) == 1  # the same message each time
    text = json.loads(receiver.requests[-1].body)["text"]
    assert "[FIRING] degraded_answers (high): Too many degraded answers" in text
    assert "degraded_rate = 0.2 (condition degraded_rate > 5%, threshold 0.05; 20 of 100 answers)" in text
    assert f"since {T0.isoformat()}" in text
    assert "console: https://console.example/alerts" in text
    deliver_due(engine, {"slack": SlackSender(receiver.url)}, policy=policy, clock=clock, rng=rng)
    assert len(receiver.requests) == 8  # once


def test_a_silence_holds_the_notification_until_it_ends(engine: Engine, tmp_path: Path) -> None:
    from ticketguard.alerts.service import add_silence

    settings = settings_for(engine, tmp_path, SLACK)
    rules = ruleset(settings)
    add_silence(engine, "degraded_answers", duration=timedelta(hours=1), actor="ops", reason="deploy", now=T0)
    add_predictions(engine, T0 + timedelta(minutes=1), total=100, fraud=0, degraded=20)
    evaluate_rules(engine, settings, rules, now=T0 + timedelta(minutes=1))
    assert states(engine)["degraded_answers"]["state"] == "firing"
    assert outbox_rows(engine) == []
    add_predictions(engine, T0 + timedelta(minutes=30), total=100, fraud=0, degraded=20)
    evaluate_rules(engine, settings, rules, now=T0 + timedelta(minutes=30))
    assert outbox_rows(engine) == []
    add_predictions(engine, T0 + timedelta(minutes=61), total=100, fraud=0, degraded=20)
    evaluate_rules(engine, settings, rules, now=T0 + timedelta(minutes=61))  # silence over, still firing
    rows = outbox_rows(engine)
    assert [r["payload"]["kind"] for r in rows] == ["trigger"]
    evaluate_rules(
        engine, settings, rules, now=T0 + timedelta(minutes=70)
    )  # resolves (no data in the window)
    assert [r["payload"]["kind"] for r in outbox_rows(engine)] == ["trigger", "resolve"]


def test_repeat_interval_renotifies_while_firing(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(engine, tmp_path, SLACK + "    repeat_interval: 1h\n")
    rules = ruleset(settings)
    for minutes in (0, 30, 61, 90, 122):
        at = T0 + timedelta(minutes=minutes)
        add_predictions(engine, at, total=100, fraud=0, degraded=20)
        evaluate_rules(engine, settings, rules, now=at)
    assert [r["idempotency_key"].split(":")[3] for r in outbox_rows(engine)] == [
        "trigger",
        "repeat-1",
        "repeat-2",
    ]


def test_alerts_test_sends_a_synthetic_notification_without_changing_state(
    engine: Engine, tmp_path: Path, receiver: Receiver, pagerduty: PagerDutySender
) -> None:
    settings = settings_for(engine, tmp_path, SPIKE)
    assert send_test(engine, settings, ruleset(settings).get("fraud_rate_spike"), now=T0) == 1
    deliver_due(engine, {"pagerduty": pagerduty}, clock=Clock(T0))
    body = json.loads(receiver.wait_for(1)[0].body)
    assert body["payload"]["custom_details"]["test"] is True
    assert body["payload"]["summary"].startswith("[TEST] fraud_rate_spike")
    assert states(engine) == {}
    assert history(engine)[0]["transition"] == "test"


LOGINS = """\
alerts:
  - name: failed_login_attempts
    condition: failed_logins > 5
    duration: 0s
    severity: high
    actions:
      - type: block_ip
        ttl: 30m
        min_events: 2
"""


def test_failed_logins_block_the_addresses_behind_them_audited_with_a_ttl(
    engine: Engine, tmp_path: Path
) -> None:
    settings = settings_for(engine, tmp_path, LOGINS, security_no_autoblock_ips=["198.51.100.7"])
    attacker = login_failures(engine, settings, "203.0.113.9", 6, T0)
    typo = login_failures(engine, settings, "192.0.2.1", 1, T0)  # one typo: below min_events
    exempt = login_failures(engine, settings, "198.51.100.7", 3, T0)  # the backend: never blocked
    report = evaluate_rules(engine, settings, ruleset(settings), now=T0)
    assert report.transitions == [("failed_login_attempts", "firing")]
    assert states(engine)["failed_login_attempts"]["detail"] == "10 failed log-ins from 3 addresses"
    with engine.connect() as conn:
        blocks = {r.ip_hash: r for r in conn.execute(select(tables.ip_blocks))}
        responses = conn.execute(select(tables.security_responses)).all()
        audit_actions = list(conn.execute(select(tables.admin_audit_log.c.action)).scalars())
    assert set(blocks) == {attacker}
    assert typo not in blocks
    assert exempt not in blocks
    assert blocks[attacker].expires_at == T0 + timedelta(minutes=30)
    assert blocks[attacker].added_by == "rule:alert:failed_login_attempts"
    assert [(r.rule, r.action, r.target) for r in responses] == [
        ("alert:failed_login_attempts", "block_ip", attacker)
    ]
    assert "response.block_ip" in audit_actions
    assert "alert.fired" in audit_actions
    firing = history(engine)[0]
    assert firing["details"]["actions"][0]["target"] == attacker
    assert firing["details"]["actions"][1] == {
        "action": "block_ip",
        "target": exempt,
        "skipped": "SECURITY_NO_AUTOBLOCK_IPS",
    }
    with engine.begin() as conn:  # reversible through the security layer
        revert_response(conn, responses[0].id, actor="ops", now=T0 + timedelta(minutes=1))
    with engine.connect() as conn:
        assert conn.execute(select(tables.ip_blocks)).all() == []


SURGE = """\
alerts:
  - name: fraud_rate_surge
    condition: fraud_rate > 0.05
    duration: 0s
    severity: critical
    actions:
      - type: tighten_thresholds
        step: 0.1
        ttl: 10m
"""


def test_a_surge_tightens_the_thresholds_once_for_its_ttl(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(engine, tmp_path, SURGE)
    rules = ruleset(settings)
    add_predictions(engine, T0, total=100, fraud=10)
    evaluate_rules(engine, settings, rules, now=T0)
    with engine.connect() as conn:
        override = active_threshold_override(conn, T0 + timedelta(minutes=9))
        expired = active_threshold_override(conn, T0 + timedelta(minutes=10))
    assert override is not None
    assert (override.block, override.review, override.twofa) == (0.75, 0.55, 0.3)
    assert override.rule == "alert:fraud_rate_surge"
    assert expired is None


MFA = """\
alerts:
  - name: admin_mfa_failures
    condition: mfa_failures > 0
    duration: 0s
    severity: critical
    actions:
      - type: lock_admin
        ttl: 1h
      - slack
"""


def test_repeated_mfa_failures_lock_the_account_through_the_console_revertibly(
    engine: Engine, tmp_path: Path
) -> None:
    from ticketguard.security.events import user_token

    settings = settings_for(engine, tmp_path, MFA)
    with engine.begin() as conn:
        # the account row as the console keeps it (its password and TOTP do not matter here)
        user_id = conn.execute(
            insert(tables.admin_users)
            .values(username="alice", password_hash="x", role="admin", created_at=T0)
            .returning(tables.admin_users.c.id)
        ).scalar_one()
        conn.execute(
            insert(tables.admin_sessions).values(
                id="s" * 64,
                admin_user_id=user_id,
                created_at=T0,
                expires_at=T0 + timedelta(hours=8),
                last_seen_at=T0,
            )
        )
        conn.execute(  # what the console writes after three bad TOTP codes (user_id is a keyed hash)
            insert(tables.security_events).values(
                event_type="mfa_failures",
                severity="critical",
                user_id=user_token("alice", pepper(settings)),
                metadata={"failures": 3},
                timestamp=T0,
            )
        )
    at = T0 + timedelta(seconds=10)
    report = evaluate_rules(engine, settings, ruleset(settings), now=at)
    assert report.transitions == [("admin_mfa_failures", "firing")]
    assert report.actions == 1
    assert states(engine)["admin_mfa_failures"]["detail"] == "1 repeated MFA failures of 1 accounts"
    with engine.connect() as conn:
        user = conn.execute(select(tables.admin_users).where(tables.admin_users.c.username == "alice")).one()
        sessions = conn.execute(select(tables.admin_sessions)).all()
        response = conn.execute(select(tables.security_responses)).one()
        audit_actions = set(conn.execute(select(tables.admin_audit_log.c.action)).scalars())
    assert user.locked_until == at + timedelta(hours=1)
    assert [s.revoked_at is not None for s in sessions] == [True]  # the console ended its session
    assert (response.rule, response.action, response.target) == (
        "alert:admin_mfa_failures",
        "lock_admin",
        "alice",
    )
    assert {"admin.account_lock", "response.lock_admin", "alert.fired"} <= audit_actions
    assert [r["channel"] for r in outbox_rows(engine)] == ["slack"]
    with engine.begin() as conn:
        revert_response(conn, response.id, actor="ops", now=at + timedelta(minutes=1))
    with engine.connect() as conn:
        unlocked = conn.execute(
            select(tables.admin_users.c.locked_until).where(tables.admin_users.c.username == "alice")
        ).scalar_one()
        audit_actions = set(conn.execute(select(tables.admin_audit_log.c.action)).scalars())
    assert unlocked is None
    assert "admin.account_unlock" in audit_actions


def test_review_queue_age_comes_from_the_review_queue(engine: Engine, tmp_path: Path) -> None:
    from ticketguard.alerts.catalogue import read_metric
    from ticketguard.alerts.service import metric_context

    settings = settings_for(engine, tmp_path, SPIKE)
    ctx = metric_context(settings, T0)
    with engine.connect() as conn:
        empty = read_metric(conn, "review_queue_age_minutes", ctx)
    assert empty.value == 0.0
    with engine.begin() as conn:
        conn.execute(
            insert(tables.fraud_predictions),
            [
                {
                    "transaction_id": f"r-{i}",
                    "fraud_score": 0.7,
                    "decision": "MANUAL_REVIEW",
                    "timestamp": T0 - timedelta(minutes=m),
                    "degraded": False,
                }
                for i, m in enumerate((5, 95, 30))
            ],
        )
    with engine.connect() as conn:
        value = read_metric(conn, "review_queue_age_minutes", metric_context(settings, T0))
    assert value.value == pytest.approx(95.0)
    assert value.detail == "oldest of 3 undecided cases"


# ----------------------------------------------------------------------------------------- CLI
runner = CliRunner()


def test_alerts_check_names_the_line_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ticketguard.cli import app

    good = tmp_path / "good.yaml"
    good.write_text(SPIKE)
    result = runner.invoke(app, ["alerts", "check", str(good)])
    assert result.exit_code == 0, result.output
    assert "1 rules OK" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPIKE.replace("10m", "ten").replace("pagerduty", "pagerdoody"))
    result = runner.invoke(app, ["alerts", "check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:4: rule 'fraud_rate_spike': duration: expected a duration" in result.output
    assert "unknown action 'pagerdoody' (did you mean 'pagerduty'?)" in result.output


def test_alerts_cli_status_silence_history_test(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ticketguard.cli import app

    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(SLACK)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ALERT_RULES_PATH", str(rules_file))
    from ticketguard.alerts import cli as alerts_cli

    monkeypatch.setattr(alerts_cli.out, "width", 250)  # rich tables at full width, whatever the terminal
    result = runner.invoke(app, ["alerts", "list"])
    assert result.exit_code == 0, result.output
    assert "degraded_answers" in result.output
    assert "review_queue_age_minutes" in result.output
    result = runner.invoke(app, ["alerts", "status"])
    assert result.exit_code == 0, result.output
    assert "no data" in result.output
    result = runner.invoke(app, ["alerts", "silence", "degraded_answers", "--for", "1h", "--actor", "ops"])
    assert result.exit_code == 0, result.output
    assert "silenced until" in result.output
    assert runner.invoke(app, ["alerts", "silence", "nope", "--for", "1h"]).exit_code == 2
    assert (
        "expected a duration"
        in runner.invoke(app, ["alerts", "silence", "degraded_answers", "--for", "x"]).output
    )
    result = runner.invoke(app, ["alerts", "test", "degraded_answers"])
    assert result.exit_code == 0, result.output
    assert "1 test notification(s) queued" in result.output
    result = runner.invoke(app, ["alerts", "history"])
    assert "test" in result.output
    rules_file.write_text(SLACK.replace("duration: 0s", "duration: soon"))  # broken: both loaders refuse it
    for command in ("list", "status"):
        result = runner.invoke(app, ["alerts", command])
        assert result.exit_code == 2, (command, result.output)
        assert "rules.yaml:4: rule 'degraded_answers': duration: expected a duration" in result.output


def test_a_rules_file_broken_at_runtime_fails_the_job_with_its_mistakes(
    engine: Engine, tmp_path: Path
) -> None:
    from ticketguard.jobs.runner import run_job

    settings = settings_for(engine, tmp_path, SPIKE.replace("10m", "soon"))
    run = run_job("evaluate-alerts", settings, engine, trigger="schedule")
    assert run.status == "failed"
    assert run.error is not None
    assert "alert_rules.yaml:4: rule 'fraud_rate_spike': duration: expected a duration" in run.error
    assert states(engine) == {}
