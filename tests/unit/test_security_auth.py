"""The JWT attack matrix at the verifier: every attack is refused with AuthError (the API maps all to one
uniform 401), and good tokens of each configured algorithm pass."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from ticketguard.security.auth import (
    AuthError,
    TokenVerifier,
    api_key_prefix,
    generate_api_key,
    hash_api_key,
    key_matches,
    parse_scopes,
)

SECRET = "a-test-only-hs256-secret-of-at-least-32-chars"
AUD, ISS = "ticketguard", "ticketing-backend"


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {"sub": "user-1", "aud": AUD, "iss": ISS, "iat": now, "exp": now + 300}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, object], alg: str = "none") -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(payload).encode())}."


@pytest.fixture
def verifier(rsa_pair: tuple[str, str]) -> TokenVerifier:
    return TokenVerifier(
        hs_secret=SECRET, rs_public_key=rsa_pair[1], audience=AUD, issuer=ISS, leeway_seconds=5
    )


def test_valid_hs256_and_rs256_tokens_pass(verifier: TokenVerifier, rsa_pair: tuple[str, str]) -> None:
    assert verifier.verify(jwt.encode(claims(), SECRET, algorithm="HS256")).subject == "user-1"
    assert verifier.verify(jwt.encode(claims(sub="u2"), rsa_pair[0], algorithm="RS256")).subject == "u2"


def _hs_confusion(public_pem: str) -> str:
    # The classic: sign HS256 with the RSA *public* key as the HMAC secret (PyJWT refuses PEM secrets
    # when encoding, so build the signature by hand).
    import hashlib
    import hmac

    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims()).encode())
    sig = hmac.new(public_pem.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(sig)}"


ATTACKS = [
    "alg_none",
    "alg_none_capitalised",
    "hs_rs_confusion",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "issued_in_future",
    "wrong_audience",
    "wrong_issuer",
    "missing_exp",
    "missing_iat",
    "missing_aud",
    "missing_sub",
    "hs512_with_secret",
    "garbage",
    "lifetime_ten_years",
    "lifetime_over_max",
]


def make_attack(name: str, rsa_pair: tuple[str, str]) -> str:
    now = int(time.time())
    _private, public = rsa_pair
    if name == "alg_none":
        return unsigned(claims())
    if name == "alg_none_capitalised":
        return unsigned(claims(), alg="None")
    if name == "hs_rs_confusion":
        return _hs_confusion(public)
    if name == "bad_signature":
        good = jwt.encode(claims(), SECRET, algorithm="HS256")
        return good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    if name == "expired":
        return jwt.encode(claims(iat=now - 600, exp=now - 60), SECRET, algorithm="HS256")
    if name == "not_yet_valid":
        return jwt.encode(claims(nbf=now + 600), SECRET, algorithm="HS256")
    if name == "issued_in_future":
        return jwt.encode(claims(iat=now + 600, exp=now + 900), SECRET, algorithm="HS256")
    if name == "wrong_audience":
        return jwt.encode(claims(aud="someone-else"), SECRET, algorithm="HS256")
    if name == "wrong_issuer":
        return jwt.encode(claims(iss="attacker"), SECRET, algorithm="HS256")
    if name.startswith("missing_"):
        return jwt.encode(claims(**{name.removeprefix("missing_"): None}), SECRET, algorithm="HS256")
    if name == "hs512_with_secret":
        return jwt.encode(claims(), SECRET, algorithm="HS512")
    if name == "lifetime_ten_years":  # the probe's token: valid for 10 years
        return jwt.encode(claims(exp=now + 10 * 365 * 86_400), SECRET, algorithm="HS256")
    if name == "lifetime_over_max":  # one second over JWT_MAX_LIFETIME_SECONDS (24 h by default)
        return jwt.encode(claims(exp=now + 86_401), SECRET, algorithm="HS256")
    return "not.a.token"


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_refused(attack: str, verifier: TokenVerifier, rsa_pair: tuple[str, str]) -> None:
    with pytest.raises(AuthError):
        verifier.verify(make_attack(attack, rsa_pair))


def test_jwt_without_maximum_lifetime_is_refused(rsa_pair: tuple[str, str]) -> None:
    """Issue 11, finding 5: a token valid for ten years was accepted. Now exp - iat is capped by
    JWT_MAX_LIFETIME_SECONDS (24 h): a longer lifetime, or a token without iat, is refused; at the cap it
    passes, for either algorithm, and the cap is configurable."""
    now = int(time.time())
    default = TokenVerifier(hs_secret=SECRET, rs_public_key=rsa_pair[1], audience=AUD, issuer=ISS)
    at_cap = claims(iat=now, exp=now + 86_400)
    assert default.verify(jwt.encode(at_cap, SECRET, algorithm="HS256")).subject == "user-1"
    assert default.verify(jwt.encode(at_cap, rsa_pair[0], algorithm="RS256")).subject == "user-1"
    for token in (
        jwt.encode(claims(exp=now + 10 * 365 * 86_400), SECRET, algorithm="HS256"),
        jwt.encode(claims(exp=now + 10 * 365 * 86_400), rsa_pair[0], algorithm="RS256"),
        jwt.encode(claims(iat=None), SECRET, algorithm="HS256"),
        jwt.encode(claims(iat="yesterday"), SECRET, algorithm="HS256"),
    ):
        with pytest.raises(AuthError):
            default.verify(token)
    short = TokenVerifier(
        hs_secret=SECRET, rs_public_key=None, audience=AUD, issuer=ISS, max_lifetime_seconds=600
    )
    with pytest.raises(AuthError, match="JWT_MAX_LIFETIME_SECONDS"):
        short.verify(jwt.encode(claims(exp=now + 900), SECRET, algorithm="HS256"))
    with pytest.raises(ValueError, match="JWT_MAX_LIFETIME_SECONDS"):
        short.issue("u", 601, now=now)


def test_rs256_refused_when_only_hs_configured(rsa_pair: tuple[str, str]) -> None:
    hs_only = TokenVerifier(hs_secret=SECRET, rs_public_key=None, audience=AUD, issuer=ISS)
    with pytest.raises(AuthError, match="algorithm not accepted"):
        hs_only.verify(jwt.encode(claims(), rsa_pair[0], algorithm="RS256"))
    assert hs_only.algorithms == ["HS256"]


def test_disabled_without_keys() -> None:
    assert not TokenVerifier(hs_secret=None, rs_public_key=None, audience=AUD, issuer=ISS).enabled


def test_public_key_from_file(tmp_path, rsa_pair: tuple[str, str]) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "pub.pem"
    path.write_text(rsa_pair[1])
    v = TokenVerifier(hs_secret=None, rs_public_key=str(path), audience=AUD, issuer=ISS)
    assert v.verify(jwt.encode(claims(), rsa_pair[0], algorithm="RS256")).kind == "jwt"
    with pytest.raises(ValueError, match="JWT_PUBLIC_KEY"):
        TokenVerifier(hs_secret=None, rs_public_key=str(tmp_path / "missing.pem"), audience=AUD, issuer=ISS)


def test_issued_token_verifies() -> None:
    v = TokenVerifier(hs_secret=SECRET, rs_public_key=None, audience=AUD, issuer=ISS)
    assert v.verify(v.issue("svc", 60, now=int(time.time()))).subject == "svc"


def test_api_key_shape_and_hash() -> None:
    new = generate_api_key()
    assert api_key_prefix(new.key) == new.prefix
    pepper = b"p" * 32
    stored = hash_api_key(new.key, pepper)
    assert new.key not in stored
    assert len(stored) == 64
    assert key_matches(new.key, stored, pepper)
    assert not key_matches(new.key + "x", stored, pepper)
    assert not key_matches(new.key, stored, b"q" * 32)
    for bad in ("", "tgk_", "tgk_short_x", "Bearer x", "tgk_12345678_"):
        assert api_key_prefix(bad) is None


def test_scopes_validated() -> None:
    assert parse_scopes("score, metrics") == {"score", "metrics"}
    with pytest.raises(ValueError, match="scopes must be"):
        parse_scopes("admin")
    with pytest.raises(ValueError, match="scopes must be"):
        parse_scopes("")
