"""Alert rules as values: the rules file (the guide's `alert_rules.yaml`), its condition grammar, and the
state machine inactive → pending → firing → resolved.

Pure: no database, no clock, no network (import-linter holds this module to that). The file is read with
line numbers (YAML nodes carry their marks), so every mistake is reported as ``FILE:LINE: rule 'name':
field: what is wrong (what is accepted)`` — all mistakes of a file at once, nothing half-loaded.

The condition is ``metric OP number [unit]`` (``fraud_rate > 0.03``, ``p95_latency > 100ms``,
``fraud_rate >= 3%``), read by a tokenizer and a three-token parser: never ``eval``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import yaml

OPERATORS = (">=", "<=", "==", "!=", ">", "<")
SEVERITIES = ("critical", "high", "medium", "low", "info")
NOTIFY_ACTIONS = ("pagerduty", "slack", "email", "webhook")
RESPONSE_ACTIONS = ("block_ip", "tighten_thresholds", "lock_admin")
ACTIONS = NOTIFY_ACTIONS + RESPONSE_ACTIONS
# Options each action accepts (besides `type`), and what kind of value each takes.
ACTION_OPTIONS: dict[str, dict[str, str]] = {
    "pagerduty": {},
    "slack": {},
    "email": {"to": "addresses"},
    "webhook": {"url": "url"},
    "block_ip": {"ttl": "duration", "min_events": "count"},
    "tighten_thresholds": {"ttl": "duration", "step": "step"},
    "lock_admin": {"ttl": "duration", "min_events": "count"},
}
RULE_FIELDS = (
    "name",
    "condition",
    "duration",
    "for",
    "severity",
    "action",
    "actions",
    "labels",
    "annotations",
    "summary",
    "resolve",
    "repeat_interval",
)
REQUIRED_FIELDS = ("name", "condition", "severity")
# 58 characters: the security response of an action is recorded as rule "alert:<name>" (64 at most)
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,57}$")
# The metrics whose events name who to act on: block_ip blocks the addresses behind them, lock_admin locks
# the accounts behind them.
ADDRESS_METRICS = ("failed_logins", "rate_limited_ips", "mfa_failures")
ACCOUNT_METRICS = ("failed_logins", "mfa_failures")
DURATION_PATTERN = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
# A metric's unit → the units a condition may write its number in, and the factor to the metric's unit.
UNIT_FACTORS: dict[str, dict[str, float]] = {
    "ratio": {"": 1.0, "%": 0.01},
    "ms": {"": 1.0, "ms": 1.0, "s": 1000.0},
    "minutes": {"": 1.0, "m": 1.0, "min": 1.0, "h": 60.0, "s": 1 / 60},
    "count": {"": 1.0},
    "score": {"": 1.0},
}

INACTIVE, PENDING, FIRING, RESOLVED = "inactive", "pending", "firing", "resolved"
STATES = (INACTIVE, PENDING, FIRING, RESOLVED)


class RulesError(ValueError):
    """A rules file that cannot be used; ``problems`` lists every mistake, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# ------------------------------------------------------------------------------------------- values
@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    threshold: float  # in the metric's own unit
    text: str  # as written

    def holds(self, value: float) -> bool:
        match self.op:
            case ">":
                return value > self.threshold
            case ">=":
                return value >= self.threshold
            case "<":
                return value < self.threshold
            case "<=":
                return value <= self.threshold
            case "==":
                return value == self.threshold
            case _:
                return value != self.threshold


@dataclass(frozen=True)
class Action:
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def notifies(self) -> bool:
        return self.type in NOTIFY_ACTIONS


@dataclass(frozen=True)
class Rule:
    name: str
    condition: Condition
    duration: timedelta
    severity: str
    actions: tuple[Action, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    resolve: bool = True  # send a resolve notification when it stops firing
    repeat_interval: timedelta | None = None  # re-notify while firing this often (None: once)
    line: int = 0

    @property
    def summary(self) -> str:
        return self.annotations.get("summary", f"{self.name}: {self.condition.text}")


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    source: str

    def get(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        known = ", ".join(r.name for r in self.rules) or "none"
        raise KeyError(f"no rule named {name!r} in {self.source}; rules: {known}")

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.condition.metric for r in self.rules))


