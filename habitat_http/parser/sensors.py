"""Sensors: turn the text of one UKHAS field into a value.

Pure code with no I/O. Names and behaviour follow habitat's sensors
(ukhas/habitat ``habitat/sensors/base.py`` and ``stdtelem.py``); a
payload_configuration names one per field, e.g. ``"sensor": "base.ascii_int"``.

Each ``make_*`` function builds, once per configured field, a function
``text -> value`` that raises :class:`SensorError` (a ``ValueError``) on text it
refuses. Values are ``int``, ``float``, ``str`` or ``None``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

Value = int | float | str | None
Sensor = Callable[[str], Value]

#: The sensors a UKHAS payload_configuration field may name.
SENSOR_NAMES: Final = frozenset(
    {
        "stdtelem.time",
        "stdtelem.coordinate",
        "base.ascii_int",
        "base.ascii_float",
        "base.string",
        "base.constant",
    }
)

# habitat's rule: one to three "d", then either ".d..." (decimal degrees) or
# "mm.m..." (degrees and decimal minutes), one to six digits after the point.
_DD_FORMAT: Final = re.compile(r"d{1,3}\.d{1,6}")
_DDMM_FORMAT: Final = re.compile(r"d{1,3}mm\.m{1,6}")


class SensorError(ValueError):
    """A field's text is not what its sensor accepts; the message says why."""


def coordinate_format_kind(fmt: str) -> str:
    """Classify a stdtelem.coordinate ``format``.

    Args:
        fmt: e.g. ``"dd.dddd"`` (decimal degrees) or ``"ddmm.mmmm"`` (degrees and
            decimal minutes), with 1 to 3 ``d`` and 1 to 6 digits after the point,
            as habitat allowed.

    Returns:
        ``"dd"`` or ``"ddmm"``.

    Raises:
        SensorError: *fmt* is neither shape.
    """
    if _DD_FORMAT.fullmatch(fmt):
        return "dd"
    if _DDMM_FORMAT.fullmatch(fmt):
        return "ddmm"
    raise SensorError(f"format {fmt!r} is neither dd.dddd nor ddmm.mmmm")


def time(text: str) -> str:
    """stdtelem.time: ``HH:MM:SS``, ``HHMMSS``, ``HH:MM`` or ``HHMM``, as habitat took them.

    Returns:
        ``"HH:MM:SS"`` (seconds ``00`` when the text has none).

    Raises:
        SensorError: another shape, hours above 23, minutes above 59 or seconds
            above 61 (``time.strptime``'s limits, which habitat used).
    """
    n = len(text)
    if n == 8 and text[2] == ":" and text[5] == ":":
        hh, mm, ss = text[0:2], text[3:5], text[6:8]
    elif n == 6:
        hh, mm, ss = text[0:2], text[2:4], text[4:6]
    elif n == 5 and text[2] == ":":
        hh, mm, ss = text[0:2], text[3:5], "00"
    elif n == 4:
        hh, mm, ss = text[0:2], text[2:4], "00"
    else:
        raise SensorError(f"time {text!r} is not HH:MM:SS, HHMMSS, HH:MM or HHMM")
    digits = hh + mm + ss
    if not (digits.isdigit() and digits.isascii()):
        raise SensorError(f"time {text!r} has a non-digit")
    if int(hh) > 23 or int(mm) > 59 or int(ss) > 61:
        raise SensorError(f"time {text!r} is out of range")
    return f"{hh}:{mm}:{ss}"


def round_half_away(value: float, places: int) -> float:
    """Round *value* to *places* decimal places (negative: tens, hundreds...), halves
    away from zero.

    habitat ran on Python 2, whose ``round`` took the exact binary value of the
    float and rounded halves away from zero; Python 3's rounds them to even
    (``round(17.25, 1)`` is 17.2 in Python 3, 17.3 in habitat). This is habitat's.
    """
    if not math.isfinite(value):
        return value
    exact = Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return float(exact)


def _number(text: str) -> float:
    # Python 3 also reads "1_000"; habitat (Python 2) did not.
    if "_" in text:
        raise SensorError(f"{text!r} is not a number")
    try:
        return float(text)
    except ValueError:
        raise SensorError(f"{text!r} is not a number") from None


def make_coordinate(fmt: str, name: str) -> Sensor:
    """stdtelem.coordinate: latitude or longitude in decimal degrees (float).

    Args:
        fmt: the field's ``format`` (see :func:`coordinate_format_kind`).
            With ddmm.mmmm the value is degrees + minutes / 60, carrying the
            degrees' sign, rounded to 3 + (the input's decimal digits) places, as
            habitat did
            (halves away from zero, see :func:`round_half_away`).
        name: the field's name. ``latitude`` must lie within +-90 degrees, any
            other coordinate within +-180 (habitat's rule).

    Raises:
        SensorError: from :func:`coordinate_format_kind` when building; from the
            returned function on text that is not a number, ddmm.mmmm text without
            exactly one ``.`` or with minutes of 60 or more, or a value out of range.
    """
    kind = coordinate_format_kind(fmt)
    limit = 90.0 if name == "latitude" else 180.0

    def in_range(value: float, text: str) -> float:
        if not -limit <= value <= limit:  # also refuses nan
            raise SensorError(f"coordinate {text!r} is outside +-{limit:g} degrees")
        return value

    if kind == "dd":

        def decimal_degrees(text: str) -> float:
            return in_range(_number(text), text)

        return decimal_degrees

    def degrees_minutes(text: str) -> float:
        whole, dot, fraction = text.partition(".")
        if not dot or "." in fraction or len(whole) < 3:
            raise SensorError(f"coordinate {text!r} is not ddmm.mmmm")
        degrees = _number(whole[:-2])
        minutes = _number(whole[-2:] + "." + fraction)
        if not 0.0 <= minutes < 60.0:
            raise SensorError(f"coordinate {text!r} has minutes outside 0 .. 60")
        value = degrees + math.copysign(minutes / 60.0, degrees)
        value = round_half_away(value, len(fraction) + 3)
        return in_range(value, text)

    return degrees_minutes


def make_ascii_int(base: int = 10, optional: bool = False) -> Sensor:
    """base.ascii_int: an integer written in *base* (2 .. 36; habitat's ``base`` key).

    With *optional*, empty text gives ``None``. Surrounding spaces and a sign are
    accepted, as Python's ``int`` (which habitat used) accepts them.

    Raises:
        SensorError: text that is not an integer in *base*.
    """

    def ascii_int(text: str) -> int | None:
        if optional and text == "":
            return None
        if "_" in text:
            raise SensorError(f"{text!r} is not a base {base} integer")
        try:
            return int(text, base)
        except ValueError:
            raise SensorError(f"{text!r} is not a base {base} integer") from None

    return ascii_int


def make_ascii_float(optional: bool = False) -> Sensor:
    """base.ascii_float: a decimal number; nan and infinities are refused, as habitat did.

    With *optional*, empty text gives ``None``.

    Raises:
        SensorError: text that is not a finite number.
    """

    def ascii_float(text: str) -> float | None:
        if optional and text == "":
            return None
        value = _number(text)
        if math.isnan(value) or math.isinf(value):
            raise SensorError(f"{text!r} is not a finite number")
        return value

    return ascii_float


def string(text: str) -> str:
    """base.string: the text unchanged."""
    return text


def make_constant(expect: str = "") -> Sensor:
    """base.constant: the text must equal *expect* (habitat's ``expect``); gives ``None``.

    Raises:
        SensorError: the text differs.
    """

    def constant(text: str) -> None:
        if text != expect:
            raise SensorError(f"expected {expect!r}, got {text!r}")

    return constant
