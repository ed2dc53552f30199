"""`ticketguard clients …`, `ticketguard blocklist …`, `ticketguard security …`: thin shells over the
security services. Every change is audited in admin_audit_log with --actor (default: the OS user)."""

from __future__ import annotations

import getpass
import time
from datetime import UTC, datetime, timedelta
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
    ttl: int = typer.Option(
        900, "--ttl", min=1, help="Lifetime in seconds, at most JWT_MAX_LIFETIME_SECONDS."
    ),
) -> None:
    """Mint an HS256 bearer token with JWT_SECRET (for tests and integration set-up)."""
    from ticketguard.cli import get_settings
    from ticketguard.security.auth import TokenVerifier

    settings = get_settings()
    if settings.jwt_secret is None:
        raise _fail("JWT_SECRET is not set: nothing to sign tokens with")
    verifier = TokenVerifier.from_settings(settings)
    try:
        token = verifier.issue(subject, ttl, now=int(time.time()))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    out.print(token, markup=False, highlight=False)


# ---------------------------------------------------------------------------------------------- blocklist
KINDS = {"wallet": "blacklist", "vip": "allowlist", "ip": "ip"}
KIND_HELP = "wallet (blacklist), vip (allow list) or ip (IP block)."
TITLES = {"wallet": "blacklisted wallets", "vip": "allow-listed (VIP) wallets", "ip": "blocked IPs"}
_UNITS = {"m": 60, "h": 3600, "d": 86_400}


def parse_duration(value: str | None) -> timedelta | None:
    """``30m``, ``12h``, ``7d`` → timedelta; empty → None (until removed)."""
    if not value:
        return None
    text = value.strip().lower()
    if len(text) < 2 or text[-1] not in _UNITS or not text[:-1].isdigit() or int(text[:-1]) <= 0:
        raise ValueError(
            f"--expires-in must be a positive number with m, h or d (e.g. 30m, 12h, 7d), got {value!r}"
        )
    return timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])


def _kind(value: str) -> str:
    if value not in KINDS:
        raise _fail(f"KIND must be one of {', '.join(KINDS)}, got {value!r}")
    return KINDS[value]


def _redis(settings: Settings) -> object | None:
    url = settings.resolved_redis_url
    if not url:
        return None
    import redis

    timeout = max(settings.redis_timeout_ms / 1000, 0.5)
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


@blocklist_app.command("add")
def blocklist_add(
    kind: str = typer.Argument(..., help=KIND_HELP),
    value: str = typer.Argument(..., help="The wallet address or IP address."),
    reason: str = typer.Option(..., "--reason", help="Why (kept with the entry and in the audit log)."),
    expires_in: str = typer.Option(None, "--expires-in", help="e.g. 30m, 12h, 7d; default: until removed."),
    actor: str = typer.Option(None, "--actor", help=ACTOR_HELP),
) -> None:
    """Blacklist a wallet, allow-list a VIP wallet, or block an IP (IPs are stored hashed)."""
    from ticketguard.security import lists
    from ticketguard.security.keys import pepper

    list_kind = _kind(kind)
    try:
        duration = parse_duration(expires_in)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    settings, engine = _ready()
    now = datetime.now(UTC)
    expires_at = now + duration if duration else None
    who = actor or getpass.getuser()
    try:
        with engine.begin() as conn:
            if list_kind == "ip":
                shown = lists.block_ip(
                    conn,
                    value,
                    pepper=pepper(settings),
                    reason=reason,
                    actor=who,
                    now=now,
                    expires_at=expires_at,
                )
            else:
                shown = lists.add_wallet(
                    conn, list_kind, value, reason=reason, actor=who, now=now, expires_at=expires_at
                )
    except lists.ListError as exc:
        raise _fail(str(exc)) from None
    if list_kind == "ip":
        lists.publish_ip_blocks(engine, _redis(settings))
    until = f"until {_when(expires_at)} UTC" if expires_at else "until removed"
    from ticketguard.security.redact import mask_wallet

    shown = shown if list_kind == "ip" else mask_wallet(shown)  # the terminal may be logged too
    console.print(f"{kind} {escape(shown)} added ({until})")


@blocklist_app.command("remove")
def blocklist_remove(
    kind: str = typer.Argument(..., help=KIND_HELP),
    value: str = typer.Argument(..., help="The wallet address, or the IP address or its ip:… token."),
    actor: str = typer.Option(None, "--actor", help=ACTOR_HELP),
) -> None:
    """Remove a wallet from the blacklist or allow list, or lift an IP block."""
    from ticketguard.security import lists
    from ticketguard.security.keys import pepper
    from ticketguard.security.redact import hash_ip

    list_kind = _kind(kind)
    settings, engine = _ready()
    now = datetime.now(UTC)
    who = actor or getpass.getuser()
    try:
        with engine.begin() as conn:
            if list_kind == "ip":
                token = value if value.startswith("ip:") else hash_ip(value, pepper(settings))
                removed = lists.unblock_ip_token(conn, token, actor=who, now=now)
            else:
                removed = lists.remove_wallet(conn, list_kind, value, actor=who, now=now)
    except lists.ListError as exc:
        raise _fail(str(exc)) from None
    if not removed:
        raise _fail(f"{kind} {value[:64]!r} is not on the list", code=EXIT_FAILED)
    if list_kind == "ip":
        lists.publish_ip_blocks(engine, _redis(settings))
    console.print(f"{kind} removed")


