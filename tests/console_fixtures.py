"""Helpers shared by the console tests: settings, accounts with known passwords and TOTP secrets, codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from ticketguard.admin import totp
from ticketguard.admin.accounts import create_user
from ticketguard.config import Settings

ADMIN_MFA_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
PASSWORD = "violet-harbour-47-kettle"


def console_settings(url: str, **overrides: object) -> Settings:
    values = {"database_url": url, "admin_mfa_secret": ADMIN_MFA_SECRET, **overrides}
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class Account:
    username: str
    password: str
    secret: str
    role: str

    def code(self, at: datetime | None = None, offset: int = 0) -> str:
        return totp.code_at(self.secret, totp.time_step(at or datetime.now(UTC)) + offset)


def make_account(engine: Engine, settings: Settings, username: str, role: str = "admin") -> Account:
    with engine.begin() as conn:
        _, secret = create_user(
            conn,
            settings,
            username=username,
            password=PASSWORD,
            role=role,
            actor="test",
            now=datetime.now(UTC),
        )
    return Account(username, PASSWORD, secret, role)
