"""Waiting in tests: on the condition itself, with a deadline — never a fixed sleep, never a wall-clock
limit on how fast something happened (speed is measured in `benchmarks/`, not asserted in tests)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_until(
    condition: Callable[[], object],
    *,
    timeout: float = 15.0,
    interval: float = 0.02,
    what: str | Callable[[], str] = "",
) -> None:
    """Poll ``condition()`` until it is truthy; fail naming ``what`` (a text, or a function giving one at
    the time of the failure, e.g. with a log's tail) after ``timeout`` seconds. The wait ends as soon as
    the thing happened; a loaded machine makes it slower, never red (the deadline is generous: it only
    stops a test that would otherwise hang)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout:.0f} s waiting until {said or condition!r}", pytrace=False)
        time.sleep(interval)
