"""The schema, as SQLAlchemy Core tables. Alembic migrations are the only way it reaches a database.

The deployment guide's `schema.sql` tables keep their names, columns and index names; columns we add say
why. `kpi_hourly` is a materialized view on PostgreSQL and a refreshed table on SQLite (see
`ticketguard.kit.views`), so it is declared in the migration, not here.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    true,
)

from ticketguard.kit.types import JSONType, Money, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

DECISIONS = ("APPROVED", "REQUIRE_2FA", "MANUAL_REVIEW", "BLOCKED")
TRANSACTION_SOURCES = ("api", "chain", "import", "simulator")
# analyst: a decision of the review queue (ticketguard.reviews)
LABEL_SOURCES = ("simulator", "import", "chargeback", "review", "chain", "analyst")


def _transaction_columns() -> list[Column]:
    return [
        Column("transaction_id", String(64), primary_key=True),
        Column("wallet_address", String(42), nullable=False, comment="buyer"),
        Column("event_id", String(64), nullable=False),
        Column("ticket_id", String(64)),
        Column("price_paid", Money),
        Column("payment_method", String(32)),
        Column("is_resale", Boolean, nullable=False, server_default=false()),
        Column("status", String(16)),
        Column("timestamp", UTCDateTime, nullable=False, server_default=func.now()),
        # Added: the counterparty of a resale, for wash-trading and blacklisted-counterparty features.
        Column("seller_address", String(42)),
        # Added: where the request came from, for wallets-per-IP and geo-velocity features.
        Column("ip_address", String(45)),
        Column("country", String(2)),
        Column("latitude", Float),
        Column("longitude", Float),
        Column("source", String(16), nullable=False, server_default="api"),
        # Added: on-chain provenance; unique together so the ETL can load idempotently.
        Column("chain_tx_hash", String(66)),
        Column("chain_log_index", Integer),
        Column("block_number", BigInteger),
    ]


def _transaction_indexes(table: str) -> list[Index | UniqueConstraint | CheckConstraint]:
    suffix = "" if table == "transactions" else "_archive"
    return [
        Index(f"idx_transactions{suffix}_wallet", "wallet_address"),
        Index(f"idx_transactions{suffix}_timestamp", "timestamp"),
        Index(f"idx_transactions{suffix}_event", "event_id"),
        # Feature look-ups are "this key, strictly before this time": composite indexes serve them.
        Index(f"idx_transactions{suffix}_wallet_ts", "wallet_address", "timestamp"),
        Index(f"idx_transactions{suffix}_event_ts", "event_id", "timestamp"),
        Index(f"idx_transactions{suffix}_ticket_ts", "ticket_id", "timestamp"),
        Index(f"idx_transactions{suffix}_ip_ts", "ip_address", "timestamp"),
        Index(f"idx_transactions{suffix}_seller_ts", "seller_address", "timestamp"),
        UniqueConstraint("chain_tx_hash", "chain_log_index", name=f"uq_transactions{suffix}_chain_log"),
    ]


transactions = Table("transactions", metadata, *_transaction_columns(), *_transaction_indexes("transactions"))

transactions_archive = Table(
    "transactions_archive",
    metadata,
    *_transaction_columns(),
    Column("archived_at", UTCDateTime, nullable=False, server_default=func.now()),
    *_transaction_indexes("transactions_archive"),
)


def _prediction_columns() -> list[Column]:
    return [
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("transaction_id", String(64), nullable=False),
        # Widened from the guide's DECIMAL(5,3): a stored score must reproduce its decision at the threshold.
        Column("fraud_score", Float),
        Column("decision", String(16)),
        Column("features", JSONType),
        Column("model_version", String(32)),
        Column("timestamp", UTCDateTime, nullable=False, server_default=func.now()),
        Column("confidence", Float),
        Column("top_features", JSONType),
        Column("reasons", JSONType),
        Column("degraded", Boolean, nullable=False, server_default=false()),
        Column("degraded_reason", String(128)),
        Column("request_hash", String(64), comment="sha256 of the canonical request, for idempotency"),
        Column("latency_ms", Float),
    ]


fraud_predictions = Table(
    "fraud_predictions",
    metadata,
    *_prediction_columns(),
    # Unique (the guide's index, made unique): one prediction per transaction is the idempotency invariant.
    Index("idx_fraud_predictions_txn", "transaction_id", unique=True),
    Index("idx_fraud_predictions_timestamp", "timestamp"),
    Index("idx_fraud_predictions_decision_ts", "decision", "timestamp"),
)

fraud_predictions_archive = Table(
    "fraud_predictions_archive",
    metadata,
    *_prediction_columns(),
    Column("archived_at", UTCDateTime, nullable=False, server_default=func.now()),
    Index("idx_fraud_predictions_archive_txn", "transaction_id", unique=True),
    Index("idx_fraud_predictions_archive_timestamp", "timestamp"),
)

security_events = Table(
    "security_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_type", String(32), nullable=False),
    Column("severity", String(16)),
    Column("source_ip", String(45)),
    Column("user_id", String(64)),
    Column("metadata", JSONType),
    Column("timestamp", UTCDateTime, nullable=False, server_default=func.now()),
    Index("idx_security_events_type", "event_type"),
    Index("idx_security_events_timestamp", "timestamp"),
    Index("idx_security_events_type_ts", "event_type", "timestamp"),
)

blacklisted_wallets = Table(
    "blacklisted_wallets",
    metadata,
    Column("wallet_address", String(42), primary_key=True),
    Column("reason", Text),
    Column("timestamp", UTCDateTime, nullable=False, server_default=func.now()),
    Column("added_by", String(64), comment="admin user, client or rule that added it"),
    Column("expires_at", UTCDateTime, comment="NULL: until removed"),
)

allowlisted_wallets = Table(
    "allowlisted_wallets",
    metadata,
    Column("wallet_address", String(42), primary_key=True),
    Column("reason", Text),
    Column("timestamp", UTCDateTime, nullable=False, server_default=func.now()),
    Column("added_by", String(64)),
    Column("expires_at", UTCDateTime),
)

admin_audit_log = Table(
    "admin_audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("admin_user", String(64)),
    Column("action", String(128)),
    Column("ip_address", String(45)),
    Column("metadata", JSONType),
    Column("timestamp", UTCDateTime, nullable=False, server_default=func.now()),
    Index("idx_admin_audit_log_timestamp", "timestamp"),
    Index("idx_admin_audit_log_action_ts", "action", "timestamp"),
)

events = Table(
    "events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("organizer_id", String(64), nullable=False),
    Column("venue", String(200)),
    Column("city", String(100)),
    Column("capacity", Integer, nullable=False),
    Column("face_value", Money, nullable=False),
    Column("on_sale_at", UTCDateTime, nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
    # issue 13 (import): capacity, face value and start derived from the imported sales, not given; the
    # features treat them as unknown so that no row sees facts computed from later rows (migration 0012).
    Column(
        "facts_derived",
        Boolean,
        nullable=False,
        server_default=false(),
        comment="capacity, face value and start were derived by an import from its sales: features "
        "treat them as unknown (point-in-time)",
    ),
    CheckConstraint("capacity > 0", name="capacity_positive"),
    CheckConstraint("face_value >= 0", name="face_value_not_negative"),
    Index("idx_events_starts_at", "starts_at"),
    Index("idx_events_organizer", "organizer_id"),
)

fraud_labels = Table(
    "fraud_labels",
    metadata,
    Column("transaction_id", String(64), primary_key=True),
    Column("is_fraud", Boolean, nullable=False),
    Column("pattern", String(32), comment="fraud pattern or legit look-alike tag, when known"),
    Column("source", String(16), nullable=False),
    Column("labelled_at", UTCDateTime, nullable=False, comment="when the label became known"),
    Column("labelled_by", String(64)),
    Column("notes", Text),
    Index("idx_fraud_labels_labelled_at", "labelled_at"),
    Index("idx_fraud_labels_fraud", "is_fraud"),
)

model_registry = Table(
    "model_registry",
    metadata,
    Column("version", String(32), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
    Column("artifact_uri", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("feature_names", JSONType, nullable=False),
    Column("params", JSONType),
    Column("metrics", JSONType),
    Column("training_window_start", UTCDateTime),
    Column("training_window_end", UTCDateTime),
    Column("n_rows", Integer),
    Column("n_fraud", Integer),
    Column("library_versions", JSONType),
    Column("notes", Text),
)

model_deployments = Table(
    "model_deployments",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column(
        "model_version",
        String(32),
        ForeignKey("model_registry.version", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("action", String(16), nullable=False, comment="promote | rollback"),
    Column("actor", String(64)),
    Column("reason", Text),
    Column("deployed_at", UTCDateTime, nullable=False, server_default=func.now()),
    Index("idx_model_deployments_deployed_at", "deployed_at"),
)

admin_users = Table(
    "admin_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("totp_secret", String(255), comment="encrypted at rest by the admin module"),
    Column("role", String(16), nullable=False, server_default="analyst"),
    Column("is_active", Boolean, nullable=False, server_default=true()),
    Column("failed_attempts", Integer, nullable=False, server_default="0"),
    Column("locked_until", UTCDateTime),
    Column("last_login_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
)

chain_cursor = Table(
    "chain_cursor",
    metadata,
    Column("name", String(128), primary_key=True, comment="chain id + contract address"),
    Column("last_block", BigInteger, nullable=False),
    Column("last_block_hash", String(66)),
    Column("updated_at", UTCDateTime, nullable=False, server_default=func.now()),
)

# --- data control (migration 0002): job runs, worker lock, data quality, admin sessions, audit archive ---
# event_analytics and wallet_segments are views (materialized on PostgreSQL, refreshed tables on SQLite):
# declared in the migration and read through ticketguard.views.

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("job_name", String(64), nullable=False),
    Column("trigger", String(16), nullable=False, comment="schedule | manual"),
    Column("status", String(16), nullable=False, comment="running|succeeded|failed|skipped|abandoned"),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("counts", JSONType),
    Column("error", Text),
    Column("runner", String(128), comment="host:pid that ran it"),
    Index("idx_job_runs_name_started", "job_name", "started_at"),
    Index("idx_job_runs_status", "status"),
)

# A lease per lock name, for SQLite (PostgreSQL uses advisory locks): a holder keeps it by heartbeat and
# loses it when expires_at passes, so a killed worker never blocks the next one for longer than a lease.
worker_locks = Table(
    "worker_locks",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

data_quality_results = Table(
    "data_quality_results",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False, comment="one id per data-quality run"),
    Column("check_name", String(64), nullable=False),
    Column("table_name", String(64), nullable=False),
    Column("status", String(8), nullable=False, comment="pass | fail | skipped"),
    Column("severity", String(16), nullable=False),
    Column("observed", Float),
    Column("expected", String(200)),
    Column("message", Text, nullable=False),
    Column("details", JSONType),
    Column("checked_at", UTCDateTime, nullable=False),
    Index("idx_data_quality_results_check_ts", "check_name", "checked_at"),
    Index("idx_data_quality_results_run", "run_id"),
)

admin_sessions = Table(
    "admin_sessions",
    metadata,
    # The token itself is never stored: a leaked table must not be a list of live sessions.
    Column("id", String(64), primary_key=True, comment="sha256 of the session token"),
    Column("admin_user_id", Integer, ForeignKey("admin_users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False, server_default=func.now()),
    Column("ip_address", String(45)),
    Column("user_agent_hash", String(64)),
    Column("revoked_at", UTCDateTime),
    Index("idx_admin_sessions_user", "admin_user_id"),
    Index("idx_admin_sessions_expires_at", "expires_at"),
)

admin_audit_log_archive = Table(
    "admin_audit_log_archive",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("admin_user", String(64)),
    Column("action", String(128)),
    Column("ip_address", String(45)),
    Column("metadata", JSONType),
    Column("timestamp", UTCDateTime, nullable=False, server_default=func.now()),
    Column("archived_at", UTCDateTime, nullable=False, server_default=func.now()),
    Index("idx_admin_audit_log_archive_timestamp", "timestamp"),
)

# --- features (migration 0003): daily point-in-time snapshots of the wallet transfer graph ---------------
# social_graph_centrality is PageRank, a batch computation: a snapshot dated D scores every wallet from the
# resales strictly before D 00:00 UTC; online scoring reads the latest snapshot at or before the request.

wallet_graph_snapshots = Table(
    "wallet_graph_snapshots",
    metadata,
    Column("snapshot_at", UTCDateTime, primary_key=True, comment="00:00 UTC of the day it is for"),
    Column("computed_at", UTCDateTime, nullable=False, server_default=func.now()),
    Column("nodes", Integer, nullable=False),
    Column("edges", Integer, nullable=False),
    Column("iterations", Integer, nullable=False),
    Column("damping", Float, nullable=False),
)

wallet_graph_scores = Table(
    "wallet_graph_scores",
    metadata,
    Column(
        "snapshot_at",
        UTCDateTime,
        ForeignKey("wallet_graph_snapshots.snapshot_at", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("wallet_address", String(42), primary_key=True),
    Column("centrality", Float, nullable=False, comment="PageRank × node count (1 = average wallet)"),
)

# --- scoring (migration 0004): one audit record per answered scoring request ----------------------------
# Written in the same database transaction as the transaction and its prediction (docs/api.md).

scoring_audit = Table(
    "scoring_audit",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("transaction_id", String(64), nullable=False),
    Column("action", String(32), nullable=False, comment="fraud_decision"),
    Column("actor", String(64), comment="API client that asked (set by the security layer)"),
    Column("decision", String(16), nullable=False),
    Column("fraud_score", Float),
    Column("model_version", String(32)),
    Column("degraded", Boolean, nullable=False, server_default=false()),
    Column("request_hash", String(64), nullable=False),
    Column("metadata", JSONType),
    Column("timestamp", UTCDateTime, nullable=False, server_default=func.now()),
    Index("idx_scoring_audit_txn", "transaction_id", unique=True),
    Index("idx_scoring_audit_timestamp", "timestamp"),
)

# --- security (migration 0005): API clients, IP blocks, automated responses (see docs/security.md) ---------
# IPs are personal data: blocks are keyed by an HMAC of the address (SECURITY_PEPPER), the same token that
# security_events.source_ip holds, so a correlation rule can block what it counted without the raw address.

api_clients = Table(
    "api_clients",
    metadata,
    Column("client_id", String(32), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False, unique=True, comment="public part of the key"),
    Column("key_hash", String(64), nullable=False, comment="HMAC-SHA256(SECURITY_PEPPER, key), hex"),
    Column("scopes", String(200), nullable=False, comment="comma-separated: score, metrics"),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
    Column("created_by", String(64)),
    Column("revoked_at", UTCDateTime),
    Column("revoked_by", String(64)),
)

ip_blocks = Table(
    "ip_blocks",
    metadata,
    Column("ip_hash", String(45), primary_key=True, comment="keyed hash token of the address (ip:…)"),
    Column("ip_masked", String(45), comment="for people: 203.0.113.x"),
    Column("reason", Text),
    Column("added_by", String(64), comment="admin user or rule that added it"),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
    Column("expires_at", UTCDateTime, comment="NULL: until removed"),
    Index("idx_ip_blocks_expires_at", "expires_at"),
)

security_responses = Table(
    "security_responses",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("rule", String(64), nullable=False),
    Column("action", String(32), nullable=False, comment="block_ip, blacklist_wallet, tighten_global_limit"),
    Column("target", String(128), nullable=False, comment="ip hash token, wallet address or 'global'"),
    Column("params", JSONType),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
    Column("expires_at", UTCDateTime),
    Column("reverted_at", UTCDateTime),
    Column("reverted_by", String(64)),
    Index("idx_security_responses_rule_target", "rule", "target", "created_at"),
)


# --- delivery (migration 0007): the outbox of everything sent over the network (see docs/delivery.md) -----
# A row is written in the same transaction as the change it reports (a review decided, an alert fired) and
# sent by the worker at least once; the receiver deduplicates on idempotency_key. Rows sharing an
# ordering_key are sent strictly in id order (a PagerDuty resolve never overtakes its trigger).
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("channel", String(32), nullable=False, comment="webhook, pagerduty, slack, email, ..."),
    Column("destination", Text, nullable=False, server_default="", comment="URL or address; '' = default"),
    Column("payload", JSONType, nullable=False),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("ordering_key", String(128), comment="rows with the same key are sent in id order"),
    Column("source", String(32), nullable=False, comment="review, alert, test, ..."),
    Column("status", String(16), nullable=False, server_default="pending", comment="pending|sent|dead"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column(
        "next_attempt_at",
        UTCDateTime,
        nullable=False,
        server_default=func.now(),
        comment="due time; while a sender holds the row, the end of its lease",
    ),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
    Column("sent_at", UTCDateTime),
    CheckConstraint("status IN ('pending', 'sent', 'dead')", name="status"),
    Index("idx_outbox_due", "status", "next_attempt_at"),
    Index("idx_outbox_ordering", "ordering_key", "id"),
)


# --- operator console (migration 0009, issue 14): login state of admin accounts, CSRF of sessions ---------
# A TOTP code is accepted once: totp_last_step is the RFC 6238 time step of the last accepted code, and a
# code of that step or earlier is refused. Failure counters run in windows that start at the first failure.
admin_users.append_column(
    Column("totp_last_step", BigInteger, comment="time step of the last accepted TOTP code (no replay)")
)
admin_users.append_column(Column("failed_since", UTCDateTime, comment="start of the failed-login window"))
admin_users.append_column(Column("totp_failures", Integer, nullable=False, server_default="0"))
admin_users.append_column(Column("totp_failed_since", UTCDateTime, comment="start of the bad-TOTP window"))
admin_users.append_column(Column("password_changed_at", UTCDateTime))
admin_users.append_column(Column("mfa_enrolled_at", UTCDateTime))
admin_users.append_column(Column("disabled_at", UTCDateTime))
admin_sessions.append_column(
    Column("csrf_hash", String(64), comment="sha256 of the session's CSRF token (sent on every change)")
)


# --- reviews (migration 0010): claims and decisions of MANUAL_REVIEW cases (see docs/reviews.md) ---------
# A case is a MANUAL_REVIEW row of fraud_predictions; its row here appears at the first claim. Claims and
# decisions are conditional writes on this one row, so two analysts can never decide the same case.
REVIEW_STATUSES = ("open", "claimed", "decided")
REVIEW_OUTCOMES = ("fraud", "legitimate")

review_cases = Table(
    "review_cases",
    metadata,
    Column("transaction_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False, comment="open | claimed | decided"),
    Column("claimed_by", String(64)),
    Column("claimed_at", UTCDateTime),
    Column("claim_expires_at", UTCDateTime, comment="a claim past this is open again"),
    Column("outcome", String(16), comment="fraud | legitimate, once decided"),
    Column("decided_by", String(64)),
    Column("decided_at", UTCDateTime),
    Column("note", Text),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
    Column("updated_at", UTCDateTime, nullable=False, server_default=func.now()),
    CheckConstraint("status IN ('open', 'claimed', 'decided')", name="status"),
    CheckConstraint("outcome IS NULL OR outcome IN ('fraud', 'legitimate')", name="outcome"),
    CheckConstraint(
        "(status = 'decided') = (outcome IS NOT NULL AND decided_at IS NOT NULL)", name="decided_has_outcome"
    ),
    Index("idx_review_cases_status_expires", "status", "claim_expires_at"),
    Index("idx_review_cases_decided_at", "decided_at"),
)

# --- alerting (issue 15, docs/alerts.md): rule state, its history, silences ------------------------------
alert_state = Table(
    "alert_state",
    metadata,
    Column("rule", String(64), primary_key=True),
    Column("state", String(16), nullable=False, comment="inactive|pending|firing|resolved"),
    Column("since", UTCDateTime, comment="when the current state began"),
    Column("value", Float, comment="the metric at the last evaluation (NULL: no data)"),
    Column("detail", Text, comment="how the value was measured, or why there is none"),
    Column("firing_id", BigInteger, comment="alert_history id of the current (or last) firing"),
    Column("notified", Boolean, nullable=False, server_default=false(), comment="the trigger was queued"),
    Column("last_notified_at", UTCDateTime),
    Column("repeats", Integer, nullable=False, server_default="0"),
    Column("last_evaluated_at", UTCDateTime),
    CheckConstraint("state IN ('inactive', 'pending', 'firing', 'resolved')", name="state"),
)
alert_history = Table(
    "alert_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("rule", String(64), nullable=False),
    Column("transition", String(16), nullable=False, comment="pending|firing|resolved|inactive|test"),
    Column("value", Float),
    Column("threshold", Float),
    Column("condition", Text),
    Column("firing_id", BigInteger, comment="the firing this row belongs to"),
    Column("details", JSONType),
    Column("at", UTCDateTime, nullable=False, server_default=func.now()),
    Index("idx_alert_history_rule_at", "rule", "at"),
    Index("idx_alert_history_at", "at"),
)
alert_silences = Table(
    "alert_silences",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("rule", String(64), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("reason", Text),
    Column("created_at", UTCDateTime, nullable=False, server_default=func.now()),
    Index("idx_alert_silences_rule_ends", "rule", "ends_at"),
)
