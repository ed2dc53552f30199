"""`ticketguard <command>`: thin shells over the services. Each capability registers its own sub-app."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from ticketguard.config import Settings, SettingsError, load_settings
from ticketguard.kit import migrate
from ticketguard.kit.db import redact_url

app = typer.Typer(
    name="ticketguard",
    help="Fraud, risk and security layer for NFT ticket sales and resales.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True, soft_wrap=True)  # messages carry paths and commands: never wrap them


def get_settings() -> Settings:
    """Settings for a CLI command; a settings problem exits with its message instead of a traceback."""
    try:
        settings = load_settings()
    except (SettingsError, ValueError) as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(code=2) from None
    from ticketguard.security.logs import install_secrets

    install_secrets(settings)  # logs scrub the configured secrets' exact values from here on
    return settings


def ready_settings(settings: Settings | None = None) -> Settings:
    """Settings for a command that needs the database at the code's migration head; otherwise exit 2
    with the reason (unreachable, or not migrated: run `ticketguard db upgrade`)."""
    settings = settings or get_settings()
    try:
        migrate.check_ready(settings.resolved_database_url)
    except migrate.DatabaseNotReady as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(code=2) from None
    return settings


db_app = typer.Typer(help="Database schema: migrations through Alembic only.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision (default: head).")) -> None:
    """Migrate the configured database up to REVISION."""
    settings = get_settings()
    migrate.upgrade(settings.resolved_database_url, revision)
    url = settings.resolved_database_url
    console.print(f"database {redact_url(url)} at {migrate.current(url)}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base.")) -> None:
    """Migrate the configured database down to REVISION (`base` removes every table)."""
    settings = get_settings()
    migrate.downgrade(settings.resolved_database_url, revision)
    url = settings.resolved_database_url
    console.print(f"database {redact_url(url)} at {migrate.current(url) or 'base'}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's revision and whether it is at head."""
    settings = get_settings()
    rev = migrate.current(settings.resolved_database_url)
    head = migrate.head()
    state = "up to date" if rev == head else f"behind head {head}"
    typer.echo(f"{rev or 'base'} ({state}) {redact_url(settings.resolved_database_url)}")


def _register_subcommands() -> None:
    # Imported here so `ticketguard --help` stays fast and one broken capability cannot hide the others.
    from ticketguard.api.cli import register as register_api
    from ticketguard.chain.cli import register as register_chain
    from ticketguard.delivery.cli import register as register_delivery
    from ticketguard.ingest.cli import register as register_ingest
    from ticketguard.jobs.cli import register as register_jobs
    from ticketguard.ml.cli import register as register_ml
    from ticketguard.quality.cli import register as register_quality
    from ticketguard.retention.cli import register as register_retention
    from ticketguard.reviews.cli import register as register_reviews  # review queue (issue 14)
    from ticketguard.security.cli import register as register_security
    from ticketguard.simulate.cli import register as register_simulate
    from ticketguard.views.cli import register as register_views

    register_simulate(app)
    register_ingest(app)
    register_chain(app)
    register_views(app)
    register_retention(app)
    register_quality(app)
    register_jobs(app)
    register_ml(app)
    register_api(app)
    register_security(app)
    register_delivery(app)
    register_reviews(app)  # review queue (issue 14)
    # operator console (issue 14)
    from ticketguard.admin.cli import register as register_admin
    from ticketguard.dashboard.cli import register as register_dashboard

    register_admin(app)
    register_dashboard(app)
    # alerting (issue 15)
    from ticketguard.alerts.cli import register as register_alerts

    register_alerts(app)


_register_subcommands()


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
