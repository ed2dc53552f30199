"""The rate-limited failure log: a simulated outage of N requests writes O(1) lines per interval, whatever N;
state changes (down, back up) are always written; a flapping dependency cannot flood with state changes."""

from __future__ import annotations

import logging

import pytest

from ticketguard.kit.outage import OutageLog, ThrottledLog, outage_log


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lines() -> tuple[logging.Logger, list[str]]:
    logger = logging.getLogger(f"test-outage-{id(object())}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    out: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            out.append(f"{record.levelname} {record.getMessage()}")

    logger.addHandler(Collect())
    return logger, out


@pytest.mark.parametrize("n", [10, 1_000, 100_000])
def test_an_outage_of_n_requests_logs_a_constant_number_of_lines(
    lines: tuple[logging.Logger, list[str]], n: int
) -> None:
    logger, out = lines
    clock = Clock()
    log = OutageLog(logger, "database", interval_s=10.0, clock=clock)
    for i in range(n):  # n failures spread over 6 s, as in the probe's outage
        clock.now = 1000.0 + 6.0 * i / n
        log.failure("OperationalError" if i % 3 else "DatabaseUnavailable")
    clock.now = 1007.5
    log.ok()
    assert out == [
        "WARNING database down: DatabaseUnavailable",
        f"INFO database back up after 7.5 s ({n:,} failures)",
    ]


def test_a_long_outage_summarises_once_per_interval_with_the_count(
    lines: tuple[logging.Logger, list[str]],
) -> None:
    logger, out = lines
    clock = Clock()
    log = OutageLog(logger, "redis", interval_s=10.0, clock=clock)
    for i in range(3000):  # 100 failures a second for 30 s
        clock.now = 1000.0 + i / 100
        log.failure("ConnectionError" if i % 2 else "TimeoutError")
    assert len(out) == 3
    assert out[0] == "WARNING redis down: TimeoutError"
    assert out[1].startswith("WARNING redis still down: 1,000 failures in the last 10.0 s (")
    assert "ConnectionError ×500" in out[1]
    assert "TimeoutError ×500" in out[1]
    assert out[2].startswith("WARNING redis still down: 1,000 failures")


def test_ok_while_up_logs_nothing_and_a_flapping_dependency_stays_down(
    lines: tuple[logging.Logger, list[str]],
) -> None:
    logger, out = lines
    clock = Clock()
    log = OutageLog(logger, "database", interval_s=10.0, settle_s=1.0, clock=clock)
    for _ in range(1000):
        log.ok()
    assert out == []
    for i in range(400):  # a failure and a success every 10 ms: one down, no up/down storm
        clock.now = 1000.0 + i / 100
        log.failure("OperationalError")
        log.ok()
    assert out == ["WARNING database down: OperationalError"]
    clock.now += 1.5  # settled: the next success declares it back
    log.ok()
    assert out[-1] == "INFO database back up after 5.5 s (400 failures)"
    log.failure("OperationalError")  # a new outage is a new story
    assert out[-1] == "WARNING database down: OperationalError"


def test_throttled_events_are_one_line_then_a_count_per_interval(
    lines: tuple[logging.Logger, list[str]],
) -> None:
    logger, out = lines
    clock = Clock()
    log = ThrottledLog(logger, "auth failed", interval_s=10.0, level=logging.INFO, clock=clock)
    for i in range(5000):  # a credential-stuffing run: 250 a second for 20 s
        clock.now = 1000.0 + i / 250
        log.event("bad signature on /api/v1/ml/predict/fraud")
    assert len(out) == 2
    assert out[0] == "INFO auth failed: bad signature on /api/v1/ml/predict/fraud"
    assert out[1].startswith("INFO auth failed: 2,500 more in the last 10.0 s")


def test_one_shared_log_per_dependency() -> None:
    assert outage_log("database") is outage_log("database")
    assert outage_log("database") is not outage_log("redis")
