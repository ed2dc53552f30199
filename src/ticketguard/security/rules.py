"""Correlation rules: loaded from YAML, evaluated over plain records. Pure — no database, no clock.

A rule is a kind from a fixed catalogue (so a YAML file cannot inject logic), a threshold, a sliding
window and an action. Evaluation takes the records of the look-back period and returns findings: the
targets whose records reach the threshold within some window of that length.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

KINDS = {
    "failed_logins_per_ip": "block_ip",
    "fraud_decisions_per_wallet_group": "blacklist_wallet",
    "distinct_rate_limited_ips": "tighten_global_limit",
}
DEFAULT_RULES_PATH = Path(__file__).with_name("rules.yaml")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


class RulesError(ValueError):
    """The rules file is unusable; the message names the rule and field."""


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    threshold: int
    window: timedelta
    action: str
    severity: str = "high"
    duration: timedelta | None = None
    decisions: tuple[str, ...] = ("BLOCKED",)
    factor: float = 0.5


@dataclass(frozen=True)
class Finding:
    rule: str
    target: str
    count: int
    first_at: datetime
    last_at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ loading
def parse_duration(value: object, where: str) -> timedelta:
    text = str(value).strip().lower()
    if len(text) >= 2 and text[-1] in _UNITS and text[:-1].isdigit() and int(text[:-1]) > 0:
        return timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])
    raise RulesError(f"{where} must be a positive number with s, m, h or d (e.g. 5m), got {value!r}")


def parse_rules(data: object) -> list[Rule]:
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RulesError("the rules file must be a mapping with a `rules:` list")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(data["rules"]):
        where = f"rules[{index}]"
        if not isinstance(raw, dict):
            raise RulesError(f"{where} must be a mapping")
        name = raw.get("name")
        if not isinstance(name, str) or not name or len(name) > 64:
            raise RulesError(f"{where}.name must be a string of 1-64 characters")
        where = f"rule {name!r}"
        if name in seen:
            raise RulesError(f"{where} is defined twice")
        seen.add(name)
        kind = raw.get("kind")
        if kind not in KINDS:
            raise RulesError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        action = raw.get("action", KINDS[kind])
        allowed_actions = {KINDS[kind], "alert"}
        if action not in allowed_actions:
            raise RulesError(
                f"{where}: action for {kind} must be one of {sorted(allowed_actions)}, got {action!r}"
            )
        threshold = raw.get("threshold")
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
            raise RulesError(f"{where}: threshold must be an integer ≥ 1, got {threshold!r}")
        severity = raw.get("severity", "high")
        if severity not in ("low", "medium", "high", "critical"):
            raise RulesError(f"{where}: severity must be low, medium, high or critical, got {severity!r}")
        factor = raw.get("factor", 0.5)
        if not isinstance(factor, int | float) or not 0 < float(factor) < 1:
            raise RulesError(f"{where}: factor must be a number between 0 and 1 (exclusive), got {factor!r}")
        decisions = raw.get("decisions", ["BLOCKED"])
        valid_decisions = {"BLOCKED", "MANUAL_REVIEW", "REQUIRE_2FA"}
        if not isinstance(decisions, list) or not decisions or not set(decisions) <= valid_decisions:
            raise RulesError(f"{where}: decisions must be a non-empty list of {sorted(valid_decisions)}")
        rules.append(
            Rule(
                name=name,
                kind=kind,
                threshold=threshold,
                window=parse_duration(raw.get("window"), f"{where}: window"),
                action=action,
                severity=severity,
                duration=parse_duration(raw["duration"], f"{where}: duration")
                if raw.get("duration")
                else None,
                decisions=tuple(decisions),
                factor=float(factor),
            )
        )
    return rules


def load_rules(path: Path | None = None) -> list[Rule]:
    source = path or DEFAULT_RULES_PATH
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"SECURITY_RULES_PATH {str(source)!r} cannot be read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{source} is not valid YAML: {exc}") from None
    return parse_rules(data)


# ------------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class EventRecord:
    """A security event as the rules see it: its type, hashed source IP and time."""

    event_type: str
    source_ip: str | None
    timestamp: datetime


@dataclass(frozen=True)
class DecisionRecord:
    """A fraud decision with what links its wallet to others (buyer IP, the seller of a resale)."""

    transaction_id: str
    wallet: str
    decision: str
    timestamp: datetime
    ip: str | None = None
    seller: str | None = None


@dataclass(frozen=True)
class LinkRecord:
    """Any transaction in the window: wallet, its IP, its seller — the edges of the wallet graph."""

    wallet: str
    ip: str | None = None
    seller: str | None = None


def densest_window(times: Sequence[datetime], window: timedelta, threshold: int) -> tuple[int, int] | None:
    """Indices (i, j) of the first run of ≥ threshold sorted times within ``window``, widened to every time
    that still fits, or None. A sliding window: any ``window``-long span counts, not fixed buckets."""
    start = 0
    for end in range(len(times)):
        while times[end] - times[start] > window:
            start += 1
        if end - start + 1 >= threshold:
            last = end
            while last + 1 < len(times) and times[last + 1] - times[start] <= window:
                last += 1
            return start, last
    return None


def failed_logins_per_ip(rule: Rule, events: Iterable[EventRecord]) -> list[Finding]:
    per_ip: dict[str, list[datetime]] = defaultdict(list)
    for event in events:
        if event.event_type in ("auth_failed", "login_failed") and event.source_ip:
            per_ip[event.source_ip].append(event.timestamp)
    findings = []
    for ip, times in sorted(per_ip.items()):
        times.sort()
        hit = densest_window(times, rule.window, rule.threshold)
        if hit is not None:
            i, j = hit
            findings.append(Finding(rule.name, ip, j - i + 1, times[i], times[j]))
    return findings


def distinct_rate_limited_ips(rule: Rule, events: Iterable[EventRecord]) -> list[Finding]:
    stream = sorted(
        (e for e in events if e.event_type == "rate_limited" and e.source_ip), key=lambda e: e.timestamp
    )
    # Sliding window over (time, ip) with a count of distinct IPs inside.
    inside: dict[str, int] = defaultdict(int)
    start = 0
    for event in stream:
        inside[event.source_ip or ""] += 1
        while event.timestamp - stream[start].timestamp > rule.window:
            gone = stream[start].source_ip or ""
            inside[gone] -= 1
            if inside[gone] == 0:
                del inside[gone]
            start += 1
        if len(inside) >= rule.threshold:
            return [
                Finding(
                    rule.name,
                    "global",
                    len(inside),
                    stream[start].timestamp,
                    event.timestamp,
                    {"distinct_ips": len(inside)},
                )
            ]
    return []


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, node: str) -> str:
        self.parent.setdefault(node, node)
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def fraud_decisions_per_wallet_group(
    rule: Rule, decisions: Iterable[DecisionRecord], links: Iterable[LinkRecord] = ()
) -> list[Finding]:
    """Wallets are linked when they share an IP or one sold to the other (in the decisions or any
    transaction of the window). A group with ≥ threshold fraud decisions within the window is a ring;
    each wallet of it with a fraud decision is a finding (the target to blacklist)."""
    frauds = [d for d in decisions if d.decision in rule.decisions]
    if not frauds:
        return []
    uf = _UnionFind()
    edges: list[tuple[str, str | None, str | None]] = [(d.wallet, d.ip, d.seller) for d in frauds]
    edges += [(link.wallet, link.ip, link.seller) for link in links]
    for wallet, ip, seller in edges:
        uf.find("w:" + wallet)
        if ip:
            uf.union("w:" + wallet, "ip:" + ip)
        if seller:
            uf.union("w:" + wallet, "w:" + seller)
    groups: dict[str, list[DecisionRecord]] = defaultdict(list)
    for d in frauds:
        groups[uf.find("w:" + d.wallet)].append(d)
    findings: list[Finding] = []
    for members in groups.values():
        members.sort(key=lambda d: d.timestamp)
        hit = densest_window([d.timestamp for d in members], rule.window, rule.threshold)
        if hit is None:
            continue
        i, j = hit
        ring = members[i : j + 1]
        wallets = sorted({d.wallet for d in ring})
        for wallet in wallets:
            findings.append(
                Finding(
                    rule.name,
                    wallet,
                    len(ring),
                    ring[0].timestamp,
                    ring[-1].timestamp,
                    {"ring_size": len(wallets), "transactions": [d.transaction_id for d in ring][:20]},
                )
            )
    return findings
