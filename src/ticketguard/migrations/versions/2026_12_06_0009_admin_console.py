"""admin console: login state of admin accounts (TOTP replay step, failure windows), CSRF of sessions

``admin_users`` gains the time step of the last accepted TOTP code (a code is accepted once), the start of
the failed-login and bad-TOTP windows (lockout after 5 failures in 5 minutes; a critical event after 3 bad
codes), when the password was set, when MFA was enrolled, and when the account was disabled.
``admin_sessions`` gains the hash of the session's CSRF token. ``realised_hourly`` is a reporting view
(materialized on PostgreSQL, a refreshed table on SQLite, refreshed with the others every 5 minutes): per
hour of arrival of the last 8 days' labels, how many labelled decisions were flagged (BLOCKED or
MANUAL_REVIEW) and fraud — the console's realised precision/recall read it instead of joining every label
with its prediction (a scan of fraud_predictions at 1M rows). See docs/console.md.

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

REALISED_HOURLY_PG = """
CREATE MATERIALIZED VIEW realised_hourly AS
SELECT
    DATE_TRUNC('hour', lb.labelled_at) AS hour,
    COALESCE(fp.decision IN ('BLOCKED', 'MANUAL_REVIEW'), false) AS flagged,
    lb.is_fraud,
    COUNT(*) AS n
FROM fraud_labels lb
JOIN fraud_predictions fp ON fp.transaction_id = lb.transaction_id
WHERE lb.labelled_at > NOW() - INTERVAL '8 days'
GROUP BY 1, 2, 3
WITH DATA
"""


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

    if op.get_bind().dialect.name == "postgresql":
        op.execute(REALISED_HOURLY_PG)
        op.execute("CREATE UNIQUE INDEX idx_realised_hourly_key ON realised_hourly (hour, flagged, is_fraud)")
    else:
        op.create_table(
            "realised_hourly",
            sa.Column("hour", _TS, nullable=False),
            sa.Column("flagged", sa.Boolean(), nullable=False),
            sa.Column("is_fraud", sa.Boolean(), nullable=False),
            sa.Column("n", sa.Integer(), nullable=False),
        )
        op.create_index(
            "idx_realised_hourly_key", "realised_hourly", ["hour", "flagged", "is_fraud"], unique=True
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP MATERIALIZED VIEW IF EXISTS realised_hourly")
    else:
        op.drop_index("idx_realised_hourly_key", table_name="realised_hourly")
        op.drop_table("realised_hourly")
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
