"""Log-in with password + TOTP, and the step-up code admin actions ask for.

Every failure answers the same (`LoginFailed`, one message) and costs one argon2 verification whether or
not the user exists, is disabled or locked. Each failure is one `admin.login_failed` audit row and one
`login_failed` security event (metadata.stage: password | totp | locked | disabled; the correlation rule
`brute_force` counts them per IP). A user's failures are counted in a window that starts at the first one:
ADMIN_LOCKOUT_THRESHOLD failures lock the account for ADMIN_LOCKOUT_MINUTES (a high `failed_login_attempts`
event), ADMIN_MFA_FAILURE_THRESHOLD bad TOTP codes are a critical `mfa_failures` event. A TOTP code is
accepted once: the step of an accepted code is stored and that step and every earlier one are refused.
The caller commits the transaction whether or not the log-in succeeded (failures must be recorded).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, or_, select, update

from ticketguard.admin import passwords, totp
from ticketguard.admin.accounts import AdminUser, revoke_sessions, user_from_row
from ticketguard.config import Settings
from ticketguard.security.audit import audit
from ticketguard.security.events import LOGIN_FAILED, SecurityEvent, user_token, write_events
from ticketguard.security.keys import pepper
from ticketguard.security.redact import hash_ip
from ticketguard.tables import admin_users

FAILED_LOGIN_ATTEMPTS = "failed_login_attempts"  # the guide's alert rule keys on this event type
MFA_FAILURES = "mfa_failures"
GENERIC_FAILURE = "Invalid username, password or code."


class LoginFailed(Exception):
    """The one answer to every failed log-in or step-up; `stage` is for logs and tests, never for users."""

    def __init__(self, stage: str) -> None:
        super().__init__(GENERIC_FAILURE)
        self.stage = stage


def _event(
    settings: Settings,
    event_type: str,
    severity: str,
    *,
    ip: str | None,
    username: str | None,
    now: datetime,
    metadata: dict[str, Any],
) -> SecurityEvent:
    key = pepper(settings)
    return SecurityEvent(
        event_type=event_type,
        severity=severity,
        source_ip=hash_ip(ip, key) if ip else None,
        user_id=user_token(username, key) if username else None,
        metadata=metadata,
        timestamp=now,
    )


def _record_failure(
    conn: Connection,
    settings: Settings,
    *,
    stage: str,
    username: str,
    row: Any | None,
    ip: str | None,
    now: datetime,
    purpose: str,
    replay: bool = False,
) -> None:
    events = [
        _event(
            settings,
            LOGIN_FAILED,
            "medium",
            ip=ip,
            username=username,
            now=now,
            metadata={"stage": stage, "purpose": purpose, "known_user": row is not None, "replay": replay},
        )
    ]
    details: dict[str, Any] = {"stage": stage, "purpose": purpose, "known_user": row is not None}
    if replay:
        details["replay"] = True
    audit(
        conn, actor=username[:64] or "-", action="admin.login_failed", now=now, ip_address=ip, details=details
    )
    if row is not None and stage in ("password", "totp"):
        window = timedelta(seconds=settings.admin_lockout_window_seconds)
        fresh = row.failed_since is None or row.failed_since <= now - window
        failed = 1 if fresh else int(row.failed_attempts or 0) + 1
        values: dict[str, Any] = {
            "failed_attempts": failed,
            "failed_since": now if fresh else row.failed_since,
        }
        if stage == "totp":
            totp_fresh = row.totp_failed_since is None or row.totp_failed_since <= now - window
            totp_failed = 1 if totp_fresh else int(row.totp_failures or 0) + 1
            values["totp_failures"] = totp_failed
            values["totp_failed_since"] = now if totp_fresh else row.totp_failed_since
            if totp_failed == settings.admin_mfa_failure_threshold:
                events.append(
                    _event(
                        settings,
                        MFA_FAILURES,
                        "critical",
                        ip=ip,
                        username=username,
                        now=now,
                        metadata={"failures": totp_failed, "window_seconds": window.total_seconds()},
                    )
                )
                audit(
                    conn,
                    actor="console",
                    action="admin.mfa_failures",
                    now=now,
                    ip_address=ip,
                    details={"user": row.username, "failures": totp_failed},
                )
        if failed >= settings.admin_lockout_threshold and not (row.locked_until and row.locked_until > now):
            until = now + timedelta(minutes=settings.admin_lockout_minutes)
            values["locked_until"] = until
            revoke_sessions(conn, row.id, now)
            events.append(
                _event(
                    settings,
                    FAILED_LOGIN_ATTEMPTS,
                    "high",
                    ip=ip,
                    username=username,
                    now=now,
                    metadata={"failures": failed, "window_seconds": window.total_seconds(), "locked": True},
                )
            )
            audit(
                conn,
                actor="console",
                action="admin.account_lock",
                now=now,
                ip_address=ip,
                details={
                    "user": row.username,
                    "until": until.isoformat(),
                    "reason": f"{failed} failed logins",
                },
            )
        conn.execute(update(admin_users).where(admin_users.c.id == row.id).values(**values))
    write_events(conn, events)


def _accept_step(conn: Connection, user_id: int, step: int) -> bool:
    """Store `step` as the last accepted one unless it (or a later one) was accepted already. One UPDATE:
    two log-ins racing with the same code cannot both win."""
    t = admin_users
    return (
        conn.execute(
            update(t)
            .where(t.c.id == user_id, or_(t.c.totp_last_step.is_(None), t.c.totp_last_step < step))
            .values(totp_last_step=step)
        ).rowcount
        == 1
    )


def _check_code(
    conn: Connection, settings: Settings, row: Any, code: str, now: datetime
) -> tuple[bool, bool]:
    """(accepted, replay)."""
    if row.totp_secret is None:
        return False, False
    secret = totp.unseal(settings, row.totp_secret)
    step = totp.matching_step(secret, code, now)
    if step is None:
        return False, False
    if not _accept_step(conn, row.id, step):
        return False, True
    return True, False


def authenticate(
    conn: Connection,
    settings: Settings,
    *,
    username: str,
    password: str,
    code: str,
    ip: str | None,
    now: datetime,
) -> AdminUser:
    """The user, when password and TOTP code are right and the account may log in; else LoginFailed."""
    name = username.strip().lower()[:64]
    row = conn.execute(select(admin_users).where(admin_users.c.username == name)).first() if name else None
    if row is None:
        passwords.verify_dummy(password)
        _record_failure(
            conn, settings, stage="password", username=name, row=None, ip=ip, now=now, purpose="login"
        )
        raise LoginFailed("password")
    password_ok = passwords.verify_password(row.password_hash, password)
    stage: str | None = None
    if not row.is_active:
        stage = "disabled"
    elif row.locked_until is not None and row.locked_until > now:
        stage = "locked"
    elif not password_ok:
        stage = "password"
    if stage is not None:
        _record_failure(conn, settings, stage=stage, username=name, row=row, ip=ip, now=now, purpose="login")
        raise LoginFailed(stage)
    accepted, replay = _check_code(conn, settings, row, code, now)
    if not accepted:
        _record_failure(
            conn,
            settings,
            stage="totp",
            username=name,
            row=row,
            ip=ip,
            now=now,
            purpose="login",
            replay=replay,
        )
        raise LoginFailed("totp")
    values: dict[str, Any] = {
        "last_login_at": now,
        "failed_attempts": 0,
        "failed_since": None,
        "totp_failures": 0,
        "totp_failed_since": None,
    }
    if passwords.needs_rehash(row.password_hash):
        values["password_hash"] = passwords.hash_password(password)
    conn.execute(update(admin_users).where(admin_users.c.id == row.id).values(**values))
    audit(conn, actor=name, action="admin.login", now=now, ip_address=ip, details={"role": row.role})
    fresh = conn.execute(select(admin_users).where(admin_users.c.id == row.id)).first()
    return user_from_row(fresh)


def step_up(
    conn: Connection,
    settings: Settings,
    user: AdminUser,
    code: str,
    *,
    ip: str | None,
    now: datetime,
    action: str,
) -> None:
    """A fresh TOTP code for an admin action (accepted once, like at log-in); LoginFailed otherwise."""
    row = conn.execute(select(admin_users).where(admin_users.c.id == user.id)).first()
    if row is None or not row.is_active or (row.locked_until is not None and row.locked_until > now):
        raise LoginFailed("disabled")
    accepted, replay = _check_code(conn, settings, row, code, now)
    if not accepted:
        _record_failure(
            conn,
            settings,
            stage="totp",
            username=row.username,
            row=row,
            ip=ip,
            now=now,
            purpose=f"step-up {action}",
            replay=replay,
        )
        raise LoginFailed("totp")
