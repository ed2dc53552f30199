"""`ticketguard clients …`, `ticketguard blocklist …`, `ticketguard security …`: thin shells over the
security services. Every change is audited in admin_audit_log with --actor (default: the OS user)."""

from __future__ import annotations

import getpass
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ticketguard.config import Settings

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

EXIT_FAILED = 1
EXIT_USAGE = 2

clients_app = typer.Typer(
    help="API clients: machine clients authenticate with an API key (stored hashed, shown once).",
    no_args_is_help=True,
)
blocklist_app = typer.Typer(
    help="Block and allow lists: blacklisted wallets, blocked IPs (with expiry), allow-listed VIP wallets.",
    no_args_is_help=True,
)
security_app = typer.Typer(
    help="Security events, correlation rules and their automated responses (docs/security.md).",
    no_args_is_help=True,
)

ACTOR_HELP = "Who asked for it, for the audit log (default: the OS user)."


def _ready() -> tuple[Settings, Engine]:
    from ticketguard.bootstrap import database_engine
    from ticketguard.cli import get_settings
    from ticketguard.jobs.runtime import DatabaseNotReady, check_database_ready

    settings = get_settings()
    try:
        check_database_ready(settings)
    except DatabaseNotReady as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(code=EXIT_USAGE) from None
    return settings, database_engine(settings)


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    console.print(f"[red]{escape(message)}[/red]")
    return typer.Exit(code=code)


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


# ------------------------------------------------------------------------------------------------ clients
@clients_app.command("create")
def clients_create(
    name: str = typer.Argument(..., help="Unique client name, e.g. ticketing-backend."),
    scopes: str = typer.Option("score", "--scopes", help="Comma-separated: score, metrics."),
    actor: str = typer.Option(None, "--actor", help=ACTOR_HELP),
) -> None:
    """Create an API client and print its key ONCE (only a hash is stored)."""
    from ticketguard.security.auth import parse_scopes
    from ticketguard.security.clients import ClientError, create_client
    from ticketguard.security.keys import pepper

    try:
        parse_scopes(scopes)
    except ValueError as exc:
        raise _fail(f"--scopes: {exc}") from None
    settings, engine = _ready()
    try:
        with engine.begin() as conn:
            record, key = create_client(
                conn,
                name=name,
                scopes=scopes,
                actor=actor or getpass.getuser(),
                pepper=pepper(settings),
                now=datetime.now(UTC),
            )
    except ClientError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"created client [bold]{escape(record.name)}[/bold] ({record.client_id}), scopes "
        f"{','.join(sorted(record.scopes))}. The key below is shown once; store it in a secret manager."
    )
    out.print(key, markup=False, highlight=False)


@clients_app.command("list")
def clients_list() -> None:
    """List API clients (never their keys)."""
    from ticketguard.security.clients import list_clients

    _, engine = _ready()
    with engine.connect() as conn:
        records = list_clients(conn)
    table = Table(title=f"{len(records)} API client(s)")
    for column in ("client_id", "name", "key prefix", "scopes", "created", "by", "revoked"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r.client_id,
            escape(r.name),
            f"tgk_{r.key_prefix}_…",
            ",".join(sorted(r.scopes)),
            _when(r.created_at),
            escape(r.created_by or "-"),
            _when(r.revoked_at),
        )
    out.print(table)


@clients_app.command("revoke")
def clients_revoke(
    client: str = typer.Argument(..., help="Client name or client_id."),
    actor: str = typer.Option(None, "--actor", help=ACTOR_HELP),
) -> None:
    """Revoke a client's API key (takes effect within 5 seconds on running API workers)."""
    from ticketguard.security.clients import ClientError, revoke_client

    _, engine = _ready()
    try:
        with engine.begin() as conn:
            record = revoke_client(
                conn, name_or_id=client, actor=actor or getpass.getuser(), now=datetime.now(UTC)
            )
    except ClientError as exc:
        raise _fail(str(exc)) from None
    console.print(f"client {escape(record.name)} ({record.client_id}) revoked at {_when(record.revoked_at)}")


@clients_app.command("token")
def clients_token(
    subject: str = typer.Argument(..., help="The user id the token speaks for (its `sub`)."),
    ttl: int = typer.Option(900, "--ttl", min=1, max=86_400, help="Lifetime in seconds (1-86400)."),
) -> None:
    """Mint an HS256 bearer token with JWT_SECRET (for tests and integration set-up)."""
    from ticketguard.cli import get_settings
    from ticketguard.security.auth import TokenVerifier

    settings = get_settings()
    if settings.jwt_secret is None:
        raise _fail("JWT_SECRET is not set: nothing to sign tokens with")
    verifier = TokenVerifier.from_settings(settings)
    out.print(verifier.issue(subject, ttl, now=int(time.time())), markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    import logging

    from ticketguard.security.logs import configure_logging, install_redaction

    # The CLI process starts here: every log record is scrubbed, and JSON lines go to stderr unless a
    # handler is already in place (the worker installs its own; tests install caplog's).
    install_redaction()
    if not logging.getLogger().handlers:
        configure_logging("WARNING")
    app.add_typer(clients_app, name="clients")
    app.add_typer(blocklist_app, name="blocklist")
    app.add_typer(security_app, name="security")
