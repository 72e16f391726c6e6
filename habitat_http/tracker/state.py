"""A payload's vertical rate and flight state, from its latest positions. Pure code.

The rule (documented in README.rst, "Tracker"):

- the vertical rate is the least-squares slope of altitude (metres) against
  estimated_time_created (UNIX seconds) over the payload's latest positions: at
  most :data:`RATE_POINTS` of them, no older than :data:`RATE_WINDOW` seconds
  before the latest one. A single fit over several points smooths the noise of
  GPS altitude and of whole-second times;
- ``ascending`` when that rate is at least :data:`LEVEL_RATE` m/s, ``descending``
  when it is at most -:data:`LEVEL_RATE` m/s, and ``landed`` in between (a payload
  that floats level reads ``landed`` too: its altitude tells them apart);
- ``unknown`` when fewer than two such positions with an altitude, at different
  times, exist.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

#: The most positions the vertical rate is fitted over.
RATE_POINTS: Final = 10
#: Positions older than this many seconds before the latest are left out.
RATE_WINDOW: Final = 600
#: Metres per second below which a payload counts as level (landed).
LEVEL_RATE: Final = 1.0

ASCENDING: Final = "ascending"
DESCENDING: Final = "descending"
LANDED: Final = "landed"
UNKNOWN: Final = "unknown"


def vertical_rate(points: Sequence[dict[str, Any]]) -> float | None:
    """The smoothed vertical rate in metres per second, or None.

    Args:
        points: positions newest first, as :meth:`habitat_http.archive.Archive.recent`
            gives them (``estimated_time_created`` in UNIX seconds, ``altitude`` in
            metres or None).
    """
    usable = [p for p in points if isinstance(p.get("altitude"), int | float)]
    if not usable:
        return None
    latest = usable[0]["estimated_time_created"]
    fit = [
        (float(p["estimated_time_created"]), float(p["altitude"]))
        for p in usable[:RATE_POINTS]
        if latest - p["estimated_time_created"] <= RATE_WINDOW
    ]
    if len(fit) < 2:
        return None
    mean_t = math.fsum(t for t, _ in fit) / len(fit)
    mean_a = math.fsum(a for _, a in fit) / len(fit)
    spread = math.fsum((t - mean_t) ** 2 for t, _ in fit)
    if spread == 0:
        return None  # every point at one time: no slope
    return math.fsum((t - mean_t) * (a - mean_a) for t, a in fit) / spread


def flight_state(rate: float | None) -> str:
    """``ascending``, ``descending``, ``landed`` or ``unknown`` for a vertical rate
    in m/s (see the module's rule)."""
    if rate is None:
        return UNKNOWN
    if rate >= LEVEL_RATE:
        return ASCENDING
    if rate <= -LEVEL_RATE:
        return DESCENDING
    return LANDED
