"""Client authentication: JWT bearer tokens and API keys.

Tokens: the algorithm is chosen by *our* key, never by the token. HS256 is accepted only when JWT_SECRET is
set and is checked only against it; RS256 only when JWT_PUBLIC_KEY is set and only against that key. So
``alg: none`` and the HS/RS confusion (an HS256 token signed with the public key as secret) are refused
before any signature maths. ``exp``, ``iat``, ``aud``, ``iss`` and ``sub`` are required, and a token may
live at most JWT_MAX_LIFETIME_SECONDS (``exp - iat``, default 24 h): a stolen ten-year token is refused.

API keys (machine clients, /api/v1/metrics): ``tgk_<prefix>_<secret>``. The prefix finds the row; the
stored value is HMAC-SHA256(SECURITY_PEPPER, key). A slow password hash (argon2) buys nothing here: keys
carry 256 random bits, so there is nothing to guess, and it would cost ~50 ms on every request of a
50 ms-SLA API. The pepper keeps a leaked table useless without the server's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from ticketguard.config import Settings

HS_ALGORITHMS = ["HS256"]
RS_ALGORITHMS = ["RS256"]
REQUIRED_CLAIMS = ["exp", "iat", "aud", "iss", "sub"]
API_KEY_PREFIX = "tgk_"
SCOPES = frozenset({"score", "metrics"})


class AuthError(Exception):
    """Authentication failed. ``reason`` is for the security event and logs only: clients get one uniform
    401 whatever it says, so a prober learns nothing about which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    kind: str  # jwt | api_key | anonymous
    subject: str
    client_id: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)


ANONYMOUS = Principal(kind="anonymous", subject="anonymous", scopes=SCOPES)


def _load_public_key(value: str) -> str:
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValueError(f"JWT_PUBLIC_KEY must be PEM text or the path of a PEM file, got {value[:40]!r}")
    return path.read_text()


class TokenVerifier:
    def __init__(
        self,
        *,
        hs_secret: str | None,
        rs_public_key: str | None,
        audience: str,
        issuer: str,
        leeway_seconds: int = 10,
        max_lifetime_seconds: int = 86_400,
    ) -> None:
        self._hs_secret = hs_secret or None
        self._rs_key: Any = None
        if rs_public_key:
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            self._rs_key = load_pem_public_key(_load_public_key(rs_public_key).encode())
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway_seconds
        self.max_lifetime = max_lifetime_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        return cls(
            hs_secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
            rs_public_key=settings.jwt_public_key,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway_seconds=settings.jwt_leeway_seconds,
            max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
        )

    @property
    def enabled(self) -> bool:
        return self._hs_secret is not None or self._rs_key is not None

    @property
    def algorithms(self) -> list[str]:
        return (HS_ALGORITHMS if self._hs_secret else []) + (
            RS_ALGORITHMS if self._rs_key is not None else []
        )

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed token: {type(exc).__name__}") from None
        alg = header.get("alg")
        key: Any
        if alg in HS_ALGORITHMS and self._hs_secret is not None:
            key, algorithms = self._hs_secret, HS_ALGORITHMS
        elif alg in RS_ALGORITHMS and self._rs_key is not None:
            key, algorithms = self._rs_key, RS_ALGORITHMS
        else:
            raise AuthError(f"algorithm not accepted: {str(alg)[:16]!r}")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": REQUIRED_CLAIMS, "verify_signature": True},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"token refused: {type(exc).__name__}") from None
        issued, expires = claims.get("iat"), claims.get("exp")
        if not isinstance(issued, int | float) or not isinstance(expires, int | float):
            raise AuthError("token iat and exp must be numbers")
        lifetime = float(expires) - float(issued)
        if lifetime > self.max_lifetime:
            raise AuthError(f"token lifetime {lifetime:.0f} s over JWT_MAX_LIFETIME_SECONDS")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 64:
            raise AuthError("token subject must be a string of 1-64 characters")
        return Principal(kind="jwt", subject=subject, scopes=frozenset({"score"}))

    def issue(self, subject: str, ttl_seconds: int, *, now: int) -> str:
        """An HS256 token for ``subject`` (for tests and the `clients token` command)."""
        if self._hs_secret is None:
            raise ValueError("JWT_SECRET is not set: only HS256 tokens can be issued here")
        if not 0 < ttl_seconds <= self.max_lifetime:
            raise ValueError(
                f"ttl must be 1-{self.max_lifetime} seconds (JWT_MAX_LIFETIME_SECONDS), got {ttl_seconds}"
            )
        claims = {
            "sub": subject,
            "aud": self.audience,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
        }
        return jwt.encode(claims, self._hs_secret, algorithm="HS256")


# --------------------------------------------------------------------------------------------- API keys
@dataclass(frozen=True)
class NewApiKey:
    prefix: str
    key: str  # shown once, never stored


def generate_api_key() -> NewApiKey:
    prefix = secrets.token_hex(4)
    return NewApiKey(prefix=prefix, key=f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}")


def hash_api_key(key: str, pepper: bytes) -> str:
    return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()


def api_key_prefix(key: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    parts = key[len(API_KEY_PREFIX) :].split("_", 1)
    if len(parts) != 2 or len(parts[0]) != 8 or not parts[1] or len(key) > 200:
        return None
    return parts[0]


def key_matches(key: str, stored_hash: str, pepper: bytes) -> bool:
    return hmac.compare_digest(hash_api_key(key, pepper), stored_hash)


def parse_scopes(value: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in value.split(",") if s.strip())
    unknown = scopes - SCOPES
    if not scopes or unknown:
        raise ValueError(
            f"scopes must be a comma-separated subset of {', '.join(sorted(SCOPES))}, got {value!r}"
        )
    return scopes
