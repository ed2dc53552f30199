"""The server-side pepper: keys API-key hashes and the IP/wallet pseudonyms of events and logs."""

from __future__ import annotations

from urllib.parse import unquote

from ticketguard.config import Settings

# Development and tests only: Settings.production_problems() refuses production without SECURITY_PEPPER.
_DEVELOPMENT_PEPPER = b"ticketguard-development-pepper-not-for-production"


def pepper(settings: Settings) -> bytes:
    if settings.security_pepper is not None and settings.security_pepper.get_secret_value():
        return settings.security_pepper.get_secret_value().encode()
    return _DEVELOPMENT_PEPPER


def configured_secrets(settings: Settings) -> list[str]:
    """Every secret value in the settings, so the log redactor can scrub it wherever it shows up."""
    values: list[str] = []
    for name, field in type(settings).model_fields.items():
        del field
        raw = getattr(settings, name)
        if hasattr(raw, "get_secret_value"):
            secret = raw.get_secret_value()
            if secret:
                values.append(secret)
    # Passwords inside connection URLs are secrets too.
    for url in (settings.database_url, settings.redis_url):
        if url and "://" in url:
            userinfo = url.split("://", 1)[1].split("@", 1)
            if len(userinfo) == 2 and ":" in userinfo[0]:
                values.append(unquote(userinfo[0].split(":", 1)[1]))
    return values
