"""The tracker API's query parameters: read, checked, and refused with the field
named (400, see :mod:`habitat_http.tracker.api`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

#: The widest window a list may cover, in seconds (31 days): a query's cost grows
#: with its window, and a live tracker looks at the last hours.
MAX_WINDOW: Final = 31 * 86400
#: The window when ``since`` is not given, in seconds (1 day).
DEFAULT_WINDOW: Final = 86400
#: The longest callsign or cursor accepted, in characters.
MAX_TEXT: Final = 128


class BadParameter(Exception):
    """A query parameter that cannot be used; the API answers 400 naming ``field``.

    Attributes:
        field: the parameter's name.
        error: one sentence saying what it must be.
    """

    def __init__(self, field: str, error: str) -> None:
        super().__init__(error)
        self.field = field
        self.error = error


def integer(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """The integer parameter ``name`` (``default`` when absent), within [low, high].

    Raises:
        BadParameter: not a decimal integer, or out of range.
    """
    text = args.get(name)
    if text is None:
        return default
    try:
        value = int(text, 10)
    except ValueError:
        raise BadParameter(name, f"{name} must be a whole number, not {text[:40]!r}.") from None
    if not low <= value <= high:
        raise BadParameter(name, f"{name} must be between {low} and {high}.")
    return value


def since(args: Mapping[str, str], now: float) -> int:
    """The ``since`` parameter, UNIX seconds: :data:`DEFAULT_WINDOW` before ``now``
    when absent, and no more than :data:`MAX_WINDOW` before it.

    Raises:
        BadParameter: not a whole number, before the widest window, or in the future.
    """
    earliest = int(now) - MAX_WINDOW
    value = integer(args, "since", int(now) - DEFAULT_WINDOW, -(2**62), 2**62)
    if value < earliest:
        raise BadParameter(
            "since",
            f"since must be a UNIX time within the last {MAX_WINDOW // 86400} days"
            f" (at least {earliest}).",
        )
    if value > now + 60:
        raise BadParameter("since", "since must not be in the future.")
    return value


def cursor(args: Mapping[str, str], name: str = "after") -> str | None:
    """A paging cursor (an ``_id`` or a callsign from the previous page's ``next``).

    Raises:
        BadParameter: empty, or longer than :data:`MAX_TEXT` characters.
    """
    value = args.get(name)
    if value is not None and not 0 < len(value) <= MAX_TEXT:
        raise BadParameter(name, f"{name} must be 1 to {MAX_TEXT} characters long.")
    return value
