"""features: daily wallet transfer graph snapshots (PageRank) for social_graph_centrality

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "wallet_graph_snapshots",
        sa.Column("snapshot_at", _TS, nullable=False, comment="00:00 UTC of the day it is for"),
        sa.Column("computed_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.Column("edges", sa.Integer(), nullable=False),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("damping", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_at", name=op.f("pk_wallet_graph_snapshots")),
    )
    op.create_table(
        "wallet_graph_scores",
        sa.Column("snapshot_at", _TS, nullable=False),
        sa.Column("wallet_address", sa.String(length=42), nullable=False),
        sa.Column(
            "centrality", sa.Float(), nullable=False, comment="PageRank × node count (1 = average wallet)"
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_at"],
            ["wallet_graph_snapshots.snapshot_at"],
            name=op.f("fk_wallet_graph_scores_snapshot_at_wallet_graph_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_at", "wallet_address", name=op.f("pk_wallet_graph_scores")),
    )


def downgrade() -> None:
    op.drop_table("wallet_graph_scores")
    op.drop_table("wallet_graph_snapshots")
