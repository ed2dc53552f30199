"""The rules file: the guide's format accepted as written, every kind of mistake refused with its line and
field, the condition grammar, and the state machine."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ticketguard.alerts import rules as R
from ticketguard.alerts.catalogue import METRIC_UNITS
from ticketguard.alerts.service import DEFAULT_RULES_PATH

GUIDE = textwrap.dedent(
    """\
    alerts:
      - name: fraud_rate_spike
        condition: fraud_rate > 0.03
        duration: 10m
        severity: high
        action: pagerduty

      - name: api_latency_high
        condition: p95_latency > 100
        duration: 5m
        severity: medium
        action: slack

      - name: model_drift
        condition: kl_divergence > 0.15
        duration: 1h
        severity: medium
        action: email

      - name: failed_login_attempts
        condition: failed_logins > 5
        duration: 5m
        severity: high
        action: block_ip
    """
)


def parse(text: str) -> R.RuleSet:
    return R.parse_rules(textwrap.dedent(text), source="rules.yaml", metric_units=METRIC_UNITS)


def problems(text: str) -> list[str]:
    with pytest.raises(R.RulesError) as caught:
        parse(text)
    return caught.value.problems


def test_the_guides_file_is_accepted_as_written() -> None:
    ruleset = parse(GUIDE)
    assert [r.name for r in ruleset.rules] == [
        "fraud_rate_spike",
        "api_latency_high",
        "model_drift",
        "failed_login_attempts",
    ]
    spike = ruleset.get("fraud_rate_spike")
    assert spike.condition == R.Condition("fraud_rate", ">", 0.03, "fraud_rate > 0.03")
    assert spike.duration == timedelta(minutes=10)
    assert spike.severity == "high"
    assert [a.type for a in spike.actions] == ["pagerduty"]
    assert spike.line == 2
    assert ruleset.get("model_drift").duration == timedelta(hours=1)
    assert ruleset.get("failed_login_attempts").actions[0].type == "block_ip"


def test_the_shipped_default_holds_the_guides_four_rules_unchanged() -> None:
    shipped = R.parse_rules(DEFAULT_RULES_PATH.read_text(), source="default", metric_units=METRIC_UNITS)
    guide = parse(GUIDE)
    for rule in guide.rules:
        mine = shipped.get(rule.name)
        assert (mine.condition, mine.duration, mine.severity, mine.actions) == (
            rule.condition,
            rule.duration,
            rule.severity,
            rule.actions,
        )
    assert {"degraded_answers", "review_queue_stale"} <= {r.name for r in shipped.rules}


def test_alertmanager_style_fields() -> None:
    rule = parse(
        """\
        alerts:
          - name: surge
            condition: fraud_rate >= 6%
            for: 90s
            severity: critical
            actions:
              - pagerduty
              - type: email
                to: [oncall@example.com]
              - type: tighten_thresholds
                step: 0.1
                ttl: 30m
            labels: {team: risk}
            annotations: {summary: Fraud surge, runbook: https://wiki/x}
            resolve: false
            repeat_interval: 4h
        """
    ).rules[0]
    assert rule.condition.threshold == pytest.approx(0.06)
    assert rule.condition.op == ">="
    assert rule.duration == timedelta(seconds=90)
    assert [a.type for a in rule.actions] == ["pagerduty", "email", "tighten_thresholds"]
    assert rule.actions[1].options == {"to": ("oncall@example.com",)}
    assert rule.actions[2].options == {"step": 0.1, "ttl": timedelta(minutes=30)}
    assert rule.labels == {"team": "risk"}
    assert rule.summary == "Fraud surge"
    assert rule.resolve is False
    assert rule.repeat_interval == timedelta(hours=4)


@pytest.mark.parametrize(
    ("text", "metric", "op", "threshold"),
    [
        ("p95_latency > 0.1s", "p95_latency", ">", 100.0),
        ("p99_latency<=250ms", "p99_latency", "<=", 250.0),
        ("review_queue_age_minutes > 2h", "review_queue_age_minutes", ">", 120.0),
        ("transactions_per_hour < 10", "transactions_per_hour", "<", 10.0),
        ("error_rate != 0", "error_rate", "!=", 0.0),
        ("psi == 1e-1", "psi", "==", 0.1),
    ],
)
def test_condition_grammar(text: str, metric: str, op: str, threshold: float) -> None:
    condition = R.parse_condition(text, METRIC_UNITS)
    assert (condition.metric, condition.op) == (metric, op)
    assert condition.threshold == pytest.approx(threshold)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fraud_rat > 0.03", "unknown metric 'fraud_rat' (did you mean 'fraud_rate'?)"),
        ("fraud_rate => 0.03", "unexpected '='"),
        ("fraud_rate 0.03", "expected an operator after 'fraud_rate'"),
        ("fraud_rate > high", "expected a number after '>'"),
        ("fraud_rate > 0.03 and p95_latency > 1", "unexpected 'and' after the number"),
        ("fraud_rate > 0.03ms", "unit 'ms' does not fit fraud_rate (a ratio); accepted units: '%'"),
        ("__import__('os') > 1", "unexpected '('"),
        ("0.03 < fraud_rate", "must start with a metric name"),
    ],
)
def test_condition_mistakes_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        R.parse_condition(text, METRIC_UNITS)
    assert message in str(caught.value)


RULE = """\
alerts:
  - name: ok_rule
    condition: fraud_rate > 0.03
    duration: 10m
    severity: high
    action: pagerduty
"""


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ("fraud_rate > 0.03", "fraud_rate >> 0.03", "rules.yaml:3: rule 'ok_rule': condition:"),
        (
            "fraud_rate > 0.03",
            "latency > 3",
            "rules.yaml:3: rule 'ok_rule': condition: unknown metric 'latency'",
        ),
        ("10m", "ten minutes", "rules.yaml:4: rule 'ok_rule': duration: expected a duration like 30s"),
        (
            "severity: high",
            "severity: urgent",
            "rules.yaml:5: rule 'ok_rule': severity: got 'urgent'; accepted",
        ),
        (
            "action: pagerduty",
            "action: pager",
            "rules.yaml:6: rule 'ok_rule': action: unknown action 'pager'",
        ),
        ("    severity: high\n", "", "rules.yaml:2: rule 'ok_rule': severity is required"),
        ("    action: pagerduty\n", "", "rules.yaml:2: rule 'ok_rule': action (or actions) is required"),
        ("name: ok_rule", "name: Bad-Name", "rules.yaml:2: rule 'Bad-Name': name: 1-58 lower-case"),
        (
            "    duration: 10m\n",
            "    duration: 10m\n    durration: 5m\n",
            "unknown field 'durration' (did you mean",
        ),
        (
            "    duration: 10m\n",
            "    duration: 10m\n    duration: 5m\n",
            "rules.yaml:5: rule 'ok_rule': duration: given twice",
        ),
        ("    duration: 10m\n", "    duration: 10m\n    resolve: maybe\n", "resolve: expected true or false"),
        (
            "    duration: 10m\n",
            "    duration: 10m\n    repeat_interval: 5s\n",
            "repeat_interval: must be at least 1m",
        ),
        ("    duration: 10m\n", "    duration: 10m\n    labels: [a]\n", "labels: expected a mapping"),
        (
            "action: pagerduty",
            "action: block_ip",
            "block_ip: needs a metric whose events name whom to act on",
        ),
        (
            "action: pagerduty",
            "actions: [{type: block_ip, ttl: forever}]",
            "actions[0].ttl: expected a duration",
        ),
        (
            "action: pagerduty",
            "actions: [{type: email, to: nobody}]",
            "actions[0].to: expected an e-mail address",
        ),
        ("action: pagerduty", "actions: [{type: slack, channel: x}]", "slack has no option 'channel'"),
        ("action: pagerduty", "actions: []", "actions: expected a non-empty list"),
        ("action: pagerduty", "actions: [slack, slack]", "actions: slack listed twice"),
        ("    duration: 10m\n", "    duration: 10m\n    for: 5m\n", "give either duration or for"),
    ],
)
def test_each_mistake_is_refused_with_line_rule_and_field(replace: str, by: str, expected: str) -> None:
    assert replace in RULE
    found = problems(RULE.replace(replace, by, 1))
    assert any(expected in p for p in found), found


def test_file_level_mistakes() -> None:
    assert problems("alerts: [\n")[0].startswith("rules.yaml:2: not valid YAML")
    assert problems("rules: []\n") == [
        "rules.yaml:1: unknown top-level key 'rules'; accepted: alerts",
        "rules.yaml:1: alerts: expected a list of rules",
    ]
    assert problems("- a\n") == ["rules.yaml:1: expected a mapping with an 'alerts' list at the top"]
    twice = problems(RULE + RULE.split("\n", 1)[1])
    assert twice == ["rules.yaml:7: rule 'ok_rule': name: already used by the rule at line 2"]
    assert problems("alerts:\n  - just a string\n") == [
        "rules.yaml:2: alerts[0]: expected a mapping with name, condition, duration, ..."
    ]


def test_every_mistake_of_a_file_is_reported_at_once() -> None:
    bad = RULE.replace("10m", "soon").replace("high", "urgent")
    found = problems(bad)
    assert len(found) == 2
    assert [p.split(":")[1] for p in found] == ["4", "5"]


# ----------------------------------------------------------------------------------------- state machine
T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _rule(duration: str = "10m") -> R.Rule:
    return parse(RULE.replace("10m", duration)).rules[0]


def test_fires_only_after_the_condition_held_for_the_whole_duration() -> None:
    rule = _rule("10m")
    state = R.RuleState()
    t = R.step(state, rule, 0.05, T0)
    assert t == R.Transition(R.PENDING, 0.05)
    pending = R.RuleState(R.PENDING, T0, 0.05)
    assert R.step(pending, rule, 0.05, T0 + timedelta(minutes=9, seconds=59)) is None
    assert R.step(pending, rule, 0.05, T0 + timedelta(minutes=10)) == R.Transition(R.FIRING, 0.05)
    # a dip while pending starts over
    assert R.step(pending, rule, 0.01, T0 + timedelta(minutes=5)) == R.Transition(R.INACTIVE, 0.01)
    firing = R.RuleState(R.FIRING, T0, 0.05, firing_id=7)
    assert R.step(firing, rule, 0.04, T0 + timedelta(hours=1)) is None
    assert R.step(firing, rule, 0.03, T0 + timedelta(hours=1)) == R.Transition(R.RESOLVED, 0.03)
    # no data resolves, as an absent series does in Prometheus
    assert R.step(firing, rule, None, T0) == R.Transition(R.RESOLVED, None)
    assert R.step(R.RuleState(R.RESOLVED, T0), rule, 0.05, T0) == R.Transition(R.PENDING, 0.05)


def test_a_zero_duration_fires_at_once_and_no_data_never_fires() -> None:
    rule = _rule("0s")
    assert R.step(R.RuleState(), rule, 0.05, T0) == R.Transition(R.FIRING, 0.05)
    assert R.step(R.RuleState(), rule, None, T0) is None


def test_repeat_due() -> None:
    rule = parse(RULE.replace("    duration: 10m\n", "    duration: 10m\n    repeat_interval: 1h\n")).rules[0]
    assert not R.repeat_due(rule, T0, T0 + timedelta(minutes=59))
    assert R.repeat_due(rule, T0, T0 + timedelta(hours=1))
    assert not R.repeat_due(_rule(), T0, T0 + timedelta(days=9))


def test_check_file_reads_a_missing_file_as_a_clear_error(tmp_path: Path) -> None:
    from ticketguard.alerts.service import load_rules_file

    with pytest.raises(R.RulesError) as caught:
        load_rules_file(tmp_path / "nope.yaml")
    assert "cannot be read" in str(caught.value)
