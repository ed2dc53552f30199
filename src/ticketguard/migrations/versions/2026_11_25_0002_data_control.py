"""data control: job runs and worker lock, data-quality results, admin sessions, audit archive, and the
event_analytics / wallet_segments reporting views

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("job_name", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False, comment="schedule | manual"),
        sa.Column(
            "status",
            sa.String(length=16),
            nullable=False,
            comment="running | succeeded | failed | skipped | abandoned",
        ),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("counts", _JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("runner", sa.String(length=128), nullable=True, comment="host:pid that ran it"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
    )
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.create_index("idx_job_runs_name_started", ["job_name", "started_at"], unique=False)
        batch_op.create_index("idx_job_runs_status", ["status"], unique=False)

    op.create_table(
        "worker_locks",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("acquired_at", _TS, nullable=False),
        sa.Column("heartbeat_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_locks")),
    )

    op.create_table(
        "data_quality_results",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False, comment="one id per data-quality run"),
        sa.Column("check_name", sa.String(length=64), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False, comment="pass | fail | skipped"),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("observed", sa.Float(), nullable=True),
        sa.Column("expected", sa.String(length=200), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", _JSON, nullable=True),
        sa.Column("checked_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_quality_results")),
    )
    with op.batch_alter_table("data_quality_results", schema=None) as batch_op:
        batch_op.create_index("idx_data_quality_results_check_ts", ["check_name", "checked_at"], unique=False)
        batch_op.create_index("idx_data_quality_results_run", ["run_id"], unique=False)

    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.String(length=64), nullable=False, comment="sha256 of the session token"),
        sa.Column("admin_user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("user_agent_hash", sa.String(length=64), nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["admin_user_id"],
            ["admin_users.id"],
            name=op.f("fk_admin_sessions_admin_user_id_admin_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_sessions")),
    )
    with op.batch_alter_table("admin_sessions", schema=None) as batch_op:
        batch_op.create_index("idx_admin_sessions_user", ["admin_user_id"], unique=False)
        batch_op.create_index("idx_admin_sessions_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "admin_audit_log_archive",
        sa.Column("id", _ID, autoincrement=False, nullable=False),
        sa.Column("admin_user", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=128), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("metadata", _JSON, nullable=True),
        sa.Column("timestamp", _TS, server_default=sa.func.now(), nullable=False),
        sa.Column("archived_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_audit_log_archive")),
    )
    with op.batch_alter_table("admin_audit_log_archive", schema=None) as batch_op:
        batch_op.create_index("idx_admin_audit_log_archive_timestamp", ["timestamp"], unique=False)

    _create_views()


def downgrade() -> None:
    _drop_views()
    with op.batch_alter_table("admin_audit_log_archive", schema=None) as batch_op:
        batch_op.drop_index("idx_admin_audit_log_archive_timestamp")
    op.drop_table("admin_audit_log_archive")
    with op.batch_alter_table("admin_sessions", schema=None) as batch_op:
        batch_op.drop_index("idx_admin_sessions_expires_at")
        batch_op.drop_index("idx_admin_sessions_user")
    op.drop_table("admin_sessions")
    with op.batch_alter_table("data_quality_results", schema=None) as batch_op:
        batch_op.drop_index("idx_data_quality_results_run")
        batch_op.drop_index("idx_data_quality_results_check_ts")
    op.drop_table("data_quality_results")
    op.drop_table("worker_locks")
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.drop_index("idx_job_runs_status")
        batch_op.drop_index("idx_job_runs_name_started")
    op.drop_table("job_runs")


# --- reporting views ------------------------------------------------------------------------------
# Materialized views with unique indexes on PostgreSQL (refreshed CONCURRENTLY: readers are never
# blocked); tables of the same shape on SQLite, refreshed by ticketguard.views with the same query in one
# transaction. Both read live + archive rows, so retention moving rows never changes a figure.
# The rules (what counts as sold, the segment thresholds) are documented in docs/data-control.md and must
# stay identical to the SQLite queries in ticketguard/views/queries.py.

EVENT_ANALYTICS_PG = """
CREATE MATERIALIZED VIEW event_analytics AS
WITH tx AS (
    SELECT transaction_id, event_id, price_paid, is_resale, status, timestamp FROM transactions
    UNION ALL
    SELECT transaction_id, event_id, price_paid, is_resale, status, timestamp FROM transactions_archive
), fp AS (
    SELECT transaction_id, fraud_score, decision FROM fraud_predictions
    UNION ALL
    SELECT transaction_id, fraud_score, decision FROM fraud_predictions_archive
), s AS (
    SELECT tx.*, fp.fraud_score, fp.decision,
           (COALESCE(fp.decision, '') <> 'BLOCKED'
            AND COALESCE(tx.status, 'completed') NOT IN ('failed', 'cancelled', 'refunded', 'reverted', 'blocked')
           ) AS counted
    FROM tx LEFT JOIN fp ON fp.transaction_id = tx.transaction_id
)
SELECT
    e.event_id,
    e.name,
    e.capacity,
    e.face_value,
    e.starts_at,
    COALESCE(SUM(CASE WHEN s.counted AND NOT s.is_resale THEN 1 ELSE 0 END), 0)::integer AS primary_sold,
    (COALESCE(SUM(CASE WHEN s.counted AND NOT s.is_resale THEN 1 ELSE 0 END), 0)::double precision
        / e.capacity) AS sold_ratio,
    COALESCE(SUM(CASE WHEN s.counted AND NOT s.is_resale THEN s.price_paid END), 0)::numeric(28, 8)
        AS primary_revenue,
    COALESCE(SUM(CASE WHEN s.counted AND s.is_resale AND s.price_paid IS NOT NULL THEN 1 ELSE 0 END), 0)::integer
        AS resale_count,
    COALESCE(SUM(CASE WHEN s.counted AND s.is_resale THEN s.price_paid END), 0)::numeric(28, 8) AS resale_revenue,
    AVG(CASE WHEN s.counted AND s.is_resale AND s.price_paid IS NOT NULL AND e.face_value > 0
             THEN (s.price_paid - e.face_value) / e.face_value END)::double precision AS avg_resale_markup,
    COALESCE(SUM(CASE WHEN s.counted AND s.is_resale AND s.price_paid IS NULL THEN 1 ELSE 0 END), 0)::integer
        AS transfer_count,
    COALESCE(SUM(CASE WHEN s.decision IS NOT NULL THEN 1 ELSE 0 END), 0)::integer AS scored_count,
    COALESCE(SUM(CASE WHEN s.decision = 'APPROVED' THEN 1 ELSE 0 END), 0)::integer AS approved_count,
    COALESCE(SUM(CASE WHEN s.decision = 'REQUIRE_2FA' THEN 1 ELSE 0 END), 0)::integer AS require_2fa_count,
    COALESCE(SUM(CASE WHEN s.decision = 'MANUAL_REVIEW' THEN 1 ELSE 0 END), 0)::integer AS manual_review_count,
    COALESCE(SUM(CASE WHEN s.decision = 'BLOCKED' THEN 1 ELSE 0 END), 0)::integer AS blocked_count,
    AVG(s.fraud_score)::double precision AS avg_fraud_score,
    MIN(s.timestamp) AS first_transaction_at,
    MAX(s.timestamp) AS last_transaction_at,
    now() AS refreshed_at
