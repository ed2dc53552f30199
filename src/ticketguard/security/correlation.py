"""The correlation job: read the recent security events and fraud decisions, evaluate the rules, apply each
new finding's response once.

Exactly once: a finding for (rule, target) counts only records newer than the last response of that rule
to that target, and the job runs under the jobs framework's per-job lock — so the burst that triggered a
block never triggers it again, even after the block expires or is reverted; a *new* burst does.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, text

from ticketguard.security import rules as R
from ticketguard.security.events import ALERT, RESPONSE_APPLIED, SecurityEvent, write_events
from ticketguard.security.lists import wallet_blacklisted
from ticketguard.security.redact import mask_wallet
from ticketguard.security.responses import ResponseRecord, apply_response, last_response
from ticketguard.tables import fraud_predictions, security_events, transactions

log = logging.getLogger(__name__)


@dataclass
class CorrelationReport:
    findings: int = 0
    applied: list[ResponseRecord] = field(default_factory=list)
    skipped_repeats: int = 0
    exempt: int = 0
    per_rule: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        counts: dict[str, Any] = {
            "findings": self.findings,
            "responses_applied": len(self.applied),
            "skipped_repeats": self.skipped_repeats,
            "exempt": self.exempt,
        }
        counts.update({f"{rule}.applied": n for rule, n in self.per_rule.items()})
        return counts


def _events(conn: Connection, since: datetime, until: datetime, types: Sequence[str]) -> list[R.EventRecord]:
    t = security_events
    rows = conn.execute(
        select(t.c.event_type, t.c.source_ip, t.c.timestamp).where(
            t.c.timestamp > since, t.c.timestamp <= until, t.c.event_type.in_(list(types))
        )
    )
    return [R.EventRecord(r.event_type, r.source_ip, r.timestamp) for r in rows]


def _decisions(conn: Connection, rule: R.Rule, since: datetime, until: datetime) -> list[R.DecisionRecord]:
    p, t = fraud_predictions, transactions
    rows = conn.execute(
        select(
            p.c.transaction_id,
            t.c.wallet_address,
            p.c.decision,
            p.c.timestamp,
            t.c.ip_address,
            t.c.seller_address,
        )
        .join(t, t.c.transaction_id == p.c.transaction_id)
        .where(p.c.timestamp > since, p.c.timestamp <= until, p.c.decision.in_(list(rule.decisions)))
    )
    return [
        R.DecisionRecord(
            r.transaction_id,
            r.wallet_address.lower(),
            r.decision,
            r.timestamp,
            r.ip_address,
            (r.seller_address or "").lower() or None,
        )
        for r in rows
    ]


def _links(conn: Connection, wallets: set[str], since: datetime, until: datetime) -> list[R.LinkRecord]:
    """Transactions of the window that touch the suspect wallets or their IPs (one hop of the graph)."""
    if not wallets:
        return []
    t = transactions
    rows = conn.execute(
        select(t.c.wallet_address, t.c.ip_address, t.c.seller_address).where(
            t.c.timestamp > since,
            t.c.timestamp <= until,
            t.c.wallet_address.in_(sorted(wallets)) | t.c.seller_address.in_(sorted(wallets)),
        )
    )
    return [
        R.LinkRecord(r.wallet_address.lower(), r.ip_address, (r.seller_address or "").lower() or None)
        for r in rows
    ]


def _fresh(conn: Connection, rule: R.Rule, target: str) -> tuple[bool, datetime | None]:
    """Whether (rule, target) may fire, and the time after which records count (the last response)."""
    last = last_response(conn, rule.name, target)
    return last is None, (last.created_at if last else None)


def _counts_after(at: datetime, cutoff: datetime | None) -> bool:
    return cutoff is None or at > cutoff


def evaluate(conn: Connection, rule: R.Rule, now: datetime) -> list[R.Finding]:
    since = now - rule.window
    if rule.kind == "failed_logins_per_ip":
        events = _events(conn, since, now, ("auth_failed", "login_failed"))
        return _after_last_response(conn, rule, events, R.failed_logins_per_ip)
    if rule.kind == "distinct_rate_limited_ips":
        events = _events(conn, since, now, ("rate_limited",))
        return _after_last_response(conn, rule, events, R.distinct_rate_limited_ips)
    decisions = [d for d in _decisions(conn, rule, since, now) if not wallet_blacklisted(conn, d.wallet, now)]
    cutoffs = {d.wallet: _fresh(conn, rule, d.wallet)[1] for d in decisions}
    decisions = [d for d in decisions if _counts_after(d.timestamp, cutoffs[d.wallet])]
    links = _links(conn, {d.wallet for d in decisions}, since, now)
    return R.fraud_decisions_per_wallet_group(rule, decisions, links)


def _after_last_response(
    conn: Connection, rule: R.Rule, events: list[R.EventRecord], fn: Any
) -> list[R.Finding]:
    findings: list[R.Finding] = []
    for finding in fn(rule, events):
        _, cutoff = _fresh(conn, rule, finding.target)
        if cutoff is None:
            findings.append(finding)
            continue
        # Re-evaluate with only the records after the last response to this target.
        later = [e for e in events if e.timestamp > cutoff]
        findings.extend(f for f in fn(rule, later) if f.target == finding.target)
    return findings


def _serialize(conn: Connection, rule_name: str) -> None:
    """Two runs of one rule at once (a manual run beside the worker's) take turns: the second sees the
    first's responses and applies none twice. PostgreSQL: a transaction-scoped advisory lock; SQLite: the
    database's single writer (a stale reader is refused on write, never double-applies)."""
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(
            hashlib.sha256(f"security-rule:{rule_name}".encode()).digest()[:8], "big", signed=True
        )
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def run_correlation(
    engine: Engine,
    rules: Sequence[R.Rule],
    *,
    now: datetime,
    global_limit: int,
    exempt_targets: frozenset[str] = frozenset(),
) -> CorrelationReport:
    """Evaluate every rule and apply each new finding's response (one transaction per rule). Findings whose
    target is in ``exempt_targets`` (SECURITY_NO_AUTOBLOCK_IPS, as tokens) are counted, never acted on."""
    report = CorrelationReport()
    for rule in rules:
        with engine.begin() as conn:
            _serialize(conn, rule.name)
            findings = evaluate(conn, rule, now)
            report.findings += len(findings)
            applied = 0
            events: list[SecurityEvent] = []
            for finding in findings:
                if finding.target in exempt_targets:
                    report.exempt += 1
                    log.warning("rule %s matched an exempt target %s: no response", rule.name, finding.target)
                    continue
                if rule.kind == "distinct_rate_limited_ips":
                    last = last_response(conn, rule.name, "global")
                    if (
                        last is not None
                        and last.reverted_at is None
                        and (last.expires_at is None or last.expires_at > now)
                    ):
                        report.skipped_repeats += 1
                        continue
                params: dict[str, Any] = {
                    "count": finding.count,
                    "first_at": finding.first_at.isoformat(),
                    "last_at": finding.last_at.isoformat(),
                    **finding.detail,
                }
                if rule.action == "tighten_global_limit":
                    params["limit"] = max(1, int(global_limit * rule.factor))
                    params["configured"] = global_limit
                record = apply_response(
                    conn,
                    rule=rule.name,
                    action=rule.action,
                    target=finding.target,
                    now=now,
                    duration=rule.duration,
                    params=params,
                )
                report.applied.append(record)
                applied += 1
                shown = mask_wallet(finding.target) if rule.action == "blacklist_wallet" else finding.target
                events.append(
                    SecurityEvent(
                        RESPONSE_APPLIED,
                        rule.severity,
                        finding.target if finding.target.startswith("ip:") else None,
                        f"rule:{rule.name}",
                        metadata={
                            "rule": rule.name,
                            "action": rule.action,
                            "target": shown,
                            "response_id": record.id,
                            "count": finding.count,
                        },
                        timestamp=now,
                    )
                )
                if rule.kind == "distinct_rate_limited_ips":
                    events.append(
                        SecurityEvent(
                            ALERT,
                            "critical",
                            None,
                            f"rule:{rule.name}",
                            metadata={
                                "rule": rule.name,
                                "distinct_ips": finding.count,
                                "window_s": int(rule.window.total_seconds()),
                                "global_limit": params["limit"],
                            },
                            timestamp=now,
                        )
                    )
                    log.error(
                        "ALERT %s: %d distinct IPs rate-limited within %s; global limit tightened to %d/min",
                        rule.name,
                        finding.count,
                        rule.window,
                        params["limit"],
                    )
            write_events(conn, events)
            report.per_rule[rule.name] = applied
    return report


def default_lookback(rules: Sequence[R.Rule]) -> timedelta:
    return max((r.window for r in rules), default=timedelta(minutes=5))


def correlation_job(settings: Any, engine: Engine, now: datetime) -> dict[str, Any]:
    """The `security-correlation` job: rules from SECURITY_RULES_PATH; new IP blocks pushed to Redis."""
    from ticketguard.security.keys import pepper
    from ticketguard.security.lists import publish_ip_blocks_with
    from ticketguard.security.redact import hash_ip

    rules = R.load_rules(settings.security_rules_path)
    exempt = frozenset(hash_ip(ip, pepper(settings)) for ip in settings.security_no_autoblock_ips)
    report = run_correlation(
        engine, rules, now=now, global_limit=settings.rate_limit_global, exempt_targets=exempt
    )
    if any(r.action == "block_ip" for r in report.applied):
        publish_ip_blocks_with(engine, settings)
    return report.counts()
