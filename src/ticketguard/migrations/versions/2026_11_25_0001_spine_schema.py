"""spine schema: the deployment guide's tables plus events, labels, registry, admin, lists, chain cursor

Revision ID: 0001
Revises:
Create Date: 2026-11-25 06:47:56.390744
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "admin_audit_log",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("admin_user", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=128), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("timestamp", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_audit_log")),
    )
    with op.batch_alter_table("admin_audit_log", schema=None) as batch_op:
        batch_op.create_index("idx_admin_audit_log_action_ts", ["action", "timestamp"], unique=False)
        batch_op.create_index("idx_admin_audit_log_timestamp", ["timestamp"], unique=False)

    op.create_table(
        "admin_users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "totp_secret",
            sa.String(length=255),
            nullable=True,
            comment="encrypted at rest by the admin module",
        ),
        sa.Column("role", sa.String(length=16), server_default="analyst", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_users")),
        sa.UniqueConstraint("username", name=op.f("uq_admin_users_username")),
    )
    op.create_table(
        "allowlisted_wallets",
        sa.Column("wallet_address", sa.String(length=42), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("wallet_address", name=op.f("pk_allowlisted_wallets")),
    )
    op.create_table(
        "blacklisted_wallets",
        sa.Column("wallet_address", sa.String(length=42), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column(
            "added_by",
            sa.String(length=64),
            nullable=True,
            comment="admin user, client or rule that added it",
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True, comment="NULL: until removed"),
        sa.PrimaryKeyConstraint("wallet_address", name=op.f("pk_blacklisted_wallets")),
    )
    op.create_table(
        "chain_cursor",
        sa.Column("name", sa.String(length=128), nullable=False, comment="chain id + contract address"),
        sa.Column("last_block", sa.BigInteger(), nullable=False),
        sa.Column("last_block_hash", sa.String(length=66), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_chain_cursor")),
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("organizer_id", sa.String(length=64), nullable=False),
        sa.Column("venue", sa.String(length=200), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("face_value", sa.Numeric(precision=18, scale=8), nullable=False),
        sa.Column("on_sale_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("capacity > 0", name=op.f("ck_events_capacity_positive")),
        sa.CheckConstraint("face_value >= 0", name=op.f("ck_events_face_value_not_negative")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("idx_events_organizer", ["organizer_id"], unique=False)
        batch_op.create_index("idx_events_starts_at", ["starts_at"], unique=False)

    op.create_table(
        "fraud_labels",
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("is_fraud", sa.Boolean(), nullable=False),
        sa.Column(
            "pattern",
            sa.String(length=32),
            nullable=True,
            comment="fraud pattern or legit look-alike tag, when known",
        ),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column(
            "labelled_at", sa.DateTime(timezone=True), nullable=False, comment="when the label became known"
        ),
        sa.Column("labelled_by", sa.String(length=64), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("transaction_id", name=op.f("pk_fraud_labels")),
    )
    with op.batch_alter_table("fraud_labels", schema=None) as batch_op:
        batch_op.create_index("idx_fraud_labels_fraud", ["is_fraud"], unique=False)
        batch_op.create_index("idx_fraud_labels_labelled_at", ["labelled_at"], unique=False)

    op.create_table(
        "fraud_predictions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("fraud_score", sa.Float(), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column(
            "features",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("model_version", sa.String(length=32), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column(
            "top_features",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("degraded", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("degraded_reason", sa.String(length=128), nullable=True),
        sa.Column(
            "request_hash",
            sa.String(length=64),
            nullable=True,
            comment="sha256 of the canonical request, for idempotency",
        ),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fraud_predictions")),
    )
    with op.batch_alter_table("fraud_predictions", schema=None) as batch_op:
        batch_op.create_index("idx_fraud_predictions_decision_ts", ["decision", "timestamp"], unique=False)
        batch_op.create_index("idx_fraud_predictions_timestamp", ["timestamp"], unique=False)
        batch_op.create_index("idx_fraud_predictions_txn", ["transaction_id"], unique=True)

    op.create_table(
        "fraud_predictions_archive",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("fraud_score", sa.Float(), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column(
            "features",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("model_version", sa.String(length=32), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column(
            "top_features",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("degraded", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("degraded_reason", sa.String(length=128), nullable=True),
        sa.Column(
            "request_hash",
            sa.String(length=64),
            nullable=True,
            comment="sha256 of the canonical request, for idempotency",
        ),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fraud_predictions_archive")),
    )
    with op.batch_alter_table("fraud_predictions_archive", schema=None) as batch_op:
        batch_op.create_index("idx_fraud_predictions_archive_timestamp", ["timestamp"], unique=False)
        batch_op.create_index("idx_fraud_predictions_archive_txn", ["transaction_id"], unique=True)

    op.create_table(
        "model_registry",
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("artifact_uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "feature_names",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "metrics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("training_window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("training_window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("n_rows", sa.Integer(), nullable=True),
        sa.Column("n_fraud", sa.Integer(), nullable=True),
        sa.Column(
            "library_versions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_model_registry")),
    )
    op.create_table(
        "security_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("source_ip", sa.String(length=45), nullable=True),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("timestamp", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_events")),
    )
    with op.batch_alter_table("security_events", schema=None) as batch_op:
        batch_op.create_index("idx_security_events_timestamp", ["timestamp"], unique=False)
        batch_op.create_index("idx_security_events_type", ["event_type"], unique=False)
        batch_op.create_index("idx_security_events_type_ts", ["event_type", "timestamp"], unique=False)

    op.create_table(
        "transactions",
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("wallet_address", sa.String(length=42), nullable=False, comment="buyer"),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=True),
        sa.Column("price_paid", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("payment_method", sa.String(length=32), nullable=True),
        sa.Column("is_resale", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("seller_address", sa.String(length=42), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=16), server_default="api", nullable=False),
        sa.Column("chain_tx_hash", sa.String(length=66), nullable=True),
        sa.Column("chain_log_index", sa.Integer(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("transaction_id", name=op.f("pk_transactions")),
        sa.UniqueConstraint("chain_tx_hash", "chain_log_index", name="uq_transactions_chain_log"),
    )
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.create_index("idx_transactions_event", ["event_id"], unique=False)
        batch_op.create_index("idx_transactions_event_ts", ["event_id", "timestamp"], unique=False)
        batch_op.create_index("idx_transactions_ip_ts", ["ip_address", "timestamp"], unique=False)
        batch_op.create_index("idx_transactions_seller_ts", ["seller_address", "timestamp"], unique=False)
        batch_op.create_index("idx_transactions_ticket_ts", ["ticket_id", "timestamp"], unique=False)
        batch_op.create_index("idx_transactions_timestamp", ["timestamp"], unique=False)
        batch_op.create_index("idx_transactions_wallet", ["wallet_address"], unique=False)
        batch_op.create_index("idx_transactions_wallet_ts", ["wallet_address", "timestamp"], unique=False)

    op.create_table(
        "transactions_archive",
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("wallet_address", sa.String(length=42), nullable=False, comment="buyer"),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=True),
        sa.Column("price_paid", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("payment_method", sa.String(length=32), nullable=True),
        sa.Column("is_resale", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("seller_address", sa.String(length=42), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=16), server_default="api", nullable=False),
        sa.Column("chain_tx_hash", sa.String(length=66), nullable=True),
        sa.Column("chain_log_index", sa.Integer(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("transaction_id", name=op.f("pk_transactions_archive")),
        sa.UniqueConstraint("chain_tx_hash", "chain_log_index", name="uq_transactions_archive_chain_log"),
    )
    with op.batch_alter_table("transactions_archive", schema=None) as batch_op:
        batch_op.create_index("idx_transactions_archive_event", ["event_id"], unique=False)
        batch_op.create_index("idx_transactions_archive_event_ts", ["event_id", "timestamp"], unique=False)
        batch_op.create_index("idx_transactions_archive_ip_ts", ["ip_address", "timestamp"], unique=False)
        batch_op.create_index(
            "idx_transactions_archive_seller_ts", ["seller_address", "timestamp"], unique=False
        )
        batch_op.create_index("idx_transactions_archive_ticket_ts", ["ticket_id", "timestamp"], unique=False)
        batch_op.create_index("idx_transactions_archive_timestamp", ["timestamp"], unique=False)
        batch_op.create_index("idx_transactions_archive_wallet", ["wallet_address"], unique=False)
        batch_op.create_index(
            "idx_transactions_archive_wallet_ts", ["wallet_address", "timestamp"], unique=False
        )

    op.create_table(
        "model_deployments",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False, comment="promote | rollback"),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("deployed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version"],
            ["model_registry.version"],
            name=op.f("fk_model_deployments_model_version_model_registry"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_deployments")),
    )
    with op.batch_alter_table("model_deployments", schema=None) as batch_op:
        batch_op.create_index("idx_model_deployments_deployed_at", ["deployed_at"], unique=False)

    _create_kpi_hourly()


def downgrade() -> None:
    _drop_kpi_hourly()
    with op.batch_alter_table("model_deployments", schema=None) as batch_op:
        batch_op.drop_index("idx_model_deployments_deployed_at")

    op.drop_table("model_deployments")
    with op.batch_alter_table("transactions_archive", schema=None) as batch_op:
        batch_op.drop_index("idx_transactions_archive_wallet_ts")
        batch_op.drop_index("idx_transactions_archive_wallet")
        batch_op.drop_index("idx_transactions_archive_timestamp")
        batch_op.drop_index("idx_transactions_archive_ticket_ts")
        batch_op.drop_index("idx_transactions_archive_seller_ts")
        batch_op.drop_index("idx_transactions_archive_ip_ts")
        batch_op.drop_index("idx_transactions_archive_event_ts")
        batch_op.drop_index("idx_transactions_archive_event")

    op.drop_table("transactions_archive")
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_index("idx_transactions_wallet_ts")
        batch_op.drop_index("idx_transactions_wallet")
        batch_op.drop_index("idx_transactions_timestamp")
        batch_op.drop_index("idx_transactions_ticket_ts")
        batch_op.drop_index("idx_transactions_seller_ts")
        batch_op.drop_index("idx_transactions_ip_ts")
        batch_op.drop_index("idx_transactions_event_ts")
        batch_op.drop_index("idx_transactions_event")

    op.drop_table("transactions")
    with op.batch_alter_table("security_events", schema=None) as batch_op:
        batch_op.drop_index("idx_security_events_type_ts")
        batch_op.drop_index("idx_security_events_type")
        batch_op.drop_index("idx_security_events_timestamp")

    op.drop_table("security_events")
    op.drop_table("model_registry")
    with op.batch_alter_table("fraud_predictions_archive", schema=None) as batch_op:
        batch_op.drop_index("idx_fraud_predictions_archive_txn")
        batch_op.drop_index("idx_fraud_predictions_archive_timestamp")

    op.drop_table("fraud_predictions_archive")
    with op.batch_alter_table("fraud_predictions", schema=None) as batch_op:
        batch_op.drop_index("idx_fraud_predictions_txn")
        batch_op.drop_index("idx_fraud_predictions_timestamp")
        batch_op.drop_index("idx_fraud_predictions_decision_ts")

    op.drop_table("fraud_predictions")
    with op.batch_alter_table("fraud_labels", schema=None) as batch_op:
        batch_op.drop_index("idx_fraud_labels_labelled_at")
        batch_op.drop_index("idx_fraud_labels_fraud")

    op.drop_table("fraud_labels")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("idx_events_starts_at")
        batch_op.drop_index("idx_events_organizer")

    op.drop_table("events")
    op.drop_table("chain_cursor")
    op.drop_table("blacklisted_wallets")
    op.drop_table("allowlisted_wallets")
    op.drop_table("admin_users")
    with op.batch_alter_table("admin_audit_log", schema=None) as batch_op:
        batch_op.drop_index("idx_admin_audit_log_timestamp")
        batch_op.drop_index("idx_admin_audit_log_action_ts")

    op.drop_table("admin_audit_log")


# kpi_hourly: the guide's definition. A materialized view with a unique index on PostgreSQL, so it can be
# refreshed CONCURRENTLY (readers never blocked); on SQLite a table of the same shape that
# ticketguard.kit.views refreshes with the same query in one transaction.
KPI_HOURLY_PG = """
CREATE MATERIALIZED VIEW kpi_hourly AS
SELECT
    DATE_TRUNC('hour', t.timestamp) AS hour,
    COUNT(DISTINCT t.transaction_id) AS total_transactions,
    COUNT(DISTINCT t.wallet_address) AS unique_wallets,
    SUM(t.price_paid) AS total_revenue,
    AVG(fp.fraud_score) AS avg_fraud_score,
    SUM(CASE WHEN fp.decision = 'BLOCKED' THEN 1 ELSE 0 END) AS blocked_count,
    SUM(CASE WHEN fp.decision = 'APPROVED' THEN 1 ELSE 0 END) AS approved_count
