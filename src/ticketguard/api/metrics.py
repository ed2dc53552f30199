"""Prometheus metrics of the scoring API.

With several worker processes the serve command sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start;
prometheus_client then keeps each process's values in files there and `/metrics` aggregates them
(multiprocess mode). With one process the default registry serves them directly.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections import deque
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Fine buckets below 50 ms (the SLA) where the answers are.
_BUCKETS = (
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)

REQUEST_SECONDS = Histogram(
    "ticketguard_request_seconds",
    "Scoring API request latency by route, method, status and decision.",
    ["route", "method", "status", "decision"],
    buckets=_BUCKETS,
)
DECISIONS = Counter(
    "ticketguard_decisions_total",
    "Scoring decisions by decision and whether the answer was degraded or replayed.",
    ["decision", "degraded", "replayed"],
)
MODEL_INFO = Gauge(
    "ticketguard_model_info",
    "1 for the model version each worker serves.",
    ["version"],
    multiprocess_mode="liveall",
)
GROUP_COMMIT_ROWS = Histogram(
    "ticketguard_group_commit_rows",
    "Answers written per group commit.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
)

GC_PAUSE_SECONDS = Histogram(
    "ticketguard_gc_pause_seconds",
    "Pauses of Python's cyclic garbage collector, by generation: every thread of the worker waits.",
    ["generation"],
    buckets=_BUCKETS,
)


class GcPauseTimer:
    """Times the collector's pauses into GC_PAUSE_SECONDS. The gc callback only appends to a deque
    (no lock: a collection can start while this thread holds a metrics lock); a daemon thread moves the
    samples into the histogram every few seconds."""

    def __init__(self, flush_s: float = 5.0) -> None:
        self.flush_s = flush_s
        self._started = 0.0
        self._pauses: deque[tuple[int, float]] = deque(maxlen=100_000)
        self._thread: threading.Thread | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._pauses.append((info["generation"], time.perf_counter() - self._started))

    def flush(self) -> None:
        while self._pauses:
            generation, seconds = self._pauses.popleft()
            GC_PAUSE_SECONDS.labels(generation=str(generation)).observe(seconds)

    def start(self) -> None:
        if self._thread is not None:
            return
        gc.callbacks.append(self._on_gc)

        def run() -> None:
            while True:
                time.sleep(self.flush_s)
                self.flush()

        self._thread = threading.Thread(target=run, name="gc-pause-metrics", daemon=True)
        self._thread.start()


GC_TIMER = GcPauseTimer()


def render() -> tuple[bytes, str]:
    """The exposition text of all processes (multiprocess mode) or of this one."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def set_model_version(previous: str | None, current: str | None) -> None:
    if previous is not None and previous != current:
        MODEL_INFO.labels(version=previous).set(0)
    if current is not None:
        MODEL_INFO.labels(version=current).set(1)