FROM events e
LEFT JOIN s ON s.event_id = e.event_id
GROUP BY e.event_id, e.name, e.capacity, e.face_value, e.starts_at
WITH DATA
"""

WALLET_SEGMENTS_PG = """
CREATE MATERIALIZED VIEW wallet_segments AS
WITH tx AS (
    SELECT transaction_id, wallet_address, seller_address, event_id, price_paid, is_resale, status, timestamp
    FROM transactions
    UNION ALL
    SELECT transaction_id, wallet_address, seller_address, event_id, price_paid, is_resale, status, timestamp
    FROM transactions_archive
), fp AS (
    SELECT transaction_id, fraud_score, decision FROM fraud_predictions
    UNION ALL
    SELECT transaction_id, fraud_score, decision FROM fraud_predictions_archive
), s AS (
    SELECT tx.*, fp.fraud_score, fp.decision,
           (COALESCE(fp.decision, '') <> 'BLOCKED'
            AND COALESCE(tx.status, 'completed') NOT IN ('failed', 'cancelled', 'refunded', 'reverted', 'blocked')
           ) AS counted,
           tx.timestamp > now() - INTERVAL '365 days' AS recent
    FROM tx LEFT JOIN fp ON fp.transaction_id = tx.transaction_id
), activity AS (
    SELECT s.wallet_address AS wallet_address, 'buy' AS role, s.event_id, s.price_paid, s.timestamp,
           s.counted, s.recent, s.decision, s.fraud_score, NULL::double precision AS markup
    FROM s
    UNION ALL
    SELECT s.seller_address, 'sell', s.event_id, s.price_paid, s.timestamp, s.counted, s.recent, NULL, NULL,
           CASE WHEN s.price_paid IS NOT NULL AND e.face_value > 0
                THEN ((s.price_paid - e.face_value) / e.face_value)::double precision END
    FROM s LEFT JOIN events e ON e.event_id = s.event_id
    WHERE s.is_resale AND s.seller_address IS NOT NULL
), m AS (
    SELECT
        wallet_address,
        MIN(timestamp) AS first_seen_at,
        MAX(timestamp) AS last_seen_at,
        SUM(CASE WHEN role = 'buy' AND counted AND recent THEN 1 ELSE 0 END)::integer AS tickets_bought_365d,
        COALESCE(SUM(CASE WHEN role = 'buy' AND counted AND recent THEN price_paid END), 0)::numeric(28, 8)
            AS spend_365d,
        COUNT(DISTINCT CASE WHEN role = 'buy' AND counted AND recent THEN event_id END)::integer AS events_365d,
        SUM(CASE WHEN role = 'sell' AND counted AND recent AND price_paid IS NOT NULL THEN 1 ELSE 0 END)::integer
            AS resales_sold_365d,
        AVG(CASE WHEN role = 'sell' AND counted AND recent THEN markup END)::double precision AS avg_sell_markup,
        SUM(CASE WHEN role = 'buy' AND decision = 'BLOCKED' THEN 1 ELSE 0 END)::integer AS blocked_count,
        SUM(CASE WHEN role = 'buy' AND decision IN ('REQUIRE_2FA', 'MANUAL_REVIEW') THEN 1 ELSE 0 END)::integer
            AS challenged_count,
        AVG(fraud_score)::double precision AS avg_fraud_score
    FROM activity
    GROUP BY wallet_address
)
SELECT
    m.*,
    (a.wallet_address IS NOT NULL) AS allowlisted,
    CASE
        WHEN a.wallet_address IS NOT NULL THEN 'vip'
        WHEN m.first_seen_at > now() - INTERVAL '30 days' THEN 'new'
        WHEN m.tickets_bought_365d >= 10 AND m.spend_365d >= 1000 THEN 'vip'
        WHEN m.tickets_bought_365d >= 3 THEN 'regular'
        ELSE 'casual'
    END AS segment,
    CASE
        WHEN m.resales_sold_365d >= 3 AND m.resales_sold_365d >= 0.5 * m.tickets_bought_365d
             AND COALESCE(m.avg_sell_markup, 0) >= 0.2 THEN 'scalper'
        WHEN m.tickets_bought_365d >= 5 AND m.events_365d >= 3
             AND m.resales_sold_365d <= 0.1 * m.tickets_bought_365d THEN 'collector'
        ELSE 'none'
    END AS behaviour,
    now() AS refreshed_at
