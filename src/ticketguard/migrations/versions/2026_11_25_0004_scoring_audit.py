"""scoring: one audit record per scoring decision, linked to its transaction and prediction

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "scoring_audit",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False, comment="fraud_decision"),
        sa.Column("actor", sa.String(length=64), comment="API client that asked (set by the security layer)"),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("fraud_score", sa.Float()),
        sa.Column("model_version", sa.String(length=32)),
        sa.Column("degraded", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("metadata", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")),
        sa.Column("timestamp", _TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_audit")),
    )
    # One audit row per answered transaction: the invariant the load checks count on.
    op.create_index("idx_scoring_audit_txn", "scoring_audit", ["transaction_id"], unique=True)
    op.create_index("idx_scoring_audit_timestamp", "scoring_audit", ["timestamp"])


def downgrade() -> None:
    op.drop_index("idx_scoring_audit_timestamp", table_name="scoring_audit")
    op.drop_index("idx_scoring_audit_txn", table_name="scoring_audit")
    op.drop_table("scoring_audit")
