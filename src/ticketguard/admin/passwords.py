"""Passwords: argon2id hashes (argon2-cffi, RFC 9106 profile) and the policy a new password must meet.

The policy is NIST SP 800-63B's: a minimum length, no maximum below 256, no composition rules, and a check
against a list of common passwords shipped with the package (data/common-passwords.txt) — also with digits
or symbols appended ("Password2024!") or repeated ("qwertyqwerty") — and against the username.
"""

from __future__ import annotations

import re
import secrets
from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MAX_LENGTH = 256
_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (t=3, m=64 MiB, p=4)
_TRAILING = re.compile(r"[\d\W_]+$")


class PasswordPolicyError(ValueError):
    """The password does not meet the policy; the message says which rule (never the password)."""


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("ticketguard.admin").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _is_common(password: str) -> bool:
    common = common_passwords()
    lowered = password.lower()
    if lowered in common:
        return True
    base = _TRAILING.sub("", lowered)
    if base and base in common:
        return True
    for size in range(1, len(lowered) // 2 + 1):  # "abcabcabc…", "passwordpassword"
        if len(lowered) % size == 0 and lowered == lowered[:size] * (len(lowered) // size):
            return size < 4 or lowered[:size] in common or _TRAILING.sub("", lowered[:size]) in common
    return False


def check_password(password: str, *, username: str, min_length: int) -> None:
    if len(password) < min_length:
        raise PasswordPolicyError(f"password must be at least {min_length} characters, got {len(password)}")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"password must be at most {MAX_LENGTH} characters, got {len(password)}")
    if _is_common(password):
        raise PasswordPolicyError("password is on the list of common passwords; choose a less guessable one")
    if username and username.lower() in password.lower():
        raise PasswordPolicyError("password must not contain the username")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)


@cache
def _dummy_hash() -> str:
    return _HASHER.hash(secrets.token_urlsafe(24))


def verify_dummy(password: str) -> None:
    """Spend the time of one verification when there is no user to verify against, so an unknown
    username answers as slowly as a wrong password."""
    verify_password(_dummy_hash(), password)