FROM transactions t
LEFT JOIN fraud_predictions fp ON t.transaction_id = fp.transaction_id
WHERE t.timestamp > NOW() - INTERVAL '7 days'
GROUP BY 1
WITH DATA
"""


def _create_kpi_hourly() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(KPI_HOURLY_PG)
        op.execute("CREATE UNIQUE INDEX idx_kpi_hourly_hour ON kpi_hourly (hour)")
    else:
        op.create_table(
            "kpi_hourly",
            sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
            sa.Column("total_transactions", sa.Integer(), nullable=False),
            sa.Column("unique_wallets", sa.Integer(), nullable=False),
            sa.Column("total_revenue", sa.Numeric(precision=28, scale=8), nullable=True),
            sa.Column("avg_fraud_score", sa.Float(), nullable=True),
            sa.Column("blocked_count", sa.Integer(), nullable=True),
            sa.Column("approved_count", sa.Integer(), nullable=True),
        )
        op.create_index("idx_kpi_hourly_hour", "kpi_hourly", ["hour"], unique=True)


def _drop_kpi_hourly() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP MATERIALIZED VIEW IF EXISTS kpi_hourly")
    else:
        op.drop_index("idx_kpi_hourly_hour", table_name="kpi_hourly")
        op.drop_table("kpi_hourly")
