"""Logging a dependency's failures without flooding the log: one line when it goes down, at most one line per
interval while it stays down (with the count of failures and their kinds), one line when it is back.

Without this, every request that meets a dead database or Redis writes its own warning: a 6-second database
outage under load wrote 2,600 lines, a 5-second Redis outage 546 — the lines that matter (when it broke,
when it came back) drowned in copies. With it, an outage of any length and load writes O(1) lines per
interval:

    WARNING database down: OperationalError
    WARNING database still down: 2,593 failures in the last 10.0 s (OperationalError ×2,000, …)
    INFO    database back up after 6.2 s (2,600 failures)

Use one `OutageLog` per dependency and process (`outage_log("database")` returns the shared one), call
``failure(kind)`` where the failure is met and ``ok()`` where a call to it succeeded. ``ok()`` while up is one
attribute read (it sits on the scoring path). A dependency that flaps — failures between successes — stays
"down" until it has gone ``settle_s`` without a failure, so flapping cannot flood the log with state changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

__all__ = ["OutageLog", "ThrottledLog", "outage_log"]


class ThrottledLog:
    """A repeated event logged at most once per ``interval_s``: the first at once, then one summary line
    per interval with the count and the most frequent kinds (e.g. failed authentications under attack)."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        interval_s: float = 10.0,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.interval_s = interval_s
        self.level = level
        self.clock = clock
        self._lock = threading.Lock()
        self._last_line = float("-inf")
        self._kinds: Counter[str] = Counter()  # since the last line, by kind

    def event(self, kind: str) -> None:
        now = self.clock()
        args: tuple[object, ...]
        with self._lock:
            if not self._kinds and now - self._last_line >= self.interval_s:
                self._last_line = now
                message, args = "%s: %s", (self.what, kind)
            else:
                self._kinds[kind] += 1
                if now - self._last_line < self.interval_s:
                    return
                counted = sum(self._kinds.values())
                kinds = ", ".join(f"{k} ×{n:,}" for k, n in self._kinds.most_common(3))
                message = "%s: %s more in the last %.1f s (%s)"
                args = (self.what, f"{counted:,}", now - self._last_line, kinds)
                self._last_line = now
                self._kinds.clear()
        self.logger.log(self.level, message, *args)


class OutageLog:
    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        interval_s: float = 10.0,
        settle_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.interval_s = interval_s
        self.settle_s = settle_s
        self.clock = clock
        self.down = False
        self._lock = threading.Lock()
        self._since = 0.0  # when it went down
        self._last_failure = 0.0
        self._last_line = 0.0
        self._total = 0
        self._kinds: Counter[str] = Counter()  # failures since the last line, by kind

    def failure(self, kind: str) -> None:
        """A call to the dependency failed (``kind``: the exception type or a short reason)."""
        now = self.clock()
        with self._lock:
            self._last_failure = now
            self._total += 1
            if not self.down:
                self.down = True
                self._since = self._last_line = now
                self._kinds.clear()
                self.logger.warning("%s down: %s", self.what, kind)
                return
            self._kinds[kind] += 1
            if now - self._last_line < self.interval_s:
                return
            counted = sum(self._kinds.values())
            kinds = ", ".join(f"{k} ×{n:,}" for k, n in self._kinds.most_common(3))
            elapsed = now - self._last_line
            self._last_line = now
            self._kinds.clear()
        self.logger.warning(
            "%s still down: %s failures in the last %.1f s (%s)", self.what, f"{counted:,}", elapsed, kinds
        )

    def ok(self) -> None:
        """A call to the dependency succeeded."""
        if not self.down:  # the common case, on every request: no lock, no clock
            return
        now = self.clock()
        with self._lock:
            if not self.down or now - self._last_failure < self.settle_s:
                return
            self.down = False
            duration, total = now - self._since, self._total
            self._total = 0
            self._kinds.clear()
        self.logger.info("%s back up after %.1f s (%s failures)", self.what, duration, f"{total:,}")


_SHARED: dict[str, OutageLog] = {}
_SHARED_LOCK = threading.Lock()


def outage_log(what: str, logger: logging.Logger | None = None) -> OutageLog:
    """The process's one `OutageLog` for ``what`` (e.g. "database", "redis"): every code path that meets
    the same dependency reports to it, so an outage is one story in the log, not one per path."""
    with _SHARED_LOCK:
        if what not in _SHARED:
            _SHARED[what] = OutageLog(logger or logging.getLogger("ticketguard.outage"), what)
        return _SHARED[what]
