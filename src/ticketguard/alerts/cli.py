"""`ticketguard alerts …`: the rules, their state and history, silences, a test notification, a file check
and the Prometheus export. The worker's `evaluate-alerts` job evaluates; `ticketguard jobs run
evaluate-alerts` evaluates once by hand."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ticketguard.alerts.rules import RulesError, RuleSet, format_duration, parse_duration

if TYPE_CHECKING:
    from ticketguard.config import Settings

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

alerts_app = typer.Typer(
    help="Alert rules: state, history, silences, tests (docs/alerts.md).", no_args_is_help=True
)


def _rules_or_exit(settings: Settings) -> RuleSet:
    """The rules in force; a broken rules file exits 2 with its mistakes."""
    from ticketguard.alerts.service import load_rules

    try:
        return load_rules(settings)
    except RulesError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(code=2) from None


def _settings_and_rules():  # type: ignore[no-untyped-def]
    from ticketguard.cli import ready_settings
    from ticketguard.jobs.runtime import job_engine

    settings = ready_settings()
    ruleset = _rules_or_exit(settings)
    return settings, ruleset, job_engine(settings)


@alerts_app.command("check")
def check_command(path: Path = typer.Argument(..., help="Rules file to validate.")) -> None:
    """Validate a rules file without running anything; every mistake with its line."""
    from ticketguard.alerts.service import load_rules_file

    try:
        ruleset = load_rules_file(path)
    except RulesError as exc:
        for problem in exc.problems:
            console.print(f"[red]{escape(problem)}[/red]")
        raise typer.Exit(code=1) from None
    out.print(f"{path}: {len(ruleset.rules)} rules OK")
    for rule in ruleset.rules:
        actions = ", ".join(a.type for a in rule.actions)
        out.print(f"  {rule.name}: {rule.condition.text} for {format_duration(rule.duration)} → {actions}")


@alerts_app.command("list")
def list_command() -> None:
    """The rules in force (ALERT_RULES_PATH or the packaged default) and the metric catalogue."""
    from ticketguard.alerts.catalogue import METRICS
    from ticketguard.alerts.service import rules_path
    from ticketguard.cli import get_settings

    settings = get_settings()
    ruleset = _rules_or_exit(settings)
    table = Table(title=f"alert rules ({rules_path(settings)})")
    for column in ("rule", "condition", "for", "severity", "actions", "repeat", "resolve"):
        table.add_column(column)
    for r in ruleset.rules:
        table.add_row(
            r.name,
            r.condition.text,
            format_duration(r.duration),
            r.severity,
            ", ".join(a.type for a in r.actions),
            format_duration(r.repeat_interval) if r.repeat_interval else "-",
            "yes" if r.resolve else "no",
        )
    out.print(table)
    metrics = Table(title="metrics")
    for column in ("metric", "unit", "window", "source"):
        metrics.add_column(column)
    for m in METRICS.values():
        metrics.add_row(m.name, m.unit, m.window, m.source)
    out.print(metrics)


@alerts_app.command("status")
def status_command(
    evaluate: bool = typer.Option(True, help="Read the metrics now (read-only) to show current values."),
) -> None:
    """Each rule's state, the metric now, silences, and notifications that failed."""
    from ticketguard.alerts.service import (
        active_silences,
        metric_context,
        notification_failures,
        read_metrics,
        states,
    )

    settings, ruleset, engine = _settings_and_rules()
    now = datetime.now(UTC)
    try:
        stored = states(engine)
        quiet = active_silences(engine, now)
        values = read_metrics(engine, ruleset.metrics, metric_context(settings, now)) if evaluate else {}
        failures = notification_failures(engine)
    finally:
        engine.dispose()
    table = Table(title="alerts")
    for column in ("rule", "state", "since (UTC)", "metric now", "condition", "silenced until"):
        table.add_column(column)
    for rule in ruleset.rules:
        row = stored.get(rule.name, {})
        state = row.get("state", "inactive")
        colour = {"firing": "red", "pending": "yellow"}.get(state, "green")
        since = row.get("since")
        value = values.get(rule.condition.metric)
        shown = "-" if value is None else (f"{value.value:.4g}" if value.value is not None else "no data")
        detail = f" ({value.detail})" if value is not None and value.detail else ""
        until = quiet.get(rule.name)
        table.add_row(
            rule.name,
            f"[{colour}]{state}[/{colour}]",
            f"{since:%Y-%m-%d %H:%M:%S}" if since else "-",
            escape(shown + detail),
            rule.condition.text,
            f"{until:%Y-%m-%d %H:%M:%S}" if until else "-",
        )
    out.print(table)
    if failures:
        ftable = Table(title="notifications that failed (ticketguard outbox retry ID sends a dead one again)")
        for column in ("id", "channel", "status", "tries", "error"):
            ftable.add_column(column)
        for f in failures:
            ftable.add_row(
                str(f["id"]), f["channel"], f["status"], str(f["attempts"]), escape(f["last_error"])
            )
        out.print(ftable)


