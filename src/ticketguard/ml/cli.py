"""`ticketguard train | evaluate | models … | features refresh-graph`: thin shells over ml.service."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True, soft_wrap=True)
out = Console()

EXIT_REFUSED = 1
EXIT_USAGE = 2

models_app = typer.Typer(help="Model registry: list, show, promote, roll back.", no_args_is_help=True)
features_app = typer.Typer(help="Feature jobs.", no_args_is_help=True)


@contextmanager
def _progress() -> Iterator[Callable[[str, float], None]]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("starting", total=1.0)
        yield lambda message, fraction: bar.update(
            task, completed=min(max(fraction, 0.0), 1.0), description=message
        )


def _settings_and_engine(require_db: bool = True) -> tuple[Any, Any]:
    from ticketguard.bootstrap import database_engine
    from ticketguard.cli import get_settings
    from ticketguard.kit import migrate

    settings = get_settings()
    if require_db and not migrate.is_up_to_date(settings.resolved_database_url):
        console.print("[red]the database is not migrated:[/red] run `ticketguard db upgrade` first")
        raise typer.Exit(EXIT_USAGE)
    return settings, database_engine(settings, batch=True)


def _parse_day(value: str | None, option: str) -> date | None:
    """A UTC calendar day given as YYYY-MM-DD (the split's days run 00:00–24:00 UTC)."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{option} must be a UTC date like 2026-04-01, got {value!r}") from None


TEST_FROM_OPTION = typer.Option(
    None,
    "--test-from",
    metavar="YYYY-MM-DD",
    help="First test day (UTC, inclusive). Default: the last TRAIN_TEST_DAYS whole days of the data.",
)
TEST_TO_OPTION = typer.Option(
    None,
    "--test-to",
    metavar="YYYY-MM-DD",
    help="Last test day (UTC, inclusive). Default: the last transaction's day.",
)


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{option} must be an ISO date or time like 2026-04-01, got {value!r}"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class FileOptions:
    """How `--data FILE` is read: the import's options (issue 13), with the import's defaults."""

    timezone: str | None = None
    label_delay_days: float = 7.0
    opaque_ids: bool = False
    id_namespace: str = "ticketguard"

    def given(self) -> list[str]:
        """The options set away from their defaults (refused without --data)."""
        names = []
        if self.timezone is not None:
            names.append("--timezone")
        if self.label_delay_days != FileOptions.label_delay_days:
            names.append("--label-delay-days")
        if self.opaque_ids:
            names.append("--opaque-ids")
        return names

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "label_delay": timedelta(days=self.label_delay_days),
            "opaque_ids": self.opaque_ids,
            "id_namespace": self.id_namespace,
        }


def _load_history(
    settings: Any,
    data: Path | None,
    map_items: list[str],
    mapping_file: Path | None,
    events: Path | None,
    progress: Callable[[str, float], None],
    file_options: FileOptions | None = None,
) -> tuple[Any, Any, str]:
    from ticketguard.ingest.errors import ImportValidationError
    from ticketguard.ingest.mapping import load_mapping_file, parse_map_options
    from ticketguard.ml.dataset import history_from_database, history_from_file

    file_options = file_options or FileOptions()
    if data is None:
        if map_items or mapping_file or events or file_options.given():
            given = ["--map"] if map_items else []
            given += ["--mapping"] if mapping_file else []
            given += ["--events"] if events else []
            raise typer.BadParameter(
                f"{', '.join(given + file_options.given())} only apply to a file: add --data FILE "
                "(the database's history was checked when it was imported)"
            )
        progress("reading the database", 0.0)
        history, blacklist = history_from_database(settings)
        return history, blacklist, "database"
    try:
        mapping = load_mapping_file(mapping_file) if mapping_file else {}
        mapping.update(parse_map_options(map_items))
        notes: list[str] = []
        history = history_from_file(
            data,
            mapping or None,
            events=events,
            progress=lambda s, f: progress(s, 0.0),
            notes=notes,
            options=file_options.as_kwargs(),
        )
        for note in notes:
            console.print(f"[yellow]note:[/yellow] {note}")
    except ImportValidationError as exc:
        console.print(f"[red]{exc.render()}[/red]")
        raise typer.Exit(EXIT_REFUSED) from None
    return history, None, f"file {data.name}"