FROM m
LEFT JOIN allowlisted_wallets a
    ON a.wallet_address = m.wallet_address AND (a.expires_at IS NULL OR a.expires_at > now())
WITH DATA
"""


def _create_views() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(EVENT_ANALYTICS_PG)
        op.execute("CREATE UNIQUE INDEX idx_event_analytics_event ON event_analytics (event_id)")
        op.execute(WALLET_SEGMENTS_PG)
        op.execute("CREATE UNIQUE INDEX idx_wallet_segments_wallet ON wallet_segments (wallet_address)")
        op.execute("CREATE INDEX idx_wallet_segments_segment ON wallet_segments (segment, behaviour)")
        return
    op.create_table(
        "event_analytics",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("face_value", sa.Numeric(precision=18, scale=8), nullable=False),
        sa.Column("starts_at", _TS, nullable=False),
        sa.Column("primary_sold", sa.Integer(), nullable=False),
        sa.Column("sold_ratio", sa.Float(), nullable=False),
        sa.Column("primary_revenue", sa.Numeric(precision=28, scale=8), nullable=False),
        sa.Column("resale_count", sa.Integer(), nullable=False),
        sa.Column("resale_revenue", sa.Numeric(precision=28, scale=8), nullable=False),
        sa.Column("avg_resale_markup", sa.Float(), nullable=True),
        sa.Column("transfer_count", sa.Integer(), nullable=False),
        sa.Column("scored_count", sa.Integer(), nullable=False),
        sa.Column("approved_count", sa.Integer(), nullable=False),
        sa.Column("require_2fa_count", sa.Integer(), nullable=False),
        sa.Column("manual_review_count", sa.Integer(), nullable=False),
        sa.Column("blocked_count", sa.Integer(), nullable=False),
        sa.Column("avg_fraud_score", sa.Float(), nullable=True),
        sa.Column("first_transaction_at", _TS, nullable=True),
        sa.Column("last_transaction_at", _TS, nullable=True),
        sa.Column("refreshed_at", _TS, nullable=False),
    )
    op.create_index("idx_event_analytics_event", "event_analytics", ["event_id"], unique=True)
    op.create_table(
        "wallet_segments",
        sa.Column("wallet_address", sa.String(length=42), nullable=False),
        sa.Column("first_seen_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS, nullable=False),
        sa.Column("tickets_bought_365d", sa.Integer(), nullable=False),
        sa.Column("spend_365d", sa.Numeric(precision=28, scale=8), nullable=False),
        sa.Column("events_365d", sa.Integer(), nullable=False),
        sa.Column("resales_sold_365d", sa.Integer(), nullable=False),
        sa.Column("avg_sell_markup", sa.Float(), nullable=True),
        sa.Column("blocked_count", sa.Integer(), nullable=False),
        sa.Column("challenged_count", sa.Integer(), nullable=False),
        sa.Column("avg_fraud_score", sa.Float(), nullable=True),
        sa.Column("allowlisted", sa.Boolean(), nullable=False),
        sa.Column("segment", sa.String(length=16), nullable=False),
        sa.Column("behaviour", sa.String(length=16), nullable=False),
        sa.Column("refreshed_at", _TS, nullable=False),
    )
    op.create_index("idx_wallet_segments_wallet", "wallet_segments", ["wallet_address"], unique=True)
    op.create_index("idx_wallet_segments_segment", "wallet_segments", ["segment", "behaviour"], unique=False)


def _drop_views() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP MATERIALIZED VIEW IF EXISTS wallet_segments")
        op.execute("DROP MATERIALIZED VIEW IF EXISTS event_analytics")
        return
    op.drop_index("idx_wallet_segments_segment", table_name="wallet_segments")
    op.drop_index("idx_wallet_segments_wallet", table_name="wallet_segments")
    op.drop_table("wallet_segments")
    op.drop_index("idx_event_analytics_event", table_name="event_analytics")
    op.drop_table("event_analytics")