@alerts_app.command("history")
def history_command(
    rule: str | None = typer.Argument(None, help="Only this rule."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
) -> None:
    """Transitions (pending, firing, resolved, …), newest first, with what each firing did."""
    from ticketguard.alerts.service import history

    _, _, engine = _settings_and_rules()
    try:
        rows = history(engine, rule, limit)
    finally:
        engine.dispose()
    table = Table(title="alert history")
    for column in ("at (UTC)", "rule", "transition", "value", "firing", "details"):
        table.add_column(column)
    for r in rows:
        details = r["details"] or {}
        text = details.get("detail", "")
        if details.get("actions"):
            text += f"; actions: {details['actions']}"
        table.add_row(
            f"{r['at']:%Y-%m-%d %H:%M:%S}",
            r["rule"],
            r["transition"],
            "-" if r["value"] is None else f"{r['value']:.4g}",
            str(r["firing_id"] or "-"),
            escape(text),
        )
    out.print(table)


@alerts_app.command("silence")
def silence_command(
    rule: str = typer.Argument(..., help="Rule to silence."),
    for_: str = typer.Option(..., "--for", help="How long, e.g. 30m, 1h, 2h30m."),
    reason: str | None = typer.Option(None, "--reason"),
    actor: str | None = typer.Option(None, "--actor", help="Who silences (default: the OS user)."),
) -> None:
    """No notifications from RULE for a while (state and actions go on; a firing still open when the
    silence ends is notified then)."""
    from ticketguard.alerts.service import add_silence

    try:
        duration = parse_duration(for_)
    except ValueError as exc:
        console.print(f"[red]--for: {escape(str(exc))}[/red]")
        raise typer.Exit(code=2) from None
    if duration.total_seconds() <= 0:
        console.print("[red]--for: must be longer than 0s[/red]")
        raise typer.Exit(code=2)
    _, ruleset, engine = _settings_and_rules()
    try:
        ruleset.get(rule)
    except KeyError as exc:
        console.print(f"[red]{escape(str(exc.args[0]))}[/red]")
        raise typer.Exit(code=2) from None
    try:
        ends = add_silence(
            engine,
            rule,
            duration=duration,
            actor=actor or getpass.getuser(),
            reason=reason,
            now=datetime.now(UTC),
        )
    finally:
        engine.dispose()
    out.print(f"{rule} silenced until {ends:%Y-%m-%d %H:%M:%S} UTC")


@alerts_app.command("test")
def send_test_command(
    rule: str = typer.Argument(..., help="Rule whose notifying actions get a test message."),
) -> None:
    """Queue a synthetic notification through RULE's notifiers (sent by the worker's delivery pass, or now
    with `ticketguard jobs run deliver-outbox`). No state changes, no actions."""
    from ticketguard.alerts.service import send_test

    settings, ruleset, engine = _settings_and_rules()
    try:
        try:
            found = ruleset.get(rule)
        except KeyError as exc:
            console.print(f"[red]{escape(str(exc.args[0]))}[/red]")
            raise typer.Exit(code=2) from None
        queued = send_test(engine, settings, found, now=datetime.now(UTC))
    finally:
        engine.dispose()
    if not queued:
        console.print(f"[yellow]{rule} has no notifying action (pagerduty, slack, email, webhook)[/yellow]")
        raise typer.Exit(code=1)
    out.print(f"{queued} test notification(s) queued for {rule}; see `ticketguard outbox status`")


@alerts_app.command("export")
def export_command(
    prometheus: bool = typer.Option(False, "--prometheus", help="Prometheus rules + Grafana dashboard."),
    out_dir: Path = typer.Option(Path("deploy/prometheus"), "--out", help="Directory to write into."),
) -> None:
    """Write Prometheus alerting rules for the API's own /metrics and a Grafana dashboard for them."""
    if not prometheus:
        console.print("[red]say what to export: --prometheus[/red]")
        raise typer.Exit(code=2)
    from ticketguard.alerts.export import write_prometheus

    written = write_prometheus(out_dir)
    for path in written:
        out.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
