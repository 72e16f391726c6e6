"""Per-request phase timing with a monotonic clock.

A request goes through ``read`` (body read and decompressed), ``parse`` (JSON or
form decoded), ``validate`` and ``commit`` (the store's durable commit); ``total``
covers the whole request. Phases a request never reached are absent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: The phases in the order a request goes through them.
PHASES = ("read", "parse", "validate", "commit")


class Phases:
    """Durations of one request's phases, in seconds.

    Args:
        clock: a monotonic clock in seconds (``time.perf_counter`` by default);
            injected so tests can step it.

    Attributes:
        durations: phase name -> seconds, in the order they ended.
        group_size: how many messages shared the store commit this request
            waited for (its commit group), or None before a commit.
    """

    __slots__ = ("_clock", "_last", "durations", "group_size", "start")

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self.start = self._last = clock()
        self.durations: dict[str, float] = {}
        self.group_size: int | None = None

    def end(self, phase: str) -> None:
        """Close ``phase``: it lasted from the end of the previous phase to now."""
        now = self._clock()
        self.durations[phase] = self.durations.get(phase, 0.0) + (now - self._last)
        self._last = now

    def skip(self) -> None:
        """Start the next phase now, leaving the time since the last one unaccounted."""
        self._last = self._clock()

    def total(self) -> float:
        """Seconds since the request started."""
        return self._clock() - self.start
