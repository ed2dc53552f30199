"""Typed settings, read once from the environment and `.env`, then passed in.

Variable names are the deployment guide's contract (``DB_HOST``, ``REDIS_URL``, ``JWT_SECRET`` …).
No database configured means an embedded SQLite file in ``DATA_DIR``; no Redis configured means the
in-process fallbacks. ``ENVIRONMENT=production`` refuses to start with missing or placeholder secrets.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "staging", "production"]

# Values shipped in the deployment guide's sample `.env`; running production on them is running without them.
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "secret",
        "your-jwt-secret-key-min-32-chars",
        "your-totp-secret",
        "your-secure-password-here",
        "your-redis-password",
        "your-pagerduty-key",
        "dev-only-insecure-secret",
    }
)
MIN_JWT_SECRET_LENGTH = 32
# Requests per minute per client IP on these routes (RATE_LIMIT_ROUTES is merged over them). The scoring
# routes count scorings against RATE_LIMIT_IP/USER/GLOBAL as well; the operations routes (probes, scraping,
# docs) count only here, so they neither spend nor depend on the scoring budget (docs/security.md).
DEFAULT_ROUTE_LIMITS: dict[str, int] = {
    "/api/v1/ml/batch/predict": 30,  # up to API_BATCH_MAX_ITEMS scorings each
    "/api/v1/metrics": 30,  # KPI queries read a day of predictions
    "/api/v1/reviews": 600,  # GET /api/v1/reviews/{id}, all ids together (reviews: issue 14)
    "/health": 120,  # and /health/*: a probe every few seconds fits, a flood does not
    "/metrics": 60,
    "/openapi.json": 30,
    "/docs": 30,
}


class SettingsError(ValueError):
    """Raised when settings cannot be used in the current environment; the message lists every problem."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    # --- runtime ---------------------------------------------------------------------------------
    environment: Environment = "development"
    debug: bool = False
    data_dir: Path = Field(default=Path("data"), description="Embedded database, models and reports.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- database: DATABASE_URL wins over the DB_* parts ---------------------------------------------
    database_url: str | None = None
    db_host: str | None = None
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_name: str = "ticketing"
    db_user: str = "postgres"
    db_password: SecretStr | None = None
    db_pool_size: int = Field(default=5, ge=1, le=100)
    db_statement_timeout_ms: int = Field(default=5000, ge=100)
    db_connect_timeout_seconds: float = Field(
        default=30, ge=0, le=600, description="`serve api` waits this long for the database, then refuses."
    )

    # --- redis: REDIS_URL wins over the REDIS_* parts ------------------------------------------------
    redis_url: str | None = None
    redis_host: str | None = None
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_password: SecretStr | None = None
    redis_db: int = Field(default=0, ge=0, le=15)
    redis_timeout_ms: int = Field(default=50, ge=1, le=5000)

    # --- chain -----------------------------------------------------------------------------------
    web3_provider: str | None = None
    contract_address: str | None = None
    infura_key: SecretStr | None = None
    alchemy_key: SecretStr | None = None

    # --- chain ETL (`ticketguard etl run`, see docs/chain-etl.md) -----------------------------------
    chain_start_block: int = Field(
        default=0, ge=0, description="First block to read: the contract's deployment block."
    )
    chain_confirmations: int = Field(
        default=12, ge=0, le=10_000, description="Read a block only once this many blocks sit on top of it."
    )
    chain_batch_blocks: int = Field(
        default=2000, ge=1, le=100_000, description="Blocks per eth_getLogs call and per committed batch."
    )
    chain_retry_attempts: int = Field(default=5, ge=1, le=20, description="Tries per provider call.")
    chain_retry_base_delay: timedelta = Field(default=timedelta(seconds=0.5), gt=timedelta(0))
    chain_retry_max_delay: timedelta = Field(default=timedelta(seconds=30), gt=timedelta(0))
    chain_rpc_timeout: timedelta = Field(default=timedelta(seconds=30), gt=timedelta(0))

    # --- data control: retention, erasure, data quality, worker (see docs/data-control.md) -------------
    # Ages count from each row's own timestamp: "hot" rows older than *_HOT_DAYS move to the archive table;
    # archived rows older than *_ARCHIVE_DAYS are deleted for good.
    retention_transactions_hot_days: int = Field(default=90, ge=1, le=36_500)
    retention_transactions_archive_days: int = Field(default=730, ge=1, le=36_500)
    retention_predictions_hot_days: int = Field(default=180, ge=1, le=36_500)
    retention_predictions_archive_days: int = Field(default=1825, ge=1, le=36_500)
    retention_audit_hot_days: int = Field(default=365, ge=1, le=36_500)
    retention_audit_archive_days: int = Field(default=2555, ge=1, le=36_500)
    retention_sessions_days: int = Field(
        default=30, ge=1, le=36_500, description="Admin sessions are deleted this long after they ended."
    )
    retention_batch_rows: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Rows moved per batch (one transaction each)."
    )
    pseudonym_key: SecretStr | None = Field(
        default=None, description="HMAC key for GDPR erasure pseudonyms; required by erase-wallet."
    )
    job_statement_timeout_ms: int = Field(
        default=1_800_000, ge=1000, description="Statement timeout for scheduled jobs (PostgreSQL)."
    )
    quality_lookback_hours: float = Field(
        default=24, gt=0, le=24 * 365, description="Null and duplicate checks look at rows this recent."
    )
    quality_freshness_max_hours: float = Field(
        default=6, gt=0, le=24 * 365, description="The newest transaction must be younger than this."
    )
    quality_volume_tolerance: float = Field(
        default=0.5, gt=0, le=10, description="Allowed relative distance of the last day from the median."
    )
    quality_volume_baseline_days: int = Field(default=7, ge=1, le=90)
    worker_lock_lease_seconds: float = Field(
        default=60, ge=5, le=3600, description="SQLite worker lease; heartbeats renew it every third."
    )

    # --- security --------------------------------------------------------------------------------
    jwt_secret: SecretStr | None = None
    admin_mfa_secret: SecretStr | None = None
    # Client auth, lists, events and correlation rules: see docs/security.md.
    jwt_public_key: str | None = Field(
        default=None, description="RS256 public key (PEM text or a path to a PEM file); enables RS256 tokens."
    )
    jwt_audience: str = Field(default="ticketguard", min_length=1, description="Required `aud` of tokens.")
    jwt_issuer: str = Field(default="ticketing-backend", min_length=1, description="Required `iss`.")
    jwt_leeway_seconds: int = Field(
        default=10, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat."
    )
    jwt_max_lifetime_seconds: int = Field(
        default=86_400, ge=60, le=30 * 86_400, description="Longest accepted token lifetime (exp - iat)."
    )
    security_pepper: SecretStr | None = Field(
        default=None,
        description="HMAC key for API-key hashes and for hashing IPs/wallets in events and logs.",
    )
    trusted_proxies: list[str] = Field(
        default=[], description="Proxy addresses/CIDRs whose X-Forwarded-For is believed (JSON list)."
    )
    rate_limit_routes: dict[str, int] = Field(
        default=DEFAULT_ROUTE_LIMITS,
        description="Per-route limits per client IP per minute (requests to that route), JSON; entries "
        'are merged over the defaults, e.g. {"/api/v1/ml/batch/predict": 10}.',
    )
    rate_limit_buy_path: str = Field(
        default="/api/tickets/buy", description="The route RATE_LIMIT_BUY applies to (the backend's /buy)."
    )
    rate_limit_strategy: Literal["moving-window", "sliding-window-counter"] = Field(
        default="moving-window", description="`limits` strategy: exact sliding log, or weighted counters."
    )
    rate_limit_on_redis_error: Literal["local", "open", "closed"] = Field(
        default="local",
        description="Redis unreachable: per-process limits (local), let through (open) or 429 (closed).",
    )
    rate_limit_redis_timeout_ms: int = Field(
        default=250, ge=10, le=5000, description="Rate limiter's per-call Redis timeout; then the policy."
    )
    metrics_require_key: bool = Field(
        default=False, description="Prometheus /metrics needs an API key with the `metrics` scope."
    )
    security_rules_path: Path | None = Field(
        default=None, description="Correlation rules YAML; default the packaged security/rules.yaml."
    )
    security_list_cache_seconds: float = Field(
        default=5, gt=0, le=3600, description="In-process list snapshot age when Redis is unavailable."
    )
    security_no_autoblock_ips: list[str] = Field(
        default=[], description="IPs the correlation rules never block, e.g. the backend's (JSON list)."
    )

    # --- notifications ---------------------------------------------------------------------------
    slack_webhook: SecretStr | None = None
    pagerduty_api_key: SecretStr | None = None

    # --- delivery: the outbox every notification and callback leaves through (docs/delivery.md) -------
    outbox_poll_seconds: float = Field(
        default=5, ge=1, le=3600, description="How often the worker sends what is due in the outbox."
    )
    outbox_max_attempts: int = Field(
        default=12, ge=1, le=100, description="Tries per message before it is dead (a security event)."
    )
    outbox_backoff_base_seconds: float = Field(
        default=5, gt=0, le=3600, description="Delay after the first failure; doubles per failure."
    )
    outbox_backoff_max_seconds: float = Field(
        default=300, gt=0, le=86_400, description="Longest delay between two tries."
    )
    outbox_send_timeout_seconds: float = Field(
        default=5, gt=0, le=120, description="Timeout of one send (connect + answer)."
    )
    webhook_signing_secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key of signed webhooks (X-Ticketguard-Signature); the webhook channel "
        "sends nothing without it.",
    )

    # --- reviews: the MANUAL_REVIEW queue (docs/reviews.md; issue 14, review backend) ------------------
    review_claim_seconds: int = Field(
        default=900, ge=30, le=86_400, description="How long an analyst's claim on a case lasts."
    )
    review_queue_horizon_days: float = Field(
        default=14,
        gt=0,
        le=365,
        description="MANUAL_REVIEW decisions older than this leave the queue (still decidable by id).",
    )
    review_callback_url: str | None = Field(
        default=None,
        description="Where decided reviews are POSTed (signed webhook through the outbox); unset: none.",
    )

    @field_validator("review_callback_url")
    @classmethod
    def _check_review_callback_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("https://", "http://")) or len(value) > 2000:
            raise ValueError(f"REVIEW_CALLBACK_URL must be an http(s) URL, got {value[:60]!r}")
        return value

    @model_validator(mode="after")
    def _check_review_callback_signed(self) -> Settings:
        if self.review_callback_url and self.webhook_signing_secret is None:
            raise ValueError(
                "REVIEW_CALLBACK_URL needs WEBHOOK_SIGNING_SECRET: review callbacks are only sent signed"
            )
        return self

    @property
    def review_queue_horizon(self) -> timedelta:
        return timedelta(days=self.review_queue_horizon_days)

    # --- alerting (issue 15, docs/alerts.md): rules evaluated by the worker, notifications via the outbox --
    alert_rules_path: Path | None = Field(
        default=None, description="Alert rules YAML (the guide's alert_rules.yaml); default the packaged one."
    )
    alert_eval_seconds: float = Field(
        default=30, ge=1, le=3600, description="How often the worker evaluates the alert rules."
    )
    alert_metric_window_seconds: float = Field(
        default=300, ge=1, le=86_400, description="Window of the rate and latency metrics (fraud_rate, ...)."
    )
    alert_console_url: str | None = Field(
        default=None, description="The console's address, linked from notifications (e.g. https://ops/...)."
    )
    alert_api_metrics_url: str | None = Field(
        default=None,
        description="The API's Prometheus /metrics, for error_rate (e.g. http://api:5001/metrics).",
    )
    alert_webhook_url: str | None = Field(default=None, description="Default URL of the webhook action.")
    alert_email_to: str = Field(
        default="", description="Default recipients of the email action, comma-separated."
    )
    alert_action_ttl_seconds: float = Field(
        default=3600,
        gt=0,
        le=30 * 86_400,
        description="Default TTL of block_ip/tighten_thresholds/lock_admin.",
    )
    alert_tighten_step: float = Field(
        default=0.05, gt=0, lt=0.5, description="How far tighten_thresholds lowers each decision threshold."
    )
    pagerduty_events_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue", description="PagerDuty Events API v2 endpoint."
    )
    smtp_host: str | None = Field(default=None, description="SMTP server of the email action.")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = Field(default="ticketguard@localhost", description="From address of alert e-mails.")
    smtp_starttls: bool = Field(default=True, description="Require STARTTLS before authenticating.")
    smtp_ca_file: Path | None = Field(
        default=None, description="CA bundle that signs the SMTP server's certificate (default: system CAs)."
    )

    # --- model and decisions ---------------------------------------------------------------------
    model_version: str | None = Field(
        default=None, description="Pin the served model; unset means the registry's live version."
    )
    model_dir: Path | None = Field(default=None, description="Model artifacts; default DATA_DIR/models.")
    model_store_url: str | None = Field(
        default=None,
        description="Object store for artifacts (fsspec URL, e.g. s3://bucket/models); wins over MODEL_DIR.",
    )
    fraud_threshold_block: float = Field(default=0.85, gt=0, lt=1)
    fraud_threshold_review: float = Field(default=0.65, gt=0, lt=1)
    fraud_threshold_2fa: float = Field(default=0.40, gt=0, lt=1)

    # --- features, training, evaluation (see docs/ml.md) ----------------------------------------
    feature_label_delay_days: float = Field(
        default=7, ge=0, le=365, description="Label features read a risk window ending this long before t."
    )
    feature_risk_window_days: float = Field(default=30, gt=0, le=3650)
    feature_geo_window_minutes: float = Field(default=60, gt=0, le=10_080)
    feature_geo_distance_km: float = Field(default=500, gt=0, le=20_040)
    graph_snapshot_keep_days: int = Field(default=7, ge=1, le=3650, description="Daily graph snapshots kept.")
    train_test_days: float = Field(default=21, gt=0, le=3650, description="Last days held out as test set.")
    train_gap_days: float = Field(
        default=14, ge=0, le=3650, description="Dropped between train and test: labels still maturing."
    )
    train_validation_days: float = Field(
        default=14, gt=0, le=3650, description="End of the train part: early stopping and weight choice."
    )
    train_warmup_days: float = Field(
        default=7, ge=0, le=3650, description="First days only feed history to features, never train."
    )
    train_seed: int = Field(default=42, ge=0)
    train_nthread: int = Field(default=2, ge=1, le=256, description="XGBoost threads for training.")
    train_max_rounds: int = Field(default=400, ge=1, le=100_000)
    train_early_stopping_rounds: int = Field(default=50, ge=1, le=10_000)
    train_learning_rate: float = Field(default=0.15, gt=0, le=1)
    train_max_depth: int = Field(default=7, ge=1, le=20)
    train_min_child_weight: float = Field(default=1.0, ge=0)
    train_subsample: float = Field(default=0.8, gt=0, le=1)
    train_colsample_bytree: float = Field(default=0.8, gt=0, le=1)
    train_reg_lambda: float = Field(default=1.0, ge=0)
    train_max_bin: int = Field(default=256, ge=16, le=4096)
    train_scale_pos_weight_options: list[float] = Field(
        default=[1.0, 5.0, 20.0], min_length=1, description="Imbalance weights compared on validation AUC-PR."
    )
    # --- issue 13: model selection and robustness to missing fields (docs/ml.md §2) ---------------
    train_folds: int = Field(
        default=2, ge=1, le=12, description="Prequential folds (gap = label delay) for selection."
    )
    train_max_depth_options: list[int] = Field(
        default=[3, 6], min_length=1, description="Tree depths compared on the folds' mean AUC-PR."
    )
    train_selection_max_rows: int = Field(
        default=100_000, ge=1000, description="Selection folds: at most ~this many training rows."
    )
    train_feature_gain_shares: list[float] = Field(
        default=[0.99], description="Feature sets tried: the features carrying this share of the gain."
    )
    train_selection_tolerance: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description=(
            "A simpler candidate (shallower, lower weight, fewer features) wins within this score; the final"
            " model stops at the fewest trees within this validation AUC-PR of each fold's best."
        ),
    )
    train_selection_alerts_per_day: int = Field(
        default=100,
        ge=0,
        description="k of the wallet precision@k per day that selection ranks on with AP (0: AP alone).",
    )
    train_feature_top_counts: list[int] = Field(
        default=[], description="Compact feature sets tried: the N features of highest gain, e.g. [15, 30]."
    )
    train_drop_optional_share: float = Field(
        default=0.3, ge=0, le=1, description="Training rows featurised without ip/payment/location."
    )
    # --- end issue 13 ---------------------------------------------------------------------------
    review_capacity_per_day: int = Field(
        default=50, ge=1, le=1_000_000, description="Analysts' daily manual reviews: k of top-k precision."
    )
    eval_bootstrap_samples: int = Field(default=200, ge=10, le=10_000)
    report_dir: Path | None = Field(default=None, description="Evaluation reports; default DATA_DIR/reports.")

    # --- rate limits (requests per minute) -------------------------------------------------------
    rate_limit_global: int = Field(default=10000, ge=1)
    rate_limit_ip: int = Field(default=100, ge=1)
    rate_limit_user: int = Field(default=500, ge=1)
    rate_limit_buy: int = Field(default=5, ge=1)

    # --- services --------------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=5001, ge=1, le=65535)
    api_workers: int = Field(default=2, ge=1, le=64)
    # Scoring API (docs/api.md): deadline, explanations, failure policy, request limits.
    scoring_deadline_ms: int = Field(
        default=1000, ge=10, le=60_000, description="Per-request deadline; past it the failure policy rules."
    )
    scoring_unavailable_decision: Literal["MANUAL_REVIEW", "BLOCKED"] = Field(
        default="MANUAL_REVIEW",
        description="Decision of the 503 answer when the database is down or the deadline passed.",
    )
    scoring_exact_explanations: Literal["none", "non_approved", "all"] = Field(
        default="non_approved",
        description="Answers with exact TreeSHAP contributions; the others get approximate (Saabas).",
    )
    scoring_top_features: int = Field(default=5, ge=1, le=32, description="Contributions in each answer.")
    feature_cache_seconds: float = Field(
        default=60, ge=0, le=3600, description="Event aggregates' cached base lifetime; 0 = all from SQL."
    )
    feature_state: Literal["auto", "memory", "sql"] = Field(
        default="auto",
        description="Where the scoring path reads features: memory (in-process state kept in step through "
        "Redis), sql (the database per request); auto = memory when Redis is set or API_WORKERS is 1.",
    )
    feature_state_refresh_seconds: float = Field(
        default=5, gt=0, le=3600, description="How often labels, lists, events and the graph are re-read."
    )
    feature_state_rebuild_seconds: float = Field(
        default=900,
        ge=0,
        le=86_400,
        description="How often the state is checked against the database (count of settled transactions) "
        "and reloaded if they differ (and at least daily); 0 = never.",
    )
    scoring_commit_batch_max: int = Field(
        default=256, ge=1, le=10_000, description="Most answers written in one group commit."
    )
    scoring_max_clock_skew_seconds: int = Field(
        default=300, ge=1, le=86_400, description="A client timestamp further than this from ours is refused."
    )
    api_max_body_bytes: int = Field(
        default=1_048_576, ge=1024, le=64 * 1_048_576, description="Larger request bodies get 413."
    )
    api_batch_max_items: int = Field(default=100, ge=1, le=10_000, description="Items per batch request.")
    api_threads: int = Field(
        default=16, ge=1, le=256, description="Requests scored at once per worker (thread pool, DB pool)."
    )
    model_refresh_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="How often each worker checks the registry's live version."
    )
    dashboard_port: int = Field(default=8050, ge=1, le=65535)
    # --- operator console (issue 14; docs/console.md): admin login with MFA, sessions, dashboard ----------
    # ADMIN_MFA_SECRET (above, required in production) is the key that seals admin TOTP secrets at rest.
    admin_password_min_length: int = Field(default=12, ge=8, le=128)
    admin_lockout_threshold: int = Field(
        default=5, ge=1, le=100, description="Failed logins within ADMIN_LOCKOUT_WINDOW_SECONDS that lock."
    )
    admin_lockout_window_seconds: int = Field(default=300, ge=10, le=86_400)
    admin_lockout_minutes: int = Field(default=15, ge=1, le=10_080, description="How long a lock lasts.")
    admin_mfa_failure_threshold: int = Field(
        default=3, ge=1, le=100, description="Bad TOTP codes in the window: a critical mfa_failures event."
    )
    admin_session_idle_minutes: int = Field(default=15, ge=1, le=1440)
    admin_session_max_hours: float = Field(default=8, gt=0, le=168, description="Absolute session lifetime.")
    admin_ip_allowlist: list[str] = Field(
        default=[], description="CIDRs allowed to reach the console (JSON list); empty: any address."
    )
    admin_cookie_secure: bool | None = Field(
        default=None, description="Secure (TLS-only) cookies; unset: on in staging and production."
    )
    dashboard_host: str = "127.0.0.1"
    dashboard_workers: int = Field(default=2, ge=1, le=64)
    dashboard_refresh_seconds: float = Field(default=10, ge=1, le=3600, description="Section refresh period.")
    dashboard_api_url: str = Field(
        default="http://127.0.0.1:5001", description="The scoring API the console probes for its health."
    )

    @property
    def resolved_admin_cookie_secure(self) -> bool:
        if self.admin_cookie_secure is not None:
            return self.admin_cookie_secure
        return self.environment in ("staging", "production")

    # --- deployment lifecycle (docs/deploy.md): SIGTERM drains within these; the orchestrator's stop timeout
    # (ECS stopTimeout, Kubernetes terminationGracePeriodSeconds) must be longer.
    api_shutdown_grace_seconds: int = Field(
        default=20, ge=0, le=600, description="On SIGTERM, requests in flight get this long to finish."
    )
    worker_shutdown_grace_seconds: int = Field(
        default=20, ge=0, le=3600, description="On SIGTERM, a running job gets this long, then is abandoned."
    )

    @field_validator("chain_retry_base_delay", "chain_retry_max_delay", "chain_rpc_timeout", mode="before")
    @classmethod
    def _seconds_as_duration(cls, value: object) -> object:
        # `.env` files say `CHAIN_RPC_TIMEOUT=30`; pydantic reads a bare number string only as ISO 8601.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        return value

    @field_validator("rate_limit_routes", mode="after")
    @classmethod
    def _routes_over_defaults(cls, value: dict[str, int]) -> dict[str, int]:
        for path, limit in value.items():
            if not path.startswith("/") or limit < 1:
                raise ValueError(
                    "RATE_LIMIT_ROUTES maps paths starting with / to requests per minute >= 1, "
                    f"got {path!r}: {limit}"
                )
        return {**DEFAULT_ROUTE_LIMITS, **value}

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand_data_dir(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("contract_address")
    @classmethod
    def _check_contract_address(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not (value.startswith("0x") and len(value) == 42):
            raise ValueError(f"CONTRACT_ADDRESS must be 0x followed by 40 hex digits, got {value!r}")
        try:
            int(value[2:], 16)
        except ValueError:
            raise ValueError(
                f"CONTRACT_ADDRESS must be 0x followed by 40 hex digits, got {value!r}"
            ) from None
        return value

    @field_validator("database_url", "redis_url", "web3_provider", "db_host", "redis_host")
    @classmethod
    def _blank_is_unset(cls, value: str | None, info: ValidationInfo) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _check_retention_horizons(self) -> Settings:
        for kind in ("transactions", "predictions", "audit"):
            hot = getattr(self, f"retention_{kind}_hot_days")
            archive = getattr(self, f"retention_{kind}_archive_days")
            if archive < hot:
                raise ValueError(
                    f"RETENTION_{kind.upper()}_ARCHIVE_DAYS ({archive}) must be at least "
                    f"RETENTION_{kind.upper()}_HOT_DAYS ({hot}): rows leave the archive after they enter it"
                )
        return self

    @model_validator(mode="after")
    def _check_thresholds(self) -> Settings:
        two_fa, review, block = (
            self.fraud_threshold_2fa,
            self.fraud_threshold_review,
            self.fraud_threshold_block,
        )
        if not two_fa < review < block:
            raise ValueError(
                "thresholds must satisfy "
                "FRAUD_THRESHOLD_2FA < FRAUD_THRESHOLD_REVIEW < FRAUD_THRESHOLD_BLOCK, "
                f"got 2fa={two_fa}, review={review}, block={block}"
            )
        return self

    # --- derived ---------------------------------------------------------------------------------
    @cached_property
    def resolved_database_url(self) -> str:
        """SQLAlchemy URL: DATABASE_URL, else DB_HOST parts (PostgreSQL), else SQLite in DATA_DIR."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgres://"):
                url = "postgresql://" + url[len("postgres://") :]
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            return url
        if self.db_host:
            password = self.db_password.get_secret_value() if self.db_password else ""
            auth = quote(self.db_user, safe="")
            if password:
                auth += ":" + quote(password, safe="")
            return f"postgresql+psycopg://{auth}@{self.db_host}:{self.db_port}/{quote(self.db_name, safe='')}"
        return f"sqlite:///{(self.data_dir / 'ticketguard.db').resolve()}"

    @property
    def is_embedded_database(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @cached_property
    def resolved_redis_url(self) -> str | None:
        """Redis URL, or None for the in-process fallbacks."""
        if self.redis_url:
            return self.redis_url
        if self.redis_host:
            password = self.redis_password.get_secret_value() if self.redis_password else ""
            auth = f":{quote(password, safe='')}@" if password else ""
            return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"
        return None

    @property
    def resolved_model_dir(self) -> Path:
        return self.model_dir if self.model_dir is not None else self.data_dir / "models"

    @property
    def resolved_report_dir(self) -> Path:
        return self.report_dir if self.report_dir is not None else self.data_dir / "reports"

    def production_problems(self) -> list[str]:
        """Everything that makes these settings unsafe for production, one readable line each."""
        problems: list[str] = []
        jwt = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        if jwt in PLACEHOLDER_SECRETS:
            problems.append("JWT_SECRET is missing or a placeholder; set a random value of 32+ characters")
        elif len(jwt) < MIN_JWT_SECRET_LENGTH:
            problems.append(f"JWT_SECRET must be at least {MIN_JWT_SECRET_LENGTH} characters, got {len(jwt)}")
        mfa = self.admin_mfa_secret.get_secret_value() if self.admin_mfa_secret else ""
        if mfa in PLACEHOLDER_SECRETS:
            problems.append("ADMIN_MFA_SECRET is missing or a placeholder; set a base32 TOTP secret")
        elif not _is_base32(mfa):
            problems.append("ADMIN_MFA_SECRET must be base32 (A-Z, 2-7), e.g. from `pyotp.random_base32()`")
        if self.is_embedded_database:
            problems.append("no database configured: set DATABASE_URL or DB_HOST (SQLite is for development)")
        elif self.db_password is not None and self.db_password.get_secret_value() in PLACEHOLDER_SECRETS:
            problems.append("DB_PASSWORD is a placeholder")
        if self.redis_password is not None and self.redis_password.get_secret_value() in PLACEHOLDER_SECRETS:
            problems.append("REDIS_PASSWORD is a placeholder")
        if self.debug:
            problems.append("DEBUG must be false in production")
        pepper = self.security_pepper.get_secret_value() if self.security_pepper else ""
        if pepper in PLACEHOLDER_SECRETS or len(pepper) < MIN_JWT_SECRET_LENGTH:
            problems.append("SECURITY_PEPPER must be a random value of 32+ characters")
        # operator console (issue 14)
        if self.admin_cookie_secure is False:
            problems.append("ADMIN_COOKIE_SECURE=false: the console's cookies must be TLS-only in production")
        return problems

    def check_ready(self) -> None:
        """Refuse to start when the environment demands more than these settings give."""
        if self.environment != "production":
            return
        problems = self.production_problems()
        if problems:
            raise SettingsError(
                "refusing to start with ENVIRONMENT=production:\n  - " + "\n  - ".join(problems)
            )


def _is_base32(value: str) -> bool:
    try:
        base64.b32decode(value.upper() + "=" * (-len(value) % 8), casefold=True)
    except (binascii.Error, ValueError):
        return False
    return len(value) >= 16


def load_settings(**overrides: object) -> Settings:
    """Build settings from env/.env (plus explicit overrides) and check they fit the environment."""
    settings = Settings(**overrides)  # type: ignore[arg-type]
    settings.check_ready()
    return settings