MAP_OPTION = typer.Option([], "--map", metavar="THEIRS=OURS", help="Rename a column of --data, repeatable.")
# The import's reading options, for --data (issue 13): same names, same meaning as `ticketguard import`.
TIMEZONE_OPTION = typer.Option(
    None,
    "--timezone",
    help="With --data: IANA zone for timestamps written without an offset (as `ticketguard import`).",
)
LABEL_DELAY_OPTION = typer.Option(
    7.0,
    "--label-delay-days",
    "--label-delay",
    min=0,
    show_default=True,
    help="With --data: rows without labelled_at get their label this many days after the transaction.",
)
OPAQUE_IDS_OPTION = typer.Option(
    False,
    "--opaque-ids",
    help="With --data: map ids that are not wallet addresses (customer ids) as `import --opaque-ids`.",
)
ID_NAMESPACE_OPTION = typer.Option(
    "ticketguard",
    "--id-namespace",
    envvar="TICKETGUARD_ID_NAMESPACE",
    show_default=True,
    help="With --opaque-ids: the namespace (HMAC key) the import used.",
)


def train_command(
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Also write the model here: .ubj or .json (XGBoost format) + .metadata.json.",
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Train on a labelled CSV/Parquet file instead of the database (same format as import).",
    ),
    map_items: list[str] = MAP_OPTION,
    mapping_file: Path | None = typer.Option(None, "--mapping", help="YAML `their_column: our_column` file."),
    events: Path | None = typer.Option(None, "--events", help="Events file for --data (see docs/import.md)."),
    timezone: str | None = TIMEZONE_OPTION,
    label_delay_days: float = LABEL_DELAY_OPTION,
    opaque_ids: bool = OPAQUE_IDS_OPTION,
    id_namespace: str = ID_NAMESPACE_OPTION,
    test_from: str | None = TEST_FROM_OPTION,
    test_to: str | None = TEST_TO_OPTION,
    version: str | None = typer.Option(None, help="Model version (default fraud-YYYYMMDD-HHMMSS)."),
    promote: bool = typer.Option(False, "--promote", help="Make the new model live right away."),
    auto_deploy: bool = typer.Option(
        False,
        "--auto-deploy",
        help="Promote only if it beats the live model on the same holdout (database data).",
    ),
) -> None:
    """Train a fraud model on a time-ordered split, register it, and print its test metrics."""
    from ticketguard.ml.dataset import DatasetError
    from ticketguard.ml.registry import RegistryError
    from ticketguard.ml.service import registry_for, train_model

    if output is not None and output.suffix.lower() not in (".ubj", ".json"):
        console.print(
            f"[red]--output {output}: models are saved as XGBoost UBJ (.ubj) or JSON (.json), never pickled "
            "(a .pkl runs code when loaded)[/red]"
        )
        raise typer.Exit(EXIT_REFUSED)
    settings, engine = _settings_and_engine()
    try:
        first_test_day, last_test_day = _parse_day(test_from, "--test-from"), _parse_day(test_to, "--test-to")
        if auto_deploy:
            if data is not None:
                raise typer.BadParameter("--auto-deploy retrains on the database; drop --data")
            if test_from or test_to:
                raise typer.BadParameter("--auto-deploy uses the default split; drop --test-from/--test-to")
            from ticketguard.ml.jobs import retrain

            with _progress() as progress:
                result = retrain(settings, auto_deploy=True, progress=progress)
            out.print_json(json.dumps(result, default=str))
            return
        with _progress() as progress:
            history, blacklist, source = _load_history(
                settings,
                data,
                map_items,
                mapping_file,
                events,
                progress,
                FileOptions(timezone, label_delay_days, opaque_ids, id_namespace),
            )
            run = train_model(
                settings,
                history,
                blacklist=blacklist,
                source=source,
                version=version,
                output=output,
                register_with=engine,
                progress=progress,
                test_from=first_test_day,
                test_to=last_test_day,
            )
        if promote:
            with engine.begin() as conn:
                registry_for(settings).promote(conn, run.card.version, actor="cli", reason="train --promote")
    except (DatasetError, RegistryError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_REFUSED) from None
    finally:
        engine.dispose()
    card = run.card
    table = Table(title=f"model {card.version} ({source})")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("training rows (fraud)", f"{card.n_rows:,} ({card.n_fraud:,})")
    table.add_row("scale_pos_weight (by val AUC-PR)", f"{card.params['params']['scale_pos_weight']:g}")
    table.add_row("trees (early stopping)", str(card.params["best_iteration"] + 1))
    test = card.metrics["test"]
    table.add_row("test rows (fraud)", f"{card.metrics['test_rows']:,} ({card.metrics['test_fraud']:,})")
    for name in ("auc_roc", "auc_pr", "f1", "detection_at_fpr_2pct", "precision_at_90_recall"):
        table.add_row(f"test {name}", f"{test[name]:.4f}")
    table.add_row("sha256", card.sha256[:16] + "…")
    table.add_row("artifact", str(settings.resolved_model_dir / card.artifact_uri))
    if run.exported:
        table.add_row("exported", f"{run.exported[0]} (+ {run.exported[1].name})")
    table.add_row("live", "yes" if promote else "no (ticketguard models promote " + card.version + ")")
    out.print(table)
    out.print(f"next: ticketguard evaluate --model {card.version}")