# ---------------------------------------------------------------------------------------- durations
def parse_duration(value: Any) -> timedelta:
    """``"10m"``, ``"1h30m"``, ``"2d"``, ``"45s"`` or a number of seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m, 1h or 1h30m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return timedelta(seconds=value)
    text = str(value).strip()
    match = DURATION_PATTERN.match(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"expected a duration like 30s, 5m, 1h or 1h30m, got {text!r}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def format_duration(value: timedelta) -> str:
    total = int(value.total_seconds())
    if total == 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            out += f"{total // size}{unit}"
            total %= size
    return out


# ---------------------------------------------------------------------------------------- condition
_TOKEN = re.compile(
    r"\s*(?:(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>>=|<=|==|!=|>|<)|(?P<pct>%)|(?P<bad>\S))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # only trailing whitespace is left
            break
        kind = match.lastgroup or "bad"
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def parse_condition(text: Any, metric_units: Mapping[str, str]) -> Condition:
    """``metric OP number [unit]`` against the catalogue's metrics (name → unit); ValueError otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("expected 'metric OP number', e.g. 'fraud_rate > 0.03'")
    tokens = _tokens(text)
    for kind, value in tokens:
        if kind == "bad":
            raise ValueError(f"unexpected {value!r} in {text!r}; expected 'metric OP number [unit]'")
    if not tokens or tokens[0][0] != "name":
        raise ValueError(f"{text!r} must start with a metric name; metrics: {', '.join(metric_units)}")
    metric = tokens[0][1]
    if metric not in metric_units:
        hint = difflib.get_close_matches(metric, list(metric_units), n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"unknown metric {metric!r}{did}; metrics: {', '.join(metric_units)}")
    if len(tokens) < 2 or tokens[1][0] != "op":
        raise ValueError(f"{text!r}: expected an operator after {metric!r}, one of {' '.join(OPERATORS)}")
    op = tokens[1][1]
    if len(tokens) < 3 or tokens[2][0] != "number":
        raise ValueError(f"{text!r}: expected a number after {op!r}")
    number = float(tokens[2][1])
    unit = ""
    rest = tokens[3:]
    if rest and rest[0][0] in ("name", "pct") and any(rest[0][1] in f for f in UNIT_FACTORS.values()):
        unit = rest[0][1]
        rest = rest[1:]
    if rest:
        raise ValueError(f"{text!r}: unexpected {rest[0][1]!r} after the number; one comparison per rule")
    kind = metric_units[metric]
    factors = UNIT_FACTORS.get(kind, {"": 1.0})
    if unit not in factors:
        accepted = ", ".join(repr(u) for u in factors if u) or "none"
        raise ValueError(f"unit {unit!r} does not fit {metric} (a {kind}); accepted units: {accepted}")
    return Condition(metric=metric, op=op, threshold=number * factors[unit], text=" ".join(text.split()))


# ------------------------------------------------------------------------------------- file loading
class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, node: yaml.Node | None, rule: str | None, what: str) -> None:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        who = f" rule {rule!r}:" if rule else ""
        self.items.append(f"{self.source}{line}:{who} {what}")


def _scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return loader.construct_object(node, deep=True)


def _pairs(node: yaml.MappingNode, problems: _Problems, rule: str | None) -> list[tuple[str, yaml.Node]]:
    out: list[tuple[str, yaml.Node]] = []
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
        if key in seen:
            problems.add(key_node, rule, f"{key}: given twice")
            continue
        seen.add(key)
        out.append((key, value_node))
    return out


