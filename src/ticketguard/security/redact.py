"""Redaction of personal data and secrets, for logs and security events. Pure: values in, values out.

Two ways to hide a value: *mask* it for people (``203.0.113.x``, ``0x12ab…cdef``) or *hash* it with a keyed
HMAC into a stable token (``ip:5f0c…``) that machines can still group by — the correlation rules count
failures per IP on the hashed token and block that token, never seeing the raw address.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"
TOKEN_HEX_CHARS = 20  # 80 bits: no collisions at any realistic count of IPs or wallets

# Field names whose values are secrets whatever they look like.
_SENSITIVE_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|authori[sz]ation|api[-_]?key|x-api-key|cookie|session|otp|totp|"
    r"mfa|pepper|private[-_]?key|credential|jwt|bearer|signature",
    re.IGNORECASE,
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_API_KEY = re.compile(r"\btgk_[A-Za-z0-9]+_[A-Za-z0-9_-]+")
_KEY_VALUE = re.compile(
    r"(?i)\b([\w-]*(?:pass(?:word|wd)?|secret|token|api[-_]?key|otp|totp|mfa[-_]?code|pepper|"
    r"private[-_]?key|cookie|session[-_]?id)[\w-]*)(\"?\s*[=:]\s*\"?)([^\s\"&,;}]+)"
)
_WALLET = re.compile(r"\b0x[0-9a-fA-F]{40}\b")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6_CANDIDATE = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")


def hash_token(kind: str, value: str, key: bytes) -> str:
    """``kind:<hex>``: a keyed, stable pseudonym of ``value`` (case-folded) that fits 45 characters."""
    digest = hmac.new(key, f"{kind}\x00{value.strip().lower()}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}:{digest[:TOKEN_HEX_CHARS]}"


def hash_ip(ip: str, key: bytes) -> str:
    try:
        canonical = str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        canonical = ip
    return hash_token("ip", canonical, key)


def hash_wallet(wallet: str, key: bytes) -> str:
    return hash_token("wallet", wallet, key)


def mask_ip(ip: str) -> str:
    """IPv4 keeps its /24 (``203.0.113.x``), IPv6 its /48; anything else is fully hidden."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return "[ip]"
    if address.version == 4:
        return ".".join(str(address).split(".")[:3]) + ".x"
    groups = address.exploded.split(":")[:3]
    return ":".join(g.lstrip("0") or "0" for g in groups) + "::x"


def mask_wallet(wallet: str) -> str:
    value = wallet.strip()
    if len(value) < 12:
        return "[wallet]"
    return f"{value[:6]}…{value[-4:]}"


def escape_crlf(text: str) -> str:
    """CR and LF written out, so one logical record is always one physical line (no forged log lines)."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _mask_ipv6(match: re.Match[str]) -> str:
    candidate = match.group(0)
    if "::" not in candidate and candidate.count(":") < 5:
        return candidate  # 10:45:43 is a time, not an address
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return candidate
    return mask_ip(candidate)


def _mask_ipv4(match: re.Match[str]) -> str:
    candidate = match.group(0)
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return candidate
    return mask_ip(candidate)


class Redactor:
    """Scrubs text and structures. ``secrets`` are exact values (configured secrets) replaced wherever they
    appear, on top of the patterns (tokens, API keys, key=value secrets, wallets, IPs, e-mails)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, secret: str | None) -> None:
        # Short values would redact ordinary words; configured secrets are long.
        if secret and len(secret) >= 8 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        value = _JWT.sub("[jwt]", value)
        value = _API_KEY.sub("[api-key]", value)
        value = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
        value = _KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", value)
        value = _WALLET.sub(lambda m: mask_wallet(m.group(0)), value)
        value = _EMAIL.sub("[email]", value)
        value = _IPV4.sub(_mask_ipv4, value)
        value = _IPV6_CANDIDATE.sub(_mask_ipv6, value)
        return escape_crlf(value)

    def value(self, value: Any, key: str | None = None) -> Any:
        if key is not None and _SENSITIVE_KEY.search(key):
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {str(k): self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.text(str(value))
