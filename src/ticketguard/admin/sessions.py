"""Server-side console sessions. The cookie holds a random token; the table holds only its sha256, so a
leaked table is not a list of live sessions. A session ends after ADMIN_SESSION_IDLE_MINUTES without user
activity (the dashboard's automatic refreshes do not count), after ADMIN_SESSION_MAX_HOURS whatever
happens, at logout (server-side), and when its user is disabled, locked or gets new credentials. Each
session has its own CSRF token (also stored hashed) that every state-changing request must send back."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from ticketguard.admin.accounts import AdminUser, user_from_row
from ticketguard.tables import admin_sessions, admin_users

TOUCH_EVERY = timedelta(seconds=15)  # last_seen_at is written at most this often per session


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ConsoleSession:
    id: str  # sha256 of the token
    user: AdminUser
    csrf_hash: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime

    def csrf_ok(self, supplied: str | None) -> bool:
        if not supplied:
            return False
        return hmac.compare_digest(token_hash(supplied), self.csrf_hash)


def create_session(
    conn: Connection,
    user: AdminUser,
    *,
    now: datetime,
    ip: str | None,
    user_agent: str | None,
    max_age: timedelta,
    replaces: str | None = None,
) -> tuple[str, str]:
    """A new session for `user` (ending the one whose token is `replaces`): returns (token, csrf token)."""
    if replaces:
        revoke(conn, replaces, now=now)
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    conn.execute(
        insert(admin_sessions).values(
            id=token_hash(token),
            admin_user_id=user.id,
            created_at=now,
            expires_at=now + max_age,
            last_seen_at=now,
            ip_address=ip,
            user_agent_hash=token_hash(user_agent) if user_agent else None,
            csrf_hash=token_hash(csrf),
        )
    )
    return token, csrf


def load_session(
    conn: Connection, token: str | None, *, now: datetime, idle: timedelta, touch: bool
) -> ConsoleSession | None:
    """The live session of `token`, or None (unknown, revoked, expired, idle too long, user not allowed).
    `touch`: this request is user activity and extends the idle timeout."""
    if not token:
        return None
    s, u = admin_sessions, admin_users
    row = conn.execute(
        select(
            s.c.id.label("session_id"),
            s.c.csrf_hash,
            s.c.created_at.label("session_created_at"),
            s.c.expires_at,
            s.c.last_seen_at,
            s.c.revoked_at,
            u,
        )
        .join(u, u.c.id == s.c.admin_user_id)
        .where(s.c.id == token_hash(token))
    ).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.last_seen_at + idle <= now:
        return None
    user = user_from_row(row)
    if not user.is_active or user.locked(now):
        return None
    last_seen = row.last_seen_at
    if touch and now - last_seen >= TOUCH_EVERY:
        conn.execute(update(s).where(s.c.id == row.session_id).values(last_seen_at=now))
        last_seen = now
    return ConsoleSession(
        row.session_id, user, row.csrf_hash or "", row.session_created_at, row.expires_at, last_seen
    )


def revoke(conn: Connection, token: str, *, now: datetime) -> bool:
    s = admin_sessions
    return (
        conn.execute(
            update(s).where(s.c.id == token_hash(token), s.c.revoked_at.is_(None)).values(revoked_at=now)
        ).rowcount
        == 1
    )
