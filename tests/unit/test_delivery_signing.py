"""Signed webhooks: what a receiver accepts and what it must refuse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketguard.delivery.signing import SignatureError, sign, verify

SECRET = "whsec-test-secret-of-some-length"


@given(body=st.binary(max_size=512), timestamp=st.integers(min_value=0, max_value=2**32))
def test_a_signed_body_verifies_at_its_time(body: bytes, timestamp: int) -> None:
    assert verify(SECRET, body, sign(SECRET, body, timestamp), now=timestamp) == timestamp


@given(body=st.binary(min_size=1, max_size=256), flip=st.integers(min_value=0, max_value=255))
def test_any_change_of_the_body_is_refused(body: bytes, flip: int) -> None:
    header = sign(SECRET, body, 1_700_000_000)
    changed = bytes([body[0] ^ (flip or 1)]) + body[1:]
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, changed, header, now=1_700_000_000)


def test_wrong_secret_stale_timestamp_and_moved_timestamp_are_refused() -> None:
    body = b'{"decision":"fraud"}'
    header = sign(SECRET, body, 1_700_000_000)
    with pytest.raises(SignatureError, match="does not match"):
        verify("another-secret", body, header, now=1_700_000_000)
    with pytest.raises(SignatureError, match="from now"):
        verify(SECRET, body, header, now=1_700_000_000 + 301)
    # the timestamp is signed: replaying the digest under a fresh timestamp does not verify
    digest = header.split("v1=")[1]
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, body, f"t=1700000400,v1={digest}", now=1_700_000_400)


@pytest.mark.parametrize("header", [None, "", "v1=abc", "t=12", "t=x,v1=ab", "garbage"])
def test_missing_or_malformed_headers_are_refused(header: str | None) -> None:
    with pytest.raises(SignatureError):
        verify(SECRET, b"{}", header, now=12)


def test_a_rotating_sender_may_sign_with_two_secrets() -> None:
    body = b"{}"
    old = sign("old-secret", body, 100)
    new = sign(SECRET, body, 100)
    header = f"{new},v1={old.split('v1=')[1]}"
    assert verify("old-secret", body, header, now=100) == 100
    assert verify(SECRET, body, header, now=100) == 100


def test_signing_without_a_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign("", b"{}", 1)