def _string_map(
    loader: yaml.SafeLoader, node: yaml.Node, problems: _Problems, rule: str, field_name: str
) -> dict[str, str]:
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, rule, f"{field_name}: expected a mapping of names to text")
        return {}
    out: dict[str, str] = {}
    for key, value in _pairs(node, problems, rule):
        if not isinstance(value, yaml.ScalarNode):
            problems.add(value, rule, f"{field_name}.{key}: expected text")
            continue
        out[key] = str(_scalar(loader, value))
    return out


def _action(
    loader: yaml.SafeLoader, node: yaml.Node, problems: _Problems, rule: str, where: str
) -> Action | None:
    if isinstance(node, yaml.ScalarNode):
        kind = str(_scalar(loader, node))
        options_node: list[tuple[str, yaml.Node]] = []
    elif isinstance(node, yaml.MappingNode):
        pairs = _pairs(node, problems, rule)
        type_node = next((v for k, v in pairs if k == "type"), None)
        if type_node is None or not isinstance(type_node, yaml.ScalarNode):
            problems.add(node, rule, f"{where}: an action given as a mapping needs 'type: <action>'")
            return None
        kind = str(_scalar(loader, type_node))
        options_node = [(k, v) for k, v in pairs if k != "type"]
    else:
        problems.add(node, rule, f"{where}: expected an action name or a mapping with 'type'")
        return None
    if kind not in ACTIONS:
        hint = difflib.get_close_matches(kind, ACTIONS, n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        problems.add(node, rule, f"{where}: unknown action {kind!r}{did}; accepted: {', '.join(ACTIONS)}")
        return None
    accepted = ACTION_OPTIONS[kind]
    options: dict[str, Any] = {}
    for key, value_node in options_node:
        if key not in accepted:
            ok = ", ".join(accepted) or "none"
            problems.add(value_node, rule, f"{where}: {kind} has no option {key!r}; options: {ok}")
            continue
        value = _scalar(loader, value_node)
        try:
            options[key] = _option(accepted[key], value)
        except ValueError as exc:
            problems.add(value_node, rule, f"{where}.{key}: {exc}")
    return Action(kind, options)


def _option(kind: str, value: Any) -> Any:
    if kind == "duration":
        duration = parse_duration(value)
        if duration <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return duration
    if kind == "count":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"expected a whole number >= 1, got {value!r}")
        return value
    if kind == "step":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 0.5:
            raise ValueError(f"expected a number between 0 and 0.5 (exclusive), got {value!r}")
        return float(value)
    if kind == "addresses":
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(a, str) and re.fullmatch(r"[^@\s]+@[^@\s]+", a) for a in items):
            raise ValueError(f"expected an e-mail address or a list of them, got {value!r}")
        return tuple(items)
    if kind == "url":
        if not isinstance(value, str) or not re.match(r"^https?://\S+$", value):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value
    raise ValueError(f"unsupported option kind {kind}")  # pragma: no cover - ACTION_OPTIONS is closed


