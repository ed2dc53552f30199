"""alerting: rule state, history and silences; security_responses changes notified to the API workers

The tighten_thresholds action is a `security_responses` row the API reads as a runtime threshold override;
on PostgreSQL a statement trigger on that table now sends the same ``NOTIFY ticketguard_lists`` as the list
tables (migration 0006), so every API worker re-reads the override within milliseconds. On SQLite the
workers re-read it every few seconds.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 06:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "alert_state",
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False, comment="inactive|pending|firing|resolved"),
        sa.Column("since", _TS, comment="when the current state began"),
        sa.Column("value", sa.Float(), comment="the metric at the last evaluation (NULL: no data)"),
        sa.Column("detail", sa.Text(), comment="how the value was measured, or why there is none"),
        sa.Column("firing_id", sa.BigInteger(), comment="alert_history id of the current (or last) firing"),
        sa.Column(
            "notified",
            sa.Boolean(),
            server_default=sa.false(),
            nullable=False,
            comment="the trigger was queued",
        ),
        sa.Column("last_notified_at", _TS),
        sa.Column("repeats", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_evaluated_at", _TS),
        sa.CheckConstraint(
            "state IN ('inactive', 'pending', 'firing', 'resolved')", name=op.f("ck_alert_state_state")
        ),
        sa.PrimaryKeyConstraint("rule", name=op.f("pk_alert_state")),
    )
    op.create_table(
        "alert_history",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column(
            "transition",
            sa.String(length=16),
            nullable=False,
            comment="pending|firing|resolved|inactive|test",
        ),
        sa.Column("value", sa.Float()),
        sa.Column("threshold", sa.Float()),
        sa.Column("condition", sa.Text()),
        sa.Column("firing_id", sa.BigInteger(), comment="the firing this row belongs to"),
        sa.Column("details", _JSON),
        sa.Column("at", _TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_history")),
    )
    op.create_index("idx_alert_history_rule_at", "alert_history", ["rule", "at"])
    op.create_index("idx_alert_history_at", "alert_history", ["at"])
    op.create_table(
        "alert_silences",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("starts_at", _TS, nullable=False),
        sa.Column("ends_at", _TS, nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_silences")),
    )
    op.create_index("idx_alert_silences_rule_ends", "alert_silences", ["rule", "ends_at"])
    if op.get_bind().dialect.name == "postgresql":
        # the function of migration 0006: NOTIFY ticketguard_lists with the table's name
        op.execute(
            "CREATE TRIGGER security_responses_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            "ON security_responses FOR EACH STATEMENT EXECUTE FUNCTION ticketguard_lists_changed()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS security_responses_notify ON security_responses")
    op.drop_index("idx_alert_silences_rule_ends", table_name="alert_silences")
    op.drop_table("alert_silences")
    op.drop_index("idx_alert_history_at", table_name="alert_history")
    op.drop_index("idx_alert_history_rule_at", table_name="alert_history")
    op.drop_table("alert_history")
    op.drop_table("alert_state")
