"""Evaluation: read the metrics the rules name, step each rule's stored state, and — in the same transaction
as the state change — queue its notifications in the outbox and apply its actions through the security
layer's responses.

One evaluation is the worker's `evaluate-alerts` job (every ALERT_EVAL_SECONDS); the scheduler's job lock
means two workers never evaluate at once, and each rule's row is locked while it changes (``FOR UPDATE``
on PostgreSQL), so a firing is recorded — and notified — once. A worker killed after the commit leaves the
notifications in the outbox: they are sent by the next delivery pass, after a restart if need be.

Idempotency key of a notification: ``alert:<rule>:<firing id>:<trigger|resolve|repeat-N>:<channel>``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, select, update

from ticketguard.alerts import rules as R
from ticketguard.alerts.catalogue import (
    LOGIN_FAILED,
    METRIC_UNITS,
    MFA_FAILURES,
    RATE_LIMITED,
    MetricContext,
    MetricValue,
    read_metric,
)
from ticketguard.alerts.notifiers import notification_payload
from ticketguard.config import Settings
from ticketguard.delivery.outbox import enqueue
from ticketguard.kit.db import dialect_insert
from ticketguard.scoring.domain import Thresholds
from ticketguard.security.audit import audit
from ticketguard.security.responses import ResponseRecord, apply_response
from ticketguard.tables import (
    admin_users,
    alert_history,
    alert_silences,
    alert_state,
    security_events,
    security_responses,
)

log = logging.getLogger(__name__)

DEFAULT_RULES_PATH = Path(__file__).with_name("alert_rules.yaml")


# ------------------------------------------------------------------------------------------- rules
def rules_path(settings: Settings) -> Path:
    return settings.alert_rules_path or DEFAULT_RULES_PATH


def load_rules_file(path: Path) -> R.RuleSet:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise R.RulesError([f"{path}: cannot be read ({exc.strerror or type(exc).__name__})"]) from None
    return R.parse_rules(text, source=str(path), metric_units=METRIC_UNITS)


def load_rules(settings: Settings) -> R.RuleSet:
    return load_rules_file(rules_path(settings))


# ------------------------------------------------------------------------------------------- report
@dataclass
class EvaluationReport:
    rules: int = 0
    transitions: list[tuple[str, str]] = field(default_factory=list)
    notifications: int = 0
    actions: int = 0
    action_failures: int = 0
    metrics: dict[str, MetricValue] = field(default_factory=dict)
    seconds_metrics: float = 0.0

    def counts(self) -> dict[str, Any]:
        return {
            # `attempted` > 0 makes the run worth a job_runs row (a quiet cycle is not recorded)
            "attempted": len(self.transitions) + self.notifications + self.actions,
            "rules": self.rules,
            "transitions": ",".join(f"{rule}:{to}" for rule, to in self.transitions),
            "notifications": self.notifications,
            "actions": self.actions,
            "action_failures": self.action_failures,
            "metrics_seconds": round(self.seconds_metrics, 4),
        }


# ------------------------------------------------------------------------------------------- metrics
def metric_context(settings: Settings, now: datetime) -> MetricContext:
    return MetricContext(
        now=now,
        window=timedelta(seconds=settings.alert_metric_window_seconds),
        block_threshold=settings.fraud_threshold_block,
        api_metrics_url=settings.alert_api_metrics_url,
        scrape_timeout_s=min(5.0, settings.outbox_send_timeout_seconds),
        review_horizon=settings.review_queue_horizon,
    )


def read_metrics(engine: Engine, names: Sequence[str], ctx: MetricContext) -> dict[str, MetricValue]:
    """Each metric once per cycle, each in a connection of its own (one failing source cannot abort the
    others' reads)."""
    out: dict[str, MetricValue] = {}
    for name in dict.fromkeys(names):
        with engine.connect() as conn:
            out[name] = read_metric(conn, name, ctx)
    return out


# ------------------------------------------------------------------------------------------- state
def _state(conn: Connection, rule: str) -> tuple[R.RuleState, dict[str, Any]]:
    conn.execute(
        dialect_insert(conn, alert_state)
        .values(rule=rule, state=R.INACTIVE, notified=False, repeats=0)
        .on_conflict_do_nothing(index_elements=["rule"])
    )
    row = (
        conn.execute(select(alert_state).where(alert_state.c.rule == rule).with_for_update()).mappings().one()
    )
    return R.RuleState(row["state"], row["since"], row["value"], row["firing_id"]), dict(row)


def silenced(conn: Connection, rule: str, now: datetime) -> datetime | None:
    """When the silence on ``rule`` in force at ``now`` ends (None: not silenced)."""
    s = alert_silences
    return conn.execute(
        select(func.max(s.c.ends_at)).where(s.c.rule == rule, s.c.starts_at <= now, s.c.ends_at > now)
    ).scalar_one_or_none()


def _history(
    conn: Connection,
    rule: R.Rule,
    transition: str,
    value: float | None,
    now: datetime,
    firing_id: int | None,
    details: dict[str, Any],
) -> int:
    return int(
        conn.execute(
            insert(alert_history)
            .values(
                rule=rule.name,
                transition=transition,
                value=value,
                threshold=rule.condition.threshold,
                condition=rule.condition.text,
                firing_id=firing_id,
                details=details,
                at=now,
            )
            .returning(alert_history.c.id)
        ).scalar_one()
    )


# ------------------------------------------------------------------------------------------- notify
def _destination(action: R.Action, settings: Settings) -> str:
    if action.type == "email":
        to = action.options.get("to")
        return ", ".join(to) if to else settings.alert_email_to
    if action.type == "webhook":
        return str(action.options.get("url") or settings.alert_webhook_url or "")
    return ""


def queue_notifications(
    conn: Connection,
    rule: R.Rule,
    settings: Settings,
    *,
    kind: str,
    tag: str,
    value: float | None,
    detail: str,
    since: datetime,
    now: datetime,
    firing_id: int | None,
) -> int:
    """One outbox row per notifying action of the rule, in the caller's transaction."""
    payload = notification_payload(
        rule,
        kind=kind,
        value=value,
        detail=detail,
        since=since,
        at=now,
        firing_id=firing_id,
        console_url=settings.alert_console_url,
    )
    queued = 0
    for action in rule.actions:
        if not action.notifies:
            continue
        queued += enqueue(
            conn,
            channel=action.type,
            payload=payload,
            idempotency_key=f"alert:{rule.name}:{firing_id}:{tag}:{action.type}",
            ordering_key=f"alert:{rule.name}:{action.type}",
            destination=_destination(action, settings),
            source="alert" if kind != "test" else "alert-test",
            now=now,
        )
    return queued


# ------------------------------------------------------------------------------------------- actions
def response_rule(rule: R.Rule) -> str:
    return f"alert:{rule.name}"


def _active_response(conn: Connection, rule: str, action: str, target: str, now: datetime) -> bool:
    t = security_responses
    return (
        conn.execute(
            select(t.c.id).where(
                t.c.rule == rule,
                t.c.action == action,
                t.c.target == target,
                t.c.reverted_at.is_(None),
                (t.c.expires_at.is_(None)) | (t.c.expires_at > now),
            )
        ).first()
        is not None
    )


def _offenders(
    conn: Connection, rule: R.Rule, ctx: MetricContext, column: Any, min_events: int
) -> list[tuple[str, int]]:
    """Who is behind the rule's metric in its window: source IPs (block_ip) or users (lock_admin)."""
    types = {
        "failed_logins": (LOGIN_FAILED,),
        "mfa_failures": (MFA_FAILURES,),
        "rate_limited_ips": (RATE_LIMITED,),
    }[rule.condition.metric]
    e = security_events
    rows = conn.execute(
        select(column, func.count())
        .where(
            e.c.event_type.in_(types),
            column.is_not(None),
            e.c.timestamp > ctx.now - ctx.window,
            e.c.timestamp <= ctx.now,
        )
        .group_by(column)
        .having(func.count() >= min_events)
        .order_by(func.count().desc())
        .limit(1000)
    ).all()
    return [(str(r[0]), int(r[1])) for r in rows]


def _exempt_tokens(settings: Settings) -> frozenset[str]:
    if not settings.security_no_autoblock_ips:
        return frozenset()
    from ticketguard.security.keys import pepper
    from ticketguard.security.redact import hash_ip

    key = pepper(settings)
    return frozenset(hash_ip(ip, key) for ip in settings.security_no_autoblock_ips)


def _ttl(action: R.Action, settings: Settings) -> timedelta:
    ttl = action.options.get("ttl")
    return ttl if isinstance(ttl, timedelta) else timedelta(seconds=settings.alert_action_ttl_seconds)


def tightened(settings: Settings, step: float) -> Thresholds:
    """The configured thresholds moved down by ``step`` (stricter), kept in order and above 0."""
    block = max(settings.fraud_threshold_block - step, 0.03)
    review = min(max(settings.fraud_threshold_review - step, 0.02), block - 0.005)
    twofa = min(max(settings.fraud_threshold_2fa - step, 0.01), review - 0.005)
    return Thresholds(block=round(block, 6), review=round(review, 6), twofa=round(twofa, 6))


def apply_actions(
    conn: Connection,
    rule: R.Rule,
    settings: Settings,
    ctx: MetricContext,
    *,
    firing_id: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """The rule's response actions, each through `security.responses.apply_response` (audited, with a
    TTL, revertible with `ticketguard security revert ID`). Returns what was done, for the history."""
    done: list[dict[str, Any]] = []
    actor_rule = response_rule(rule)
    for action in rule.actions:
        if action.notifies:
            continue
        ttl = _ttl(action, settings)
        base = {"alert": rule.name, "firing_id": firing_id}
        if action.type == "block_ip":
            exempt = _exempt_tokens(settings)
            min_events = int(action.options.get("min_events", 1))
            for token, count in _offenders(conn, rule, ctx, security_events.c.source_ip, min_events):
                if token in exempt:
                    done.append(
                        {"action": "block_ip", "target": token, "skipped": "SECURITY_NO_AUTOBLOCK_IPS"}
                    )
                    continue
                if _active_response(conn, actor_rule, "block_ip", token, now):
                    continue
                record = apply_response(
                    conn,
                    rule=actor_rule,
                    action="block_ip",
                    target=token,
                    now=now,
                    duration=ttl,
                    params={**base, "events": count, "masked": None},
                )
                done.append(_done(record))
        elif action.type == "tighten_thresholds":
            if _active_response(conn, actor_rule, "tighten_thresholds", "thresholds", now):
                continue
            step = float(action.options.get("step", settings.alert_tighten_step))
            new = tightened(settings, step)
            record = apply_response(
                conn,
                rule=actor_rule,
                action="tighten_thresholds",
                target="thresholds",
                now=now,
                duration=ttl,
                params={
                    **base,
                    "step": step,
                    "block": new.block,
                    "review": new.review,
                    "2fa": new.twofa,
                    "configured": {
                        "block": settings.fraud_threshold_block,
                        "review": settings.fraud_threshold_review,
                        "2fa": settings.fraud_threshold_2fa,
                    },
                },
            )
            done.append(_done(record))
        elif action.type == "lock_admin":
            done.extend(_lock_admins(conn, rule, action, settings, ctx, ttl=ttl, base=base, now=now))
    return done


def _lock_admins(
    conn: Connection,
    rule: R.Rule,
    action: R.Action,
    settings: Settings,
    ctx: MetricContext,
    *,
    ttl: timedelta,
    base: dict[str, Any],
    now: datetime,
) -> list[dict[str, Any]]:
    """Lock the accounts behind the metric's events through the console's own lockout."""
    try:
        from ticketguard.admin.accounts import lock_account
    except ImportError:
        # recorded in the firing's history and logged; the rule's notifications still go out
        why = "the console's accounts (ticketguard.admin.accounts) are not installed"
        log.error("alert %s: lock_admin not applied: %s", rule.name, why)
        return [{"action": "lock_admin", "failed": why}]
    from ticketguard.security.events import user_token
    from ticketguard.security.keys import pepper

    # The console's events name the account by a keyed hash (user_id = user:…): map it back over the
    # (few) admin accounts.
    key = pepper(settings)
    accounts = {
        user_token(name, key): name for name in conn.execute(select(admin_users.c.username)).scalars()
    }
    done: list[dict[str, Any]] = []
    actor_rule = response_rule(rule)
    min_events = int(action.options.get("min_events", 1))
    for token, count in _offenders(conn, rule, ctx, security_events.c.user_id, min_events):
        name = accounts.get(token)
        if name is None:
            done.append({"action": "lock_admin", "target": token, "skipped": "no such account"})
            continue
        if _active_response(conn, actor_rule, "lock_admin", name, now):
            continue
        lock_account(
            conn, name, until=now + ttl, reason=f"alert {rule.name}: {count} events", actor=actor_rule
        )
        record = apply_response(
            conn,
            rule=actor_rule,
            action="lock_admin",
            target=name,
            now=now,
            duration=ttl,
            params={**base, "events": count},
        )
        done.append(_done(record))
    return done


def _done(record: ResponseRecord) -> dict[str, Any]:
    return {
        "action": record.action,
        "response_id": record.id,
        "target": record.target,
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
    }


# ------------------------------------------------------------------------------------------- evaluate
def evaluate_rules(
    engine: Engine,
    settings: Settings,
    ruleset: R.RuleSet,
    *,
    now: datetime,
    metrics: dict[str, MetricValue] | None = None,
) -> EvaluationReport:
    """One evaluation cycle. Each rule changes in a transaction of its own."""
    import time

    report = EvaluationReport(rules=len(ruleset.rules))
    ctx = metric_context(settings, now)
    started = time.perf_counter()
    values = metrics if metrics is not None else read_metrics(engine, ruleset.metrics, ctx)
    report.seconds_metrics = time.perf_counter() - started
    report.metrics = values
    for rule in ruleset.rules:
        measured = values.get(rule.condition.metric, MetricValue(None, "no data"))
        _evaluate_rule(engine, settings, rule, measured, ctx, now, report)
    _retire_removed(engine, {r.name for r in ruleset.rules}, now, report)
    return report


def _retire_removed(engine: Engine, names: set[str], now: datetime, report: EvaluationReport) -> None:
    """A rule taken out of the file while pending or firing is closed (history ``resolved``/``inactive``,
    detail "rule removed"), so `alerts status` and the history do not show it open forever. Its channels
    are not told: the rule that knew them is gone (a PagerDuty incident is resolved by hand there)."""
    with engine.begin() as conn:
        rows = conn.execute(
            select(alert_state.c.rule, alert_state.c.state, alert_state.c.firing_id)
            .where(alert_state.c.state.in_((R.PENDING, R.FIRING)))
            .with_for_update()
        ).all()
        for rule, state, firing_id in rows:
            if rule in names:
                continue
            to = R.RESOLVED if state == R.FIRING else R.INACTIVE
            conn.execute(
                insert(alert_history).values(
                    rule=rule,
                    transition=to,
                    firing_id=firing_id if to == R.RESOLVED else None,
                    details={"detail": "rule removed from the rules file"},
                    at=now,
                )
            )
            conn.execute(
                update(alert_state)
                .where(alert_state.c.rule == rule)
                .values(state=to, since=now, detail="rule removed from the rules file", last_evaluated_at=now)
            )
            report.transitions.append((rule, to))
            log.warning("alert %s: no longer in the rules file; closed as %s", rule, to)


def _evaluate_rule(
    engine: Engine,
    settings: Settings,
    rule: R.Rule,
    measured: MetricValue,
    ctx: MetricContext,
    now: datetime,
    report: EvaluationReport,
) -> None:
    with engine.begin() as conn:
        current, row = _state(conn, rule.name)

        def notify(kind: str, tag: str, *, since: datetime, firing_id: int | None) -> None:
            report.notifications += queue_notifications(
                conn,
                rule,
                settings,
                kind=kind,
                tag=tag,
                value=measured.value,
                detail=measured.detail,
                since=since,
                now=now,
                firing_id=firing_id,
            )

        transition = R.step(current, rule, measured.value, now)
        values: dict[str, Any] = {
            "value": measured.value,
            "detail": measured.detail[:500],
            "last_evaluated_at": now,
        }
        quiet_until = silenced(conn, rule.name, now)
        if transition is None:
            if current.state == R.FIRING and quiet_until is None:
                since = current.since or now
                if not row["notified"]:  # fired while silenced; the silence is over: notify now
                    notify("trigger", "trigger", since=since, firing_id=current.firing_id)
                    values.update(notified=True, last_notified_at=now)
                elif R.repeat_due(rule, row["last_notified_at"], now):
                    n = int(row["repeats"]) + 1
                    notify("repeat", f"repeat-{n}", since=since, firing_id=current.firing_id)
                    values.update(repeats=n, last_notified_at=now)
            conn.execute(update(alert_state).where(alert_state.c.rule == rule.name).values(**values))
            return
        report.transitions.append((rule.name, transition.to))
        details: dict[str, Any] = {"detail": measured.detail}
        if transition.to == R.PENDING:
            _history(conn, rule, R.PENDING, measured.value, now, None, details)
            values.update(state=R.PENDING, since=now)
        elif transition.to == R.INACTIVE:
            _history(conn, rule, R.INACTIVE, measured.value, now, None, details)
            values.update(state=R.INACTIVE, since=now)
        elif transition.to == R.FIRING:
            pending_since: datetime = (
                current.since if current.state == R.PENDING and current.since is not None else now
            )
            details["pending_since"] = pending_since.isoformat()
            firing_id = _history(conn, rule, R.FIRING, measured.value, now, None, details)
            conn.execute(
                update(alert_history).where(alert_history.c.id == firing_id).values(firing_id=firing_id)
            )
            done = apply_actions(conn, rule, settings, ctx, firing_id=firing_id, now=now)
            report.actions += sum(1 for d in done if "response_id" in d)
            report.action_failures += sum(1 for d in done if "failed" in d)
            notified = quiet_until is None
            if notified:
                notify("trigger", "trigger", since=pending_since, firing_id=firing_id)
            elif quiet_until is not None:
                details["silenced_until"] = quiet_until.isoformat()
            if done or not notified:
                conn.execute(
                    update(alert_history)
                    .where(alert_history.c.id == firing_id)
                    .values(details={**details, "actions": done})
                )
            values.update(
                state=R.FIRING,
                since=now,
                firing_id=firing_id,
                notified=notified,
                last_notified_at=now if notified else None,
                repeats=0,
            )
            audit(
                conn,
                actor=response_rule(rule),
                action="alert.fired",
                now=now,
                details={
                    "rule": rule.name,
                    "firing_id": firing_id,
                    "value": measured.value,
                    "condition": rule.condition.text,
                },
            )
        elif transition.to == R.RESOLVED:
            fired = current.firing_id
            _history(conn, rule, R.RESOLVED, measured.value, now, fired, details)
            if rule.resolve and row["notified"]:
                notify("resolve", "resolve", since=current.since or now, firing_id=fired)
            values.update(state=R.RESOLVED, since=now)
        conn.execute(update(alert_state).where(alert_state.c.rule == rule.name).values(**values))
    log.info("alert %s → %s (%s)", rule.name, transition.to, measured.detail)


# ------------------------------------------------------------------------------------------- job
def evaluate_job(settings: Settings, engine: Engine, now: datetime) -> dict[str, Any]:
    """The `evaluate-alerts` job; new IP blocks are pushed to Redis at once (PostgreSQL NOTIFY tells the
    API workers too)."""
    ruleset = load_rules(settings)
    report = evaluate_rules(engine, settings, ruleset, now=now)
    if report.actions:
        from ticketguard.security.lists import publish_ip_blocks_with

        publish_ip_blocks_with(engine, settings)
    return report.counts()


# ------------------------------------------------------------------------------------------- CLI helpers
def add_silence(
    engine: Engine, rule: str, *, duration: timedelta, actor: str, reason: str | None, now: datetime
) -> datetime:
    ends = now + duration
    with engine.begin() as conn:
        conn.execute(
            insert(alert_silences).values(
                rule=rule, starts_at=now, ends_at=ends, created_by=actor[:64], reason=reason, created_at=now
            )
        )
        audit(
            conn,
            actor=actor,
            action="alert.silence",
            now=now,
            details={"rule": rule, "until": ends.isoformat(), "reason": reason},
        )
    return ends


def send_test(engine: Engine, settings: Settings, rule: R.Rule, *, now: datetime) -> int:
    """A synthetic notification through the rule's notifying actions (kind ``test``; no state change, no
    response action). Recorded in the history."""
    with engine.begin() as conn:
        test_id = _history(conn, rule, "test", None, now, None, {"detail": "synthetic test notification"})
        return queue_notifications(
            conn,
            rule,
            settings,
            kind="test",
            tag=f"test-{test_id}",
            value=None,
            detail="synthetic test notification (`ticketguard alerts test`)",
            since=now,
            now=now,
            firing_id=test_id,
        )


def states(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {r["rule"]: dict(r) for r in conn.execute(select(alert_state)).mappings()}


def history(engine: Engine, rule: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    h = alert_history
    query = select(h).order_by(h.c.at.desc(), h.c.id.desc()).limit(limit)
    if rule:
        query = query.where(h.c.rule == rule)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def active_silences(engine: Engine, now: datetime) -> dict[str, datetime]:
    s = alert_silences
    with engine.connect() as conn:
        rows = conn.execute(
            select(s.c.rule, func.max(s.c.ends_at))
            .where(and_(s.c.starts_at <= now, s.c.ends_at > now))
            .group_by(s.c.rule)
        ).all()
    return {str(r[0]): r[1] for r in rows}


def notification_failures(engine: Engine) -> list[dict[str, Any]]:
    """Alert notifications that failed at least once and are not sent (for `alerts status`)."""
    from ticketguard.tables import outbox

    o = outbox
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                select(o.c.id, o.c.channel, o.c.status, o.c.attempts, o.c.last_error, o.c.idempotency_key)
                .where(
                    o.c.source.in_(("alert", "alert-test")), o.c.status != "sent", o.c.last_error.is_not(None)
                )
                .order_by(o.c.id.desc())
                .limit(20)
            ).mappings()
        ]