def _rule(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    index: int,
    problems: _Problems,
    metric_units: Mapping[str, str],
) -> Rule | None:
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, None, f"alerts[{index}]: expected a mapping with name, condition, duration, ...")
        return None
    before = len(problems.items)
    early = next(
        (
            str(v.value)
            for k, v in node.value
            if getattr(k, "value", None) == "name" and isinstance(v, yaml.ScalarNode)
        ),
        None,
    )
    pairs = dict(_pairs(node, problems, early))
    name_node = pairs.get("name")
    name = str(_scalar(loader, name_node)) if isinstance(name_node, yaml.ScalarNode) else None
    label = name or f"alerts[{index}]"
    if name is None:
        problems.add(node, None, f"alerts[{index}]: name is required")
    elif not NAME_PATTERN.match(name):
        problems.add(name_node, label, "name: 1-58 lower-case letters, digits and _, starting with a letter")
    for key in REQUIRED_FIELDS:
        if key != "name" and key not in pairs:
            problems.add(node, label, f"{key} is required")
    for key, value_node in pairs.items():
        if key not in RULE_FIELDS:
            hint = difflib.get_close_matches(key, RULE_FIELDS, n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.add(value_node, label, f"unknown field {key!r}{did}; fields: {', '.join(RULE_FIELDS)}")
    condition: Condition | None = None
    if "condition" in pairs:
        cnode = pairs["condition"]
        try:
            condition = parse_condition(
                _scalar(loader, cnode) if isinstance(cnode, yaml.ScalarNode) else None, metric_units
            )
        except ValueError as exc:
            problems.add(cnode, label, f"condition: {exc}")
    if "duration" in pairs and "for" in pairs:
        problems.add(pairs["for"], label, "for: give either duration or for (the same thing), not both")
    duration = timedelta(0)
    dnode = pairs.get("duration", pairs.get("for"))
    if dnode is not None:
        try:
            duration = parse_duration(_scalar(loader, dnode) if isinstance(dnode, yaml.ScalarNode) else None)
        except ValueError as exc:
            problems.add(dnode, label, f"duration: {exc}")
    severity = ""
    if "severity" in pairs:
        snode = pairs["severity"]
        severity = str(_scalar(loader, snode)) if isinstance(snode, yaml.ScalarNode) else ""
        if severity not in SEVERITIES:
            problems.add(snode, label, f"severity: got {severity!r}; accepted: {', '.join(SEVERITIES)}")
    actions: list[Action] = []
    if "action" in pairs and "actions" in pairs:
        problems.add(pairs["actions"], label, "actions: give either action or actions, not both")
    elif "action" in pairs:
        found = _action(loader, pairs["action"], problems, label, "action")
        actions = [found] if found else []
    elif "actions" in pairs:
        anode = pairs["actions"]
        if not isinstance(anode, yaml.SequenceNode) or not anode.value:
            problems.add(anode, label, "actions: expected a non-empty list of actions")
        else:
            for i, item in enumerate(anode.value):
                found = _action(loader, item, problems, label, f"actions[{i}]")
                if found:
                    actions.append(found)
            kinds = [a.type for a in actions]
            for kind in set(kinds):
                if kinds.count(kind) > 1:
                    problems.add(anode, label, f"actions: {kind} listed twice")
    else:
        problems.add(node, label, f"action (or actions) is required; accepted: {', '.join(ACTIONS)}")
    if condition is not None:
        for act in actions:
            needs = {"block_ip": ADDRESS_METRICS, "lock_admin": ACCOUNT_METRICS}.get(act.type)
            if needs and condition.metric not in needs:
                problems.add(
                    pairs.get("actions", pairs.get("action")),
                    label,
                    f"{act.type}: needs a metric whose events name whom to act on ({', '.join(needs)}), "
                    f"not {condition.metric}",
                )
    labels = _string_map(loader, pairs["labels"], problems, label, "labels") if "labels" in pairs else {}
    annotations = (
        _string_map(loader, pairs["annotations"], problems, label, "annotations")
        if "annotations" in pairs
        else {}
    )
    if "summary" in pairs:
        snode = pairs["summary"]
        if isinstance(snode, yaml.ScalarNode):
            annotations.setdefault("summary", str(_scalar(loader, snode)))
        else:
            problems.add(snode, label, "summary: expected text")
    resolve = True
    if "resolve" in pairs:
        value = _scalar(loader, pairs["resolve"]) if isinstance(pairs["resolve"], yaml.ScalarNode) else None
        if not isinstance(value, bool):
            problems.add(pairs["resolve"], label, f"resolve: expected true or false, got {value!r}")
        else:
            resolve = value
    repeat: timedelta | None = None
    if "repeat_interval" in pairs:
        rnode = pairs["repeat_interval"]
        try:
            repeat = parse_duration(_scalar(loader, rnode) if isinstance(rnode, yaml.ScalarNode) else None)
            if repeat < timedelta(minutes=1):
                raise ValueError("must be at least 1m (a page every few seconds helps nobody)")
        except ValueError as exc:
            problems.add(rnode, label, f"repeat_interval: {exc}")
    if len(problems.items) > before or condition is None or name is None:
        return None
    return Rule(
        name=name,
        condition=condition,
        duration=duration,
        severity=severity,
        actions=tuple(actions),
        labels=labels,
        annotations=annotations,
        resolve=resolve,
        repeat_interval=repeat,
        line=node.start_mark.line + 1,
    )


def parse_rules(text: str, *, source: str, metric_units: Mapping[str, str]) -> RuleSet:
    """Every rule of a rules file, or RulesError listing every mistake with its line."""
    problems = _Problems(source)
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f":{mark.line + 1}" if mark is not None else ""
            raise RulesError([f"{source}{line}: not valid YAML: {exc.problem or exc}"]) from None
        except yaml.YAMLError as exc:
            raise RulesError([f"{source}: not valid YAML: {exc}"]) from None
        if root is None or not isinstance(root, yaml.MappingNode):
            problems.add(root, None, "expected a mapping with an 'alerts' list at the top")
            raise RulesError(problems.items)
        top = dict(_pairs(root, problems, None))
        for key, value in top.items():
            if key != "alerts":
                problems.add(value, None, f"unknown top-level key {key!r}; accepted: alerts")
        alerts = top.get("alerts")
        if not isinstance(alerts, yaml.SequenceNode):
            problems.add(alerts or root, None, "alerts: expected a list of rules")
            raise RulesError(problems.items)
        rules: list[Rule] = []
        names: dict[str, int] = {}
        for index, node in enumerate(alerts.value):
            rule = _rule(loader, node, index, problems, metric_units)
            if rule is None:
                continue
            if rule.name in names:
                problems.add(node, rule.name, f"name: already used by the rule at line {names[rule.name]}")
                continue
            names[rule.name] = rule.line
            rules.append(rule)
    finally:
        loader.dispose()
    if problems.items:
        raise RulesError(problems.items)
    return RuleSet(tuple(rules), source)


# ------------------------------------------------------------------------------------ state machine
@dataclass(frozen=True)
class RuleState:
    """What is stored per rule between evaluations."""

    state: str = INACTIVE
    since: datetime | None = None  # when the current state began (pending: when the condition first held)
    value: float | None = None
    firing_id: int | None = None  # the history row of the current (or last) firing


@dataclass(frozen=True)
class Transition:
    to: str  # pending | firing | resolved | inactive (a pending condition that stopped holding)
    value: float | None


def step(current: RuleState, rule: Rule, value: float | None, now: datetime) -> Transition | None:
    """The transition one evaluation makes, or None. ``value`` None means no data: the condition does not
    hold (as in Prometheus, an absent series resolves an alert)."""
    holds = value is not None and rule.condition.holds(value)
    state = current.state
    if state in (INACTIVE, RESOLVED):
        if not holds:
            return None
        if rule.duration <= timedelta(0):
            return Transition(FIRING, value)
        return Transition(PENDING, value)
    if state == PENDING:
        if not holds:
            return Transition(INACTIVE, value)
        since = current.since or now
        if now - since >= rule.duration:
            return Transition(FIRING, value)
        return None
    if state == FIRING:
        return None if holds else Transition(RESOLVED, value)
    raise ValueError(f"unknown alert state {state!r}; states: {', '.join(STATES)}")


def repeat_due(rule: Rule, last_notified: datetime | None, now: datetime) -> bool:
    """While firing: is a repeat notification due (``repeat_interval`` since the last one)?"""
    if rule.repeat_interval is None or last_notified is None:
        return False
    return now - last_notified >= rule.repeat_interval


def relevant_metric_units(metrics: Mapping[str, Any]) -> dict[str, str]:
    """name → unit of catalogue-like objects with a ``unit`` attribute (what `parse_rules` needs)."""
    return {name: str(getattr(m, "unit", m)) for name, m in metrics.items()}