@blocklist_app.command("list")
def blocklist_list(
    kind: str = typer.Argument("all", help="wallet, vip, ip or all."),
) -> None:
    """Show the active entries (expired ones are not shown); IPs appear masked and as their hash token."""
    from ticketguard.security import lists

    kinds = list(KINDS) if kind == "all" else [kind]
    for k in kinds:
        _kind(k)
    _, engine = _ready()
    now = datetime.now(UTC)
    with engine.connect() as conn:
        for k in kinds:
            table = Table(title=TITLES[k])
            if KINDS[k] == "ip":
                blocks = lists.active_ip_blocks(conn, now)
                for column in ("ip token", "masked", "reason", "by", "since", "expires"):
                    table.add_column(column)
                for b in blocks:
                    table.add_row(
                        b.ip_hash,
                        b.ip_masked or "-",
                        escape(b.reason or "-"),
                        escape(b.added_by or "-"),
                        _when(b.created_at),
                        _when(b.expires_at),
                    )
            else:
                entries = lists.list_wallets(conn, KINDS[k], now)
                for column in ("wallet", "reason", "by", "since", "expires"):
                    table.add_column(column)
                for e in entries:
                    table.add_row(
                        e.wallet_address,
                        escape(e.reason or "-"),
                        escape(e.added_by or "-"),
                        _when(e.timestamp),
                        _when(e.expires_at),
                    )
            out.print(table)


# ----------------------------------------------------------------------------------------------- security
@security_app.command("responses")
def security_responses(
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="Newest first."),
) -> None:
    """The automated responses the correlation rules applied, newest first."""
    from ticketguard.security.responses import list_responses

    _, engine = _ready()
    with engine.connect() as conn:
        records = list_responses(conn, limit=limit)
    table = Table(title=f"{len(records)} response(s)")
    for column in ("id", "rule", "action", "target", "created", "expires", "reverted"):
        table.add_column(column)
    for r in records:
        table.add_row(
            str(r.id),
            r.rule,
            r.action,
            r.target,
            _when(r.created_at),
            _when(r.expires_at),
            _when(r.reverted_at) + (f" by {escape(r.reverted_by)}" if r.reverted_by else ""),
        )
    out.print(table)


@security_app.command("events")
def security_events_command(
    event_type: str = typer.Option(None, "--type", help="Only this event type, e.g. auth_failed."),
    since_minutes: int = typer.Option(60, "--since-minutes", min=1, max=525_600, help="Look-back window."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="Newest first."),
) -> None:
    """Recent security events (IPs and users appear as their hash tokens), with counts per type."""
    from sqlalchemy import func, select

    from ticketguard.tables import security_events as t

    _, engine = _ready()
    since = datetime.now(UTC) - timedelta(minutes=since_minutes)
    where = [t.c.timestamp >= since] + ([t.c.event_type == event_type] if event_type else [])
    with engine.connect() as conn:
        counts = conn.execute(
            select(t.c.event_type, func.count())
            .where(*where)
            .group_by(t.c.event_type)
            .order_by(t.c.event_type)
        ).all()
        rows = conn.execute(
            select(t).where(*where).order_by(t.c.timestamp.desc(), t.c.id.desc()).limit(limit)
        ).all()
    summary = ", ".join(f"{kind} {n}" for kind, n in counts) or "none"
    console.print(f"last {since_minutes} min: {summary}")
    table = Table(title=f"{len(rows)} newest event(s)")
    for column in ("time", "type", "severity", "source", "user", "details"):
        table.add_column(column)
    for r in rows:
        details = ", ".join(f"{k}={v}" for k, v in (r.metadata or {}).items() if v is not None)
        table.add_row(
            _when(r.timestamp),
            r.event_type,
            r.severity or "-",
            r.source_ip or "-",
            r.user_id or "-",
            escape(details[:120]),
        )
    out.print(table)


@security_app.command("revert")
def security_revert(
    response_id: int = typer.Argument(..., help="The response id (see `ticketguard security responses`)."),
    actor: str = typer.Option(None, "--actor", help=ACTOR_HELP),
) -> None:
    """Undo an automated response: lift its IP block / blacklist entry / global-limit tightening."""
    from ticketguard.security import lists
    from ticketguard.security.responses import ResponseError, revert_response

    settings, engine = _ready()
    try:
        with engine.begin() as conn:
            record = revert_response(
                conn, response_id, actor=actor or getpass.getuser(), now=datetime.now(UTC)
            )
    except ResponseError as exc:
        raise _fail(str(exc)) from None
    if record.action == "block_ip":
        lists.publish_ip_blocks(engine, _redis(settings))
    console.print(f"response {record.id} ({record.rule}: {record.action}) reverted")


@security_app.command("rules")
def security_rules() -> None:
    """Show the correlation rules loaded from SECURITY_RULES_PATH (or the packaged default)."""
    from ticketguard.cli import get_settings
    from ticketguard.security.rules import RulesError, load_rules

    settings = get_settings()
    try:
        rules = load_rules(settings.security_rules_path)
    except RulesError as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"{len(rules)} correlation rule(s)")
    for column in ("name", "kind", "threshold", "window", "response", "for", "severity"):
        table.add_column(column)
    for r in rules:
        table.add_row(
            r.name,
            r.kind,
            str(r.threshold),
            str(r.window),
            r.action,
            str(r.duration) if r.duration else "until reverted",
            r.severity,
        )
    out.print(table)


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