def evaluate_command(
    model: str = typer.Option(
        ..., "--model", "-m", help="Registered version, or a .ubj/.json file with metadata."
    ),
    data: Path | None = typer.Option(None, "--data", help="Labelled CSV/Parquet instead of the database."),
    map_items: list[str] = MAP_OPTION,
    mapping_file: Path | None = typer.Option(None, "--mapping", help="YAML `their_column: our_column` file."),
    events: Path | None = typer.Option(None, "--events", help="Events file for --data."),
    timezone: str | None = TIMEZONE_OPTION,
    label_delay_days: float = LABEL_DELAY_OPTION,
    opaque_ids: bool = OPAQUE_IDS_OPTION,
    id_namespace: str = ID_NAMESPACE_OPTION,
    since: str | None = typer.Option(
        None, help="Evaluate from this UTC time (default: the model's test days)."
    ),
    until: str | None = typer.Option(None, help="... until this UTC time, exclusive."),
    test_from: str | None = typer.Option(
        None, "--test-from", metavar="YYYY-MM-DD", help="Evaluate from this UTC day (inclusive)."
    ),
    test_to: str | None = typer.Option(
        None, "--test-to", metavar="YYYY-MM-DD", help="... to this UTC day (inclusive)."
    ),
    report_dir: Path | None = typer.Option(None, "--report-dir", help="Default REPORT_DIR/<version>."),
    top_k: int = typer.Option(
        100,
        "--top-k",
        min=1,
        show_default=True,
        help="k of the wallet precision@k per day (the handbook's card precision top-k, wallets as cards).",
    ),
) -> None:
    """Evaluate a model: metrics with 95 % intervals, thresholds, top-k review precision, patterns, plots."""
    from ticketguard.features.specs import FEATURE_NAMES
    from ticketguard.ml.dataset import DatasetError, feature_params, labelled_features
    from ticketguard.ml.registry import RegistryError, read_model_file
    from ticketguard.ml.service import evaluate_model, registry_for

    first_day, last_day = _parse_day(test_from, "--test-from"), _parse_day(test_to, "--test-to")
    if (first_day or last_day) and (since or until):
        raise typer.BadParameter("give the window as --since/--until (times) or --test-from/--test-to (days)")
    if first_day and last_day and first_day > last_day:
        raise typer.BadParameter(f"--test-from {first_day} is after --test-to {last_day}")
    start = _parse_time(since, "--since") or (
        datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC) if first_day else None
    )
    end = _parse_time(until, "--until") or (
        datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC) + timedelta(days=1)
        if last_day
        else None
    )
    settings, engine = _settings_and_engine()
    try:
        path = Path(model)
        if path.suffix.lower() in (".ubj", ".json", ".pkl"):
            if path.suffix.lower() == ".pkl":
                raise RegistryError(
                    f"{path}: pickled models are refused; models are XGBoost .ubj/.json files"
                )
            booster, card = read_model_file(path, FEATURE_NAMES, nthread=settings.train_nthread)
        else:
            with engine.connect() as conn:
                booster, card = registry_for(settings).load(
                    conn, model, FEATURE_NAMES, nthread=settings.train_nthread
                )
        with _progress() as progress:
            history, blacklist, source = _load_history(
                settings,
                data,
                map_items,
                mapping_file,
                events,
                progress,
                FileOptions(timezone, label_delay_days, opaque_ids, id_namespace),
            )
            progress("features", 0.05)
            labelled = labelled_features(history, feature_params(settings), blacklist=blacklist)
            target = report_dir or settings.resolved_report_dir / card.version
            numbers, paths = evaluate_model(
                settings,
                booster,
                card,
                labelled,
                since=start,
                until=end,
                out_dir=target,
                context={"data": source},
                progress=progress,
                precision_k=top_k,
            )
    except (DatasetError, RegistryError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_REFUSED) from None
    finally:
        engine.dispose()
    table = Table(
        title=f"model {card.version} on {numbers['rows']:,} transactions ({numbers['fraud']:,} fraud)"
    )
    table.add_column("metric")
    table.add_column("value [95 % CI]", justify="right")
    table.add_column("target", justify="right")
    for name, entry in numbers["metrics"].items():
        target = numbers["targets"].get(name)
        mark = (
            "" if target is None else (f"{target['target']} ✓" if target["met"] else f"{target['target']} ✗")
        )
        table.add_row(name, f"{entry['value']:.4f} [{entry['ci95'][0]:.4f}, {entry['ci95'][1]:.4f}]", mark)
    k = numbers["top_k_per_day"]
    table.add_row(f"top-{k['k']} wallets/day precision", f"{k['precision_mean']:.4f}", "")
    w = numbers["wallet_precision_at_k"]
    table.add_row(f"wallet precision@{w['k']} per day", f"{w['mean']:.4f}", "")
    for name, entry in numbers["decision_thresholds"].items():
        table.add_row(
            f"{name} (> {entry['threshold']:.2f})",
            f"detect {entry['detection_rate']:.4f}, FPR {entry['false_positive_rate']:.4f}",
            "",
        )
    out.print(table)
    out.print(f"report: {paths['markdown']}  (json: {paths['json']}, per-row scores: {paths['row_scores']})")


