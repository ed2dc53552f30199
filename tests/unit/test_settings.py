"""Settings: one typed object from env and `.env`, embedded defaults, clear refusals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from ticketguard.config import Settings, SettingsError, load_settings

GOOD_PRODUCTION = {
    "ENVIRONMENT": "production",
    "DATABASE_URL": "postgresql://tg:s3cret-pw@db.internal:5432/ticketguard",
    "JWT_SECRET": "x" * 40,
    "ADMIN_MFA_SECRET": "JBSWY3DPEHPK3PXPJBSWY3DP",
    "SECURITY_PEPPER": "p" * 40,
}


def test_no_database_configured_means_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'data' / 'ticketguard.db').resolve()}"
    assert settings.is_embedded_database
    assert settings.resolved_redis_url is None
    assert settings.resolved_model_dir == Path("data") / "models"


def test_db_parts_build_a_postgres_url_with_quoted_password(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "DB_HOST": "db.internal",
        "DB_PORT": "6543",
        "DB_NAME": "tg",
        "DB_USER": "fraud",
        "DB_PASSWORD": "p@ss/word:1",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert (
        settings.resolved_database_url == "postgresql+psycopg://fraud:p%40ss%2Fword%3A1@db.internal:6543/tg"
    )
    assert "p@ss" not in repr(settings)  # the password is a SecretStr


def test_database_url_wins_and_is_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "ignored")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h:5432/d")
    assert load_settings().resolved_database_url == "postgresql+psycopg://u@h:5432/d"


def test_redis_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "cache")
    monkeypatch.setenv("REDIS_PASSWORD", "r/pw")
    monkeypatch.setenv("REDIS_DB", "3")
    assert load_settings().resolved_redis_url == "redis://:r%2Fpw@cache:6379/3"


def test_dotenv_file_is_read_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("FRAUD_THRESHOLD_BLOCK=0.9\nRATE_LIMIT_IP=42\n", encoding="utf-8")
    monkeypatch.setenv("RATE_LIMIT_IP", "77")
    settings = load_settings()
    assert settings.fraud_threshold_block == 0.9
    assert settings.rate_limit_ip == 77


def test_guide_defaults() -> None:
    settings = Settings()
    assert (
        settings.fraud_threshold_2fa,
        settings.fraud_threshold_review,
        settings.fraud_threshold_block,
    ) == (
        0.40,
        0.65,
        0.85,
    )
    assert (settings.rate_limit_global, settings.rate_limit_ip, settings.rate_limit_user) == (10000, 100, 500)
    assert settings.rate_limit_buy == 5
    assert settings.api_port == 5001
    assert settings.dashboard_port == 8050


def test_thresholds_out_of_order_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_THRESHOLD_REVIEW", "0.95")
    with pytest.raises(ValidationError, match="FRAUD_THRESHOLD_2FA < FRAUD_THRESHOLD_REVIEW"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("DB_PORT", "not-a-port", "db_port"),
        ("RATE_LIMIT_IP", "0", "rate_limit_ip"),
        ("FRAUD_THRESHOLD_BLOCK", "1.5", "fraud_threshold_block"),
        ("ENVIRONMENT", "prod", "environment"),
    ],
)
def test_bad_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        load_settings()
    assert field in str(caught.value)


def test_production_refuses_missing_and_placeholder_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("JWT_SECRET", "your-jwt-secret-key-min-32-chars")
    monkeypatch.setenv("DEBUG", "true")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("refusing to start with ENVIRONMENT=production")
    for expected in ("JWT_SECRET", "ADMIN_MFA_SECRET", "DATABASE_URL or DB_HOST", "DEBUG"):
        assert expected in message
    assert "your-jwt-secret-key" not in message  # the message names the problem, never the value


def test_production_refuses_a_short_jwt_secret_and_bad_totp_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        **GOOD_PRODUCTION,
        "JWT_SECRET": "short-but-real",
        "ADMIN_MFA_SECRET": "not base32!",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert re.search(r"JWT_SECRET must be at least 32 characters, got 14", str(caught.value))
    assert "ADMIN_MFA_SECRET must be base32" in str(caught.value)


def test_production_with_real_secrets_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in GOOD_PRODUCTION.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.environment == "production"
    assert settings.production_problems() == []


def test_development_does_not_demand_secrets() -> None:
    settings = load_settings()
    assert settings.environment == "development"
    assert settings.production_problems()  # would not pass in production, but starts here


def test_env_example_documents_every_setting() -> None:
    example = Path(__file__).resolve().parents[2] / ".env.example"
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example.read_text(encoding="utf-8"), re.M))
    missing = {name.upper() for name in Settings.model_fields} - documented
    assert not missing, f".env.example lacks {sorted(missing)}"
