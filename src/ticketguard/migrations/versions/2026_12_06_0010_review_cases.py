"""reviews: review_cases — claims and decisions of MANUAL_REVIEW cases (docs/reviews.md)

A case is a MANUAL_REVIEW prediction; its row here is created at the first claim (the scoring path writes
nothing new). Two analysts cannot decide one case: claims and decisions are conditional writes on this row.

Revision ID: 0010
Revises: 0009 (relinked to 0009 when the console's migration is merged)
Create Date: 2026-12-06 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "review_cases",
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, comment="open | claimed | decided"),
        sa.Column("claimed_by", sa.String(length=64)),
        sa.Column("claimed_at", _TS),
        sa.Column("claim_expires_at", _TS, comment="a claim past this is open again"),
        sa.Column("outcome", sa.String(length=16), comment="fraud | legitimate, once decided"),
        sa.Column("decided_by", sa.String(length=64)),
        sa.Column("decided_at", _TS),
        sa.Column("note", sa.Text()),
        sa.Column("created_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("status IN ('open', 'claimed', 'decided')", name=op.f("ck_review_cases_status")),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('fraud', 'legitimate')", name=op.f("ck_review_cases_outcome")
        ),
        sa.CheckConstraint(
            "(status = 'decided') = (outcome IS NOT NULL AND decided_at IS NOT NULL)",
            name=op.f("ck_review_cases_decided_has_outcome"),
        ),
        sa.PrimaryKeyConstraint("transaction_id", name=op.f("pk_review_cases")),
    )
    op.create_index("idx_review_cases_status_expires", "review_cases", ["status", "claim_expires_at"])
    op.create_index("idx_review_cases_decided_at", "review_cases", ["decided_at"])


def downgrade() -> None:
    op.drop_index("idx_review_cases_decided_at", table_name="review_cases")
    op.drop_index("idx_review_cases_status_expires", table_name="review_cases")
    op.drop_table("review_cases")