# ------------------------------------------------------------------------------------------ models
def _card_row(card: Any, live: str | None) -> list[str]:
    test = card.metrics.get("test", {})
    return [
        card.version,
        "live" if card.version == live else "",
        card.created_at.strftime("%Y-%m-%d %H:%M"),
        f"{card.n_rows:,}",
        f"{test.get('auc_roc', float('nan')):.4f}",
        f"{test.get('auc_pr', float('nan')):.4f}",
        card.sha256[:12],
    ]


@models_app.command("list")
def models_list() -> None:
    """Registered models, oldest first; the live one marked."""
    from ticketguard.ml.service import registry_for

    settings, engine = _settings_and_engine()
    try:
        with engine.connect() as conn:
            registry = registry_for(settings)
            cards, live = registry.list_models(conn), registry.live_version(conn)
    finally:
        engine.dispose()
    table = Table(title="models")
    for column in ("version", "live", "created (UTC)", "train rows", "test AUC-ROC", "test AUC-PR", "sha256"):
        table.add_column(column)
    for card in cards:
        table.add_row(*_card_row(card, live))
    out.print(table)
    if not cards:
        out.print("no model registered yet: ticketguard train")


@models_app.command("show")
def models_show(version: str = typer.Argument(..., help="Model version.")) -> None:
    """Everything the registry holds about one model, as JSON, plus its deployments."""
    from ticketguard.ml.registry import RegistryError
    from ticketguard.ml.service import registry_for

    settings, engine = _settings_and_engine()
    try:
        with engine.connect() as conn:
            registry = registry_for(settings)
            card = registry.get(conn, version)
            deployments = [d for d in registry.deployments(conn) if d.model_version == version]
            live = registry.live_version(conn)
    except RegistryError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_REFUSED) from None
    finally:
        engine.dispose()
    payload = {
        **card.to_json(),
        "live": live == version,
        "deployments": [
            {"action": d.action, "at": d.deployed_at.isoformat(), "actor": d.actor, "reason": d.reason}
            for d in deployments
        ],
    }
    out.print_json(json.dumps(payload, default=str))


