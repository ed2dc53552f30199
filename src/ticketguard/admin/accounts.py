"""Admin accounts: create, list, disable, reset MFA, lock and unlock — each change audited in the caller's
transaction (actor, IP, time, what changed). Usernames are stored lower-case; roles are `analyst` (review
queue, read-only elsewhere) and `admin` (everything)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ticketguard.admin import passwords, totp
from ticketguard.config import Settings
from ticketguard.security.audit import audit
from ticketguard.tables import admin_sessions, admin_users

ROLES = ("analyst", "admin")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


class AccountError(ValueError):
    """An account change cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class AdminUser:
    id: int
    username: str
    role: str
    is_active: bool
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime
    mfa_enrolled: bool

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


def user_from_row(row: Any) -> AdminUser:
    return AdminUser(
        id=row.id,
        username=row.username,
        role=row.role,
        is_active=bool(row.is_active),
        locked_until=row.locked_until,
        last_login_at=row.last_login_at,
        created_at=row.created_at,
        mfa_enrolled=row.totp_secret is not None,
    )


def normalize_username(username: str) -> str:
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise AccountError(
            "username must be 2-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit, "
            f"got {username[:64]!r}"
        )
    return name


def get_user(conn: Connection, username: str) -> AdminUser | None:
    row = conn.execute(select(admin_users).where(admin_users.c.username == username.strip().lower())).first()
    return None if row is None else user_from_row(row)


def get_user_by_id(conn: Connection, user_id: int) -> AdminUser | None:
    row = conn.execute(select(admin_users).where(admin_users.c.id == user_id)).first()
    return None if row is None else user_from_row(row)


def list_users(conn: Connection) -> list[AdminUser]:
    return [user_from_row(r) for r in conn.execute(select(admin_users).order_by(admin_users.c.username))]


def _require(conn: Connection, username: str) -> AdminUser:
    user = get_user(conn, username)
    if user is None:
        raise AccountError(f"no admin user {username.strip().lower()!r}; see `ticketguard admin list`")
    return user


def revoke_sessions(conn: Connection, user_id: int, now: datetime) -> int:
    return conn.execute(
        update(admin_sessions)
        .where(admin_sessions.c.admin_user_id == user_id, admin_sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount


def _change_and_end_sessions(
    conn: Connection,
    user: AdminUser,
    values: dict[str, Any],
    *,
    action: str,
    actor: str,
    now: datetime,
    ip: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Change a user's row, end every session of theirs and audit both, in the caller's transaction: what
    disabling, a new password, a new TOTP secret and a lock have in common."""
    conn.execute(update(admin_users).where(admin_users.c.id == user.id).values(**values))
    killed = revoke_sessions(conn, user.id, now)
    audit(
        conn,
        actor=actor,
        action=action,
        now=now,
        ip_address=ip,
        details={"user": user.username, **(details or {}), "sessions_revoked": killed},
    )


def create_user(
    conn: Connection,
    settings: Settings,
    *,
    username: str,
    password: str,
    role: str,
    actor: str,
    now: datetime,
    ip: str | None = None,
) -> tuple[AdminUser, str]:
    """Create an account with a fresh TOTP secret; returns the user and the secret (shown once)."""
    name = normalize_username(username)
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    passwords.check_password(password, username=name, min_length=settings.admin_password_min_length)
    if get_user(conn, name) is not None:
        raise AccountError(f"admin user {name!r} exists already")
    secret = totp.new_secret()
    conn.execute(
        insert(admin_users).values(
            username=name,
            password_hash=passwords.hash_password(password),
            totp_secret=totp.seal(settings, secret),
            role=role,
            is_active=True,
            failed_attempts=0,
            totp_failures=0,
            created_at=now,
            password_changed_at=now,
            mfa_enrolled_at=now,
        )
    )
    audit(
        conn,
        actor=actor,
        action="admin.user_create",
        now=now,
        ip_address=ip,
        details={"user": name, "role": role},
    )
    user = get_user(conn, name)
    assert user is not None
    return user, secret


def disable_user(
    conn: Connection, username: str, *, actor: str, now: datetime, ip: str | None = None
) -> AdminUser:
    user = _require(conn, username)
    _change_and_end_sessions(
        conn,
        user,
        {"is_active": False, "disabled_at": now},
        action="admin.user_disable",
        actor=actor,
        now=now,
        ip=ip,
    )
    return _require(conn, username)


def reset_mfa(
    conn: Connection, settings: Settings, username: str, *, actor: str, now: datetime, ip: str | None = None
) -> str:
    """A new TOTP secret (returned, shown once); the old one stops working and every session ends."""
    user = _require(conn, username)
    secret = totp.new_secret()
    values = {
        "totp_secret": totp.seal(settings, secret),
        "totp_last_step": None,
        "totp_failures": 0,
        "totp_failed_since": None,
        "mfa_enrolled_at": now,
    }
    _change_and_end_sessions(conn, user, values, action="admin.mfa_reset", actor=actor, now=now, ip=ip)
    return secret


def set_password(
    conn: Connection,
    settings: Settings,
    username: str,
    password: str,
    *,
    actor: str,
    now: datetime,
    ip: str | None = None,
) -> None:
    user = _require(conn, username)
    passwords.check_password(password, username=user.username, min_length=settings.admin_password_min_length)
    values = {"password_hash": passwords.hash_password(password), "password_changed_at": now}
    _change_and_end_sessions(conn, user, values, action="admin.password_set", actor=actor, now=now, ip=ip)


def lock_account(
    conn: Connection, username: str, *, until: datetime, reason: str, actor: str, ip: str | None = None
) -> bool:
    """Lock an account until `until` (its sessions end at once). False when there is no such user."""
    user = get_user(conn, username)
    if user is None:
        return False
    now = datetime.now(UTC)
    _change_and_end_sessions(
        conn,
        user,
        {"locked_until": until},
        action="admin.account_lock",
        actor=actor,
        now=now,
        ip=ip,
        details={"until": until.isoformat(), "reason": reason},
    )
    return True


def unlock_account(
    conn: Connection, username: str, *, actor: str, ip: str | None = None, reason: str | None = None
) -> bool:
    """Lift a lock and clear the failure counters. False when there is no such user."""
    user = get_user(conn, username)
    if user is None:
        return False
    now = datetime.now(UTC)
    conn.execute(
        update(admin_users)
        .where(admin_users.c.id == user.id)
        .values(
            locked_until=None, failed_attempts=0, failed_since=None, totp_failures=0, totp_failed_since=None
        )
    )
    audit(
        conn,
        actor=actor,
        action="admin.account_unlock",
        now=now,
        ip_address=ip,
        details={"user": user.username, "reason": reason},
    )
    return True
