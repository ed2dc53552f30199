"""Every change to a security control is one admin_audit_log row, written in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from ticketguard.tables import admin_audit_log


def audit(
    conn: Connection,
    *,
    actor: str,
    action: str,
    now: datetime,
    details: dict[str, Any],
    ip_address: str | None = None,
) -> None:
    conn.execute(
        insert(admin_audit_log).values(
            admin_user=actor[:64],
            action=action[:128],
            ip_address=ip_address,
            metadata=details,
            timestamp=now,
        )
    )