@models_app.command("promote")
def models_promote(
    version: str = typer.Argument(..., help="Model version to make live."),
    reason: str | None = typer.Option(None, help="Why (kept in model_deployments)."),
    actor: str = typer.Option("cli", help="Who (kept in model_deployments)."),
) -> None:
    """Make VERSION the live model (the scoring API picks it up on its next refresh)."""
    from ticketguard.features.specs import FEATURE_NAMES
    from ticketguard.ml.registry import RegistryError
    from ticketguard.ml.service import registry_for

    settings, engine = _settings_and_engine()
    try:
        with engine.begin() as conn:
            registry = registry_for(settings)
            registry.load(conn, version, FEATURE_NAMES)  # refuses a corrupted or incompatible model
            previous = registry.live_version(conn)
            registry.promote(conn, version, actor=actor, reason=reason)
    except RegistryError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_REFUSED) from None
    finally:
        engine.dispose()
    out.print(f"live: {version} (was {previous or 'none'})")


@models_app.command("rollback")
def models_rollback(
    reason: str | None = typer.Option(None, help="Why (kept in model_deployments)."),
    actor: str = typer.Option("cli", help="Who (kept in model_deployments)."),
) -> None:
    """Make the previously live model live again."""
    from ticketguard.ml.registry import RegistryError
    from ticketguard.ml.service import registry_for

    settings, engine = _settings_and_engine()
    try:
        with engine.begin() as conn:
            registry = registry_for(settings)
            current = registry.live_version(conn)
            deployment = registry.rollback(conn, actor=actor, reason=reason)
    except RegistryError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_REFUSED) from None
    finally:
        engine.dispose()
    out.print(f"live: {deployment.model_version} (rolled back from {current})")


@features_app.command("refresh-graph")
def features_refresh_graph(
    day: str | None = typer.Option(None, help="UTC day of the snapshot (default: today)."),
) -> None:
    """Compute the wallet-graph PageRank snapshot of a day (online social_graph_centrality reads it)."""
    from ticketguard.features.service import refresh_graph_snapshot
    from ticketguard.ml.dataset import feature_params

    settings, engine = _settings_and_engine()
    try:
        result = refresh_graph_snapshot(
            engine,
            feature_params(settings),
            day=_parse_time(day, "--day"),
            keep_days=settings.graph_snapshot_keep_days,
        )
    finally:
        engine.dispose()
    out.print_json(json.dumps(result))


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)
    app.add_typer(models_app, name="models")
    app.add_typer(features_app, name="features")
