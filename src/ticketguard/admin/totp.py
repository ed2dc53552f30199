"""TOTP (RFC 6238, pyotp): 30-second steps, codes of the previous, current and next step accepted, each
step at most once per user (the caller stores the last accepted step). Secrets are sealed at rest with a
key derived from ADMIN_MFA_SECRET (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

import base64
import hmac
import io
from datetime import datetime

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ticketguard.config import Settings

STEP_SECONDS = 30
VALID_WINDOW = 1  # ±1 step: clocks of phones drift
ISSUER = "ticketguard"
SEALED_PREFIX = "fernet:"
# Development and tests only: production refuses to start without ADMIN_MFA_SECRET (config.py).
_DEVELOPMENT_KEY = b"ticketguard-development-admin-key-not-for-production"


class SealError(ValueError):
    """A sealed TOTP secret cannot be opened: ADMIN_MFA_SECRET changed, or the value was tampered with."""


def new_secret() -> str:
    return pyotp.random_base32()  # 32 base32 characters: 160 bits, RFC 4226's recommendation


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(name=username, issuer_name=ISSUER)


def time_step(at: datetime) -> int:
    return int(at.timestamp()) // STEP_SECONDS


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, interval=STEP_SECONDS).at(step * STEP_SECONDS)


def matching_step(secret: str, code: str, at: datetime) -> int | None:
    """The time step (within ±VALID_WINDOW of `at`) whose code is `code`, or None."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    now_step = time_step(at)
    found: int | None = None
    for step in range(now_step - VALID_WINDOW, now_step + VALID_WINDOW + 1):
        if hmac.compare_digest(code_at(secret, step), code):  # compare all: no early exit on a match
            found = step if found is None else found
    return found


def qr_text(uri: str) -> str:
    """The provisioning URI as a QR code drawn with terminal characters."""
    import qrcode

    qr = qrcode.QRCode(border=1)
    qr.add_data(uri)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    return out.getvalue()


def qr_png(uri: str) -> bytes:
    import qrcode

    image = qrcode.make(uri)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue()


def _fernet(settings: Settings) -> Fernet:
    master = (
        settings.admin_mfa_secret.get_secret_value().encode()
        if settings.admin_mfa_secret is not None and settings.admin_mfa_secret.get_secret_value()
        else _DEVELOPMENT_KEY
    )
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ticketguard admin totp seal").derive(
        master
    )
    return Fernet(base64.urlsafe_b64encode(key))


def seal(settings: Settings, secret: str) -> str:
    return SEALED_PREFIX + _fernet(settings).encrypt(secret.encode()).decode()


def unseal(settings: Settings, sealed: str) -> str:
    if not sealed.startswith(SEALED_PREFIX):
        raise SealError("TOTP secret is not sealed; reset the user's MFA (`ticketguard admin reset-mfa`)")
    try:
        return _fernet(settings).decrypt(sealed[len(SEALED_PREFIX) :].encode()).decode()
    except InvalidToken:
        raise SealError(
            "TOTP secret cannot be opened with this ADMIN_MFA_SECRET; reset the user's MFA"
        ) from None
