"""Chain ETL settings, retry policy and error classification (no chain, no database)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import requests
from pydantic import ValidationError
from web3.exceptions import ProviderConnectionError, Web3RPCError

from ticketguard.chain.pipeline import EtlConfig, backoff_delay, cursor_name
from ticketguard.chain.reader import is_transient, reader_from_settings, web3_for_url
from ticketguard.config import Settings

ADDRESS = "0x" + "ab" * 20


@pytest.fixture(autouse=True)
def _no_chain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared fixture clears the database variables; the chain ones are cleared here."""
    for name in list(os.environ):
        if name.startswith("CHAIN_") or name in ("WEB3_PROVIDER", "CONTRACT_ADDRESS"):
            monkeypatch.delenv(name)


def test_backoff_doubles_until_the_cap() -> None:
    ceilings = [backoff_delay(n, base_s=0.5, max_s=5.0, jitter=1.0) for n in range(1, 7)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


@pytest.mark.parametrize("jitter", [0.0, 0.3, 0.999])
def test_backoff_jitter_stays_between_half_and_full_delay(jitter: float) -> None:
    delay = backoff_delay(3, base_s=1.0, max_s=60.0, jitter=jitter)
    assert 2.0 <= delay <= 4.0
    assert delay == pytest.approx(4.0 * (0.5 + jitter / 2))


def _rpc_error(code: int) -> Web3RPCError:
    return Web3RPCError(
        "node said no", rpc_response={"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "x"}}
    )


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status}", response=response)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (requests.ConnectionError("refused"), True),
        (requests.Timeout("slow"), True),
        (ConnectionRefusedError(), True),
        (ProviderConnectionError("down"), True),
        (_http_error(429), True),
        (_http_error(503), True),
        (_http_error(401), False),
        (_rpc_error(-32005), True),
        (_rpc_error(-32603), True),
        (_rpc_error(-32602), False),
        (ValueError("bug"), False),
    ],
)
def test_only_failures_a_retry_can_cure_are_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_settings_read_chain_variables_with_seconds_as_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAIN_CONFIRMATIONS", "3")
    monkeypatch.setenv("CHAIN_BATCH_BLOCKS", "500")
    monkeypatch.setenv("CHAIN_START_BLOCK", "17000000")
    monkeypatch.setenv("CHAIN_RETRY_BASE_DELAY", "0.25")
    monkeypatch.setenv("CHAIN_RETRY_MAX_DELAY", "PT1M")
    monkeypatch.setenv("CONTRACT_ADDRESS", ADDRESS)
    settings = Settings()
    config = EtlConfig.from_settings(settings)
    assert (config.confirmations, config.batch_blocks, config.start_block) == (3, 500, 17_000_000)
    assert (config.retry_base_delay_s, config.retry_max_delay_s) == (0.25, 60.0)
    assert settings.chain_rpc_timeout == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("chain_batch_blocks", 0, "chain_batch_blocks"),
        ("chain_confirmations", -1, "chain_confirmations"),
        ("chain_retry_base_delay", "-1", "chain_retry_base_delay"),
        ("chain_rpc_timeout", "soon", "chain_rpc_timeout"),
    ],
)
def test_bad_chain_settings_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{field: value})


def test_etl_needs_a_contract_and_a_usable_provider() -> None:
    with pytest.raises(ValueError, match="CONTRACT_ADDRESS is not set"):
        EtlConfig.from_settings(Settings())
    with pytest.raises(ValueError, match="WEB3_PROVIDER is not set"):
        reader_from_settings(Settings())
    with pytest.raises(
        ValueError, match=r"ws:// is not supported by the ETL; use the provider's http\(s\)://"
    ):
        web3_for_url("ws://127.0.0.1:8546")
    with pytest.raises(ValueError, match="http\\(s\\):// URL or an IPC socket path, got ftp://"):
        web3_for_url("ftp://node")


def test_etl_config_lists_every_problem() -> None:
    with pytest.raises(
        ValueError, match="batch_blocks must be >= 1, got 0; retry_attempts must be >= 1, got 0"
    ):
        EtlConfig(contract_address=ADDRESS, batch_blocks=0, retry_attempts=0)


def test_cursor_is_per_chain_and_contract() -> None:
    assert cursor_name(1, ADDRESS.upper().replace("0X", "0x")) == f"1:{ADDRESS}"
    assert cursor_name(1, ADDRESS) != cursor_name(10, ADDRESS)
