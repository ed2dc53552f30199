"""The garbage collector's pauses reach the API's Prometheus metrics."""

from __future__ import annotations

import gc

from prometheus_client import REGISTRY

from ticketguard.api.metrics import GcPauseTimer


def _count(generation: str) -> float:
    value = REGISTRY.get_sample_value("ticketguard_gc_pause_seconds_count", {"generation": generation})
    return value or 0.0


def test_collections_are_timed_by_generation() -> None:
    timer = GcPauseTimer(flush_s=3600)
    before = _count("2"), _count("0")
    gc.callbacks.append(timer._on_gc)
    try:
        gc.collect(2)
        gc.collect(0)
        gc.collect(0)
    finally:
        gc.callbacks.remove(timer._on_gc)
    assert (_count("2"), _count("0")) == before  # nothing observed from inside the collector
    timer.flush()
    assert _count("2") >= before[0] + 1
    assert _count("0") >= before[1] + 2
    total = REGISTRY.get_sample_value("ticketguard_gc_pause_seconds_sum", {"generation": "2"})
    assert total is not None
    assert total > 0
