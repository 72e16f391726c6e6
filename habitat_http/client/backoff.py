"""Retry delays: exponential backoff with full jitter, honouring Retry-After.

Full jitter as described in "Exponential Backoff And Jitter" (AWS Architecture
Blog, 2015): the n-th delay in a row is uniform in [0, min(cap, base * 2**(n-1))].
A server's ``Retry-After`` (RFC 9110, section 10.2.3: delay-seconds or an
HTTP-date) is a floor: the client never asks sooner than told.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value (RFC 9110, 10.2.3).

    ``value`` is delay-seconds ("120") or an HTTP-date; ``now`` is seconds since
    the UNIX epoch, used for a date. Returns None for a missing or unparsable
    value, and never a negative number.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class Backoff:
    """The delay before the next attempt after consecutive retryable failures.

    ``base`` and ``cap`` are seconds (defaults 1 s and 300 s, as issue 14 asks);
    ``random`` returns a float in [0, 1) and is injected by tests. Not
    thread-safe: one uploader thread owns it.
    """

    def __init__(
        self,
        base: float = 1.0,
        cap: float = 300.0,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if not 0 < base <= cap:
            raise ValueError("Backoff needs 0 < base <= cap (seconds).")
        self.base = base
        self.cap = cap
        self._random = random
        self.failures = 0

    def ceiling(self) -> float:
        """The upper bound in seconds of the next delay: min(cap, base * 2**(failures-1))."""
        return min(self.cap, self.base * 2.0 ** max(0, self.failures - 1))

    def next_delay(self, retry_after: float | None = None) -> float:
        """Count one more failure and return the seconds to wait before retrying.

        The delay is uniform in [0, ceiling()] (full jitter), raised to
        ``retry_after`` (seconds) when the server gave one. A Retry-After above
        ``cap`` is cut to ``cap``, so a wrong header cannot stall a station for days.
        """
        self.failures += 1
        delay = float(self._random()) * self.ceiling()
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap))
        return delay

    def reset(self) -> None:
        """Forget the failures, after a request that got an answer to act on."""
        self.failures = 0
