"""delivery: the outbox — review callbacks and alert notifications, sent at least once by the worker

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column(
            "channel", sa.String(length=32), nullable=False, comment="webhook, pagerduty, slack, email, ..."
        ),
        sa.Column(
            "destination",
            sa.Text(),
            server_default="",
            nullable=False,
            comment="URL or address; '' = default",
        ),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column(
            "ordering_key", sa.String(length=128), comment="rows with the same key are sent in id order"
        ),
        sa.Column("source", sa.String(length=32), nullable=False, comment="review, alert, test, ..."),
        sa.Column(
            "status",
            sa.String(length=16),
            server_default="pending",
            nullable=False,
            comment="pending|sent|dead",
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            _TS,
            server_default=sa.func.now(),
            nullable=False,
            comment="due time; while a sender holds the row, the end of its lease",
        ),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.Column("sent_at", _TS),
        sa.CheckConstraint("status IN ('pending', 'sent', 'dead')", name=op.f("ck_outbox_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    op.create_index("idx_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_index("idx_outbox_ordering", "outbox", ["ordering_key", "id"])


def downgrade() -> None:
    op.drop_index("idx_outbox_ordering", table_name="outbox")
    op.drop_index("idx_outbox_due", table_name="outbox")
    op.drop_table("outbox")
