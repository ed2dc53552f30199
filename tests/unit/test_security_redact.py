from __future__ import annotations

import io
import json
import logging

import pytest

from ticketguard.security.logs import JsonFormatter, install_redaction, redactor
from ticketguard.security.redact import (
    Redactor,
    escape_crlf,
    hash_ip,
    hash_wallet,
    mask_ip,
    mask_wallet,
)

KEY = b"k" * 32
WALLET = "0x" + "ab12" * 10
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLXZhbHVl"


def test_ip_hash_is_stable_keyed_and_canonical() -> None:
    assert hash_ip("203.0.113.7", KEY) == hash_ip(" 203.0.113.7 ", KEY)
    assert hash_ip("2001:db8::1", KEY) == hash_ip("2001:0db8:0:0:0:0:0:1", KEY)
    assert hash_ip("203.0.113.7", KEY) != hash_ip("203.0.113.8", KEY)
    assert hash_ip("203.0.113.7", KEY) != hash_ip("203.0.113.7", b"other-key" * 4)
    token = hash_ip("203.0.113.7", KEY)
    assert token.startswith("ip:")
    assert len(token) <= 45
    assert "203" not in token


def test_wallet_hash_ignores_case() -> None:
    assert hash_wallet(WALLET, KEY) == hash_wallet(WALLET.upper().replace("0X", "0x"), KEY)


def test_masks() -> None:
    assert mask_ip("203.0.113.77") == "203.0.113.x"
    assert mask_ip("2001:db8:abcd:12::1") == "2001:db8:abcd::x"
    assert mask_ip("not an ip") == "[ip]"
    assert mask_wallet(WALLET) == "0xab12…ab12"


def test_crlf_written_out() -> None:
    assert escape_crlf("a\r\nb") == "a\\r\\nb"


@pytest.mark.parametrize(
    ("raw", "hidden"),
    [
        (f"Authorization: Bearer {JWT}", JWT),
        (f"token {JWT} used", JWT),
        ("key tgk_1a2b3c4d_Zm9vYmFyYmF6cXV4cXV1eA-_ok sent", "Zm9vYmFyYmF6cXV4cXV1eA"),
        ("password=hunter2-correct-horse", "hunter2"),
        ('{"otp": "492039"}', "492039"),
        ("mfa_code=123456 ok", "123456"),
        (f"wallet {WALLET} bought", WALLET),
        ("from 198.51.100.23 via proxy", "198.51.100.23"),
        ("from 2001:db8:1234:5678::abcd", "2001:db8:1234:5678::abcd"),
        ("mail alice.smith@example.org now", "alice.smith@example.org"),
    ],
)
def test_redactor_hides_secrets_and_personal_data(raw: str, hidden: str) -> None:
    assert hidden not in Redactor().text(raw)


def test_redactor_keeps_ordinary_text_and_times() -> None:
    text = "job refresh-views finished at 10:45:43 in 1.25 s, 3 rows"
    assert Redactor().text(text) == text


def test_exact_secret_values_are_removed() -> None:
    r = Redactor(["s3cr3t-value-from-settings"])
    assert "s3cr3t" not in r.text("connecting with s3cr3t-value-from-settings now")


def test_structures_redact_by_key_name() -> None:
    r = Redactor()
    out = r.value({"password": "x", "nested": {"api_key": "abc"}, "ip": "198.51.100.23", "n": 3})
    assert out == {
        "password": "[REDACTED]",
        "nested": {"api_key": "[REDACTED]"},
        "ip": "198.51.100.x",
        "n": 3,
    }


def test_json_log_line_is_one_line_and_scrubbed() -> None:
    install_redaction(["the-configured-jwt-secret-value"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tg.test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info(
            'login %s from %s\nFAKE {"level": "error"}',
            WALLET,
            "198.51.100.23",
            extra={"authorization": f"Bearer {JWT}", "detail": "secret the-configured-jwt-secret-value"},
        )
        try:
            raise ValueError(f"bad token {JWT}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["authorization"] == "[REDACTED]"
    for raw in (WALLET, "198.51.100.23", JWT, "the-configured-jwt-secret-value"):
        assert raw not in stream.getvalue()
    assert "\\n" in first["msg"]
    assert redactor() is not None


def test_configure_logging_replaces_console_handlers_once() -> None:
    from ticketguard.security.logs import configure_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        stream = io.StringIO()
        root.addHandler(logging.StreamHandler(io.StringIO()))  # what logging.basicConfig would leave
        configure_logging("INFO", ["configured-secret-value-123"], stream=stream)
        configure_logging("INFO", [], stream=stream)
        ours = [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]
        assert len(ours) == 1
        logging.getLogger("tg.test.cfg").warning("uses configured-secret-value-123 from 198.51.100.9")
        line = json.loads(stream.getvalue().splitlines()[-1])
        assert "configured-secret-value-123" not in line["msg"]
        assert "198.51.100.9" not in line["msg"]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
