"""`ticketguard admin create|list|disable|reset-mfa|unlock|set-password`: console accounts from the shell.
Passwords are read from a hidden prompt (or stdin with --password-stdin), never from the command line;
the TOTP secret, its provisioning URI and a QR code are printed once at enrolment."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ticketguard.config import Settings

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
admin_app = typer.Typer(
    help="Console accounts: password + TOTP, roles analyst/admin (docs/console.md).", no_args_is_help=True
)

ACTOR_HELP = "Who asked for it, for the audit log (default: the OS user)."


def _ready() -> tuple[Settings, Engine]:
    from ticketguard.bootstrap import database_engine
    from ticketguard.cli import ready_settings

    settings = ready_settings()
    return settings, database_engine(settings)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{escape(message)}[/red]")
    return typer.Exit(code=2)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _enrolment(username: str, secret: str, qr_png: Path | None) -> None:
    from ticketguard.admin import totp

    uri = totp.provisioning_uri(secret, username)
    console.print(
        "Scan the QR code (or enter the secret) in an authenticator app. Shown once: it is stored sealed."
    )
    out.print(totp.qr_text(uri), markup=False, highlight=False)
    out.print(f"totp secret: {secret}", markup=False, highlight=False)
    out.print(f"provisioning uri: {uri}", markup=False, highlight=False)
    if qr_png is not None:
        qr_png.write_bytes(totp.qr_png(uri))
        qr_png.chmod(0o600)
        console.print(f"QR code written to {escape(str(qr_png))}")


@admin_app.command("create")
def create(
    username: Annotated[str, typer.Argument(help="Login name (a-z, 0-9, . _ -).")],
    role: Annotated[str, typer.Option(help="analyst (review queue) or admin (everything).")] = "analyst",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin's first line.")] = False,
    generate_password: Annotated[
        bool, typer.Option(help="Generate a random password and print it once (demo, first admin).")
    ] = False,
    reset: Annotated[
        bool, typer.Option(help="If the account exists: new password and TOTP secret, lock lifted.")
    ] = False,
    qr_png: Annotated[Path | None, typer.Option(help="Also write the enrolment QR code to this PNG.")] = None,
    actor: Annotated[str | None, typer.Option(help=ACTOR_HELP)] = None,
) -> None:
    """Create a console account and print its TOTP enrolment (secret, URI, QR code) once."""
    import secrets

    from ticketguard.admin.accounts import (
        AccountError,
        create_user,
        get_user,
        reset_mfa,
        set_password,
        unlock_account,
    )
    from ticketguard.admin.passwords import PasswordPolicyError

    settings, engine = _ready()
    password = secrets.token_urlsafe(18) if generate_password else _read_password(password_stdin)
    who = actor or getpass.getuser()
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            existing = get_user(conn, username) if reset else None
            if existing is not None:
                set_password(conn, settings, existing.username, password, actor=who, now=now)
                secret = reset_mfa(conn, settings, existing.username, actor=who, now=now)
                unlock_account(conn, existing.username, actor=who, reason="admin create --reset")
                user = existing
            else:
                user, secret = create_user(
                    conn, settings, username=username, password=password, role=role, actor=who, now=now
                )
    except (AccountError, PasswordPolicyError) as exc:
        raise _fail(str(exc)) from None
    verb = "reset" if reset and existing is not None else "created"
    console.print(f"{verb} {escape(user.role)} [bold]{escape(user.username)}[/bold]")
    if generate_password:
        out.print(f"password: {password}", markup=False, highlight=False)
    _enrolment(user.username, secret, qr_png)


@admin_app.command("list")
def list_command() -> None:
    """List console accounts (never their secrets)."""
    from ticketguard.admin.accounts import list_users

    _, engine = _ready()
    with engine.connect() as conn:
        users = list_users(conn)
    now = datetime.now(UTC)
    table = Table(title=f"{len(users)} console account(s)")
    for column in ("username", "role", "active", "locked until", "mfa", "last login", "created"):
        table.add_column(column)
    for u in users:
        table.add_row(
            escape(u.username),
            u.role,
            "yes" if u.is_active else "no",
            u.locked_until.strftime("%Y-%m-%d %H:%M:%S") if u.locked(now) and u.locked_until else "-",
            "yes" if u.mfa_enrolled else "no",
            u.last_login_at.strftime("%Y-%m-%d %H:%M:%S") if u.last_login_at else "-",
            u.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    out.print(table)


@admin_app.command("disable")
def disable(
    username: Annotated[str, typer.Argument()],
    actor: Annotated[str | None, typer.Option(help=ACTOR_HELP)] = None,
) -> None:
    """Disable an account; its sessions end at once."""
    from ticketguard.admin.accounts import AccountError, disable_user

    _, engine = _ready()
    try:
        with engine.begin() as conn:
            user = disable_user(conn, username, actor=actor or getpass.getuser(), now=datetime.now(UTC))
    except AccountError as exc:
        raise _fail(str(exc)) from None
    console.print(f"disabled {escape(user.username)}")


@admin_app.command("reset-mfa")
def reset_mfa_command(
    username: Annotated[str, typer.Argument()],
    qr_png: Annotated[Path | None, typer.Option(help="Also write the enrolment QR code to this PNG.")] = None,
    actor: Annotated[str | None, typer.Option(help=ACTOR_HELP)] = None,
) -> None:
    """Give an account a new TOTP secret (printed once); the old codes stop working, sessions end."""
    from ticketguard.admin.accounts import AccountError, reset_mfa

    settings, engine = _ready()
    try:
        with engine.begin() as conn:
            secret = reset_mfa(
                conn, settings, username, actor=actor or getpass.getuser(), now=datetime.now(UTC)
            )
    except AccountError as exc:
        raise _fail(str(exc)) from None
    _enrolment(username.strip().lower(), secret, qr_png)


@admin_app.command("unlock")
def unlock(
    username: Annotated[str, typer.Argument()],
    actor: Annotated[str | None, typer.Option(help=ACTOR_HELP)] = None,
) -> None:
    """Lift a lockout and clear the failure counters."""
    from ticketguard.admin.accounts import unlock_account

    _, engine = _ready()
    with engine.begin() as conn:
        found = unlock_account(conn, username, actor=actor or getpass.getuser(), reason="cli")
    if not found:
        raise _fail(f"no admin user {username.strip().lower()!r}; see `ticketguard admin list`")
    console.print(f"unlocked {escape(username.strip().lower())}")


@admin_app.command("set-password")
def set_password_command(
    username: Annotated[str, typer.Argument()],
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin's first line.")] = False,
    actor: Annotated[str | None, typer.Option(help=ACTOR_HELP)] = None,
) -> None:
    """Set a new password (the policy applies); the account's sessions end."""
    from ticketguard.admin.accounts import AccountError, set_password
    from ticketguard.admin.passwords import PasswordPolicyError

    settings, engine = _ready()
    password = _read_password(password_stdin)
    try:
        with engine.begin() as conn:
            set_password(
                conn, settings, username, password, actor=actor or getpass.getuser(), now=datetime.now(UTC)
            )
    except (AccountError, PasswordPolicyError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"password of {escape(username.strip().lower())} changed")


def register(app: typer.Typer) -> None:
    app.add_typer(admin_app, name="admin")
