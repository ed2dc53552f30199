"""admin console: login state of admin accounts (TOTP replay step, failure windows), CSRF of sessions

``admin_users`` gains the time step of the last accepted TOTP code (a code is accepted once), the start of
the failed-login and bad-TOTP windows (lockout after 5 failures in 5 minutes; a critical event after 3 bad
codes), when the password was set, when MFA was enrolled, and when the account was disabled.
``admin_sessions`` gains the hash of the session's CSRF token. See docs/console.md.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 06:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("admin_users") as batch_op:
        batch_op.add_column(
            sa.Column(
                "totp_last_step",
                sa.BigInteger(),
                comment="time step of the last accepted TOTP code (no replay)",
            )
        )
        batch_op.add_column(sa.Column("failed_since", _TS, comment="start of the failed-login window"))
        batch_op.add_column(sa.Column("totp_failures", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("totp_failed_since", _TS, comment="start of the bad-TOTP window"))
        batch_op.add_column(sa.Column("password_changed_at", _TS))
        batch_op.add_column(sa.Column("mfa_enrolled_at", _TS))
        batch_op.add_column(sa.Column("disabled_at", _TS))
    with op.batch_alter_table("admin_sessions") as batch_op:
        batch_op.add_column(
            sa.Column(
                "csrf_hash",
                sa.String(length=64),
                comment="sha256 of the session's CSRF token (sent on every change)",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("admin_sessions") as batch_op:
        batch_op.drop_column("csrf_hash")
    with op.batch_alter_table("admin_users") as batch_op:
        for name in (
            "disabled_at",
            "mfa_enrolled_at",
            "password_changed_at",
            "totp_failed_since",
            "totp_failures",
            "failed_since",
            "totp_last_step",
        ):
            batch_op.drop_column(name)
