"""The default mode: parse a sentence that no payload_configuration describes.

Pure code with no I/O. So that an unconfigured payload still shows up on a map,
a sentence is read in the common UKHAS layout::

    $$CALLSIGN,sentence_id,time,latitude,longitude,altitude[,more...]*CHECKSUM

* the checksum must be present and right: 4 hex digits are crc16-ccitt, 2 are xor;
* ``sentence_id`` is an integer; ``time`` is read as stdtelem.time;
* ``latitude`` and ``longitude`` are one pair of the same format, guessed by range:
  decimal degrees have at most 3 digits before the point (90 and 180 need no
  more), so if either has 4 or more (``5232.57415``, ``-00152.58697``) the pair is
  ddmm.mmmm, else dd.dddd. Latitude must lie within +-90, longitude +-180;
* ``altitude`` is an integer, or a decimal number when it has a point;
* the fields after altitude are kept as text, in order, in ``_extra_data``.

The result is marked ``_used_default_config: true``, as habitat marked parses made
with its default configuration. A sentence that does not fit is a parse failure.
Payloads with another layout (no sentence id, a date before the position, scaled
integer coordinates) need a payload_configuration.
"""

from __future__ import annotations

from typing import Any, Final

from . import sensors
from .ukhas import Framed, SentenceError, check_checksum

_SENTENCE_ID: Final = sensors.make_ascii_int()
_ALTITUDE_INT: Final = sensors.make_ascii_int()
_ALTITUDE_FLOAT: Final = sensors.make_ascii_float()
_COORDINATES: Final = {
    "dd": (
        sensors.make_coordinate("dd.dddd", "latitude"),
        sensors.make_coordinate("dd.dddd", "longitude"),
    ),
    "ddmm": (
        sensors.make_coordinate("ddmm.mmmm", "latitude"),
        sensors.make_coordinate("ddmm.mmmm", "longitude"),
    ),
}


def _integer_digits(text: str) -> int:
    return len(text.strip().lstrip("+-").partition(".")[0])


def guess_coordinate_format(latitude: str, longitude: str) -> str:
    """``"ddmm"`` if either text has 4 or more digits before the point, else ``"dd"``."""
    if _integer_digits(latitude) >= 4 or _integer_digits(longitude) >= 4:
        return "ddmm"
    return "dd"


def parse_default(framed: Framed) -> dict[str, Any]:
    """Parse *framed* in the default mode (see the module docstring).

    Returns:
        ``{"payload", "sentence_id", "time", "latitude", "longitude", "altitude",
        "_extra_data"?, "_sentence", "_protocol": "UKHAS", "_used_default_config": True}``.

    Raises:
        SentenceError: no checksum or a wrong one, fewer than 5 fields after the
            callsign, or a field that does not read as the layout says.
    """
    if framed.checksum is None:
        raise SentenceError("the default mode needs a checksum")
    check_checksum(framed, "crc16-ccitt" if len(framed.checksum) == 4 else "xor")
    parts = framed.body.split(",")
    if len(parts) < 6:
        raise SentenceError(
            f"the sentence has {len(parts) - 1} fields after the callsign; the default"
            " layout needs sentence_id, time, latitude, longitude and altitude"
        )
    data: dict[str, Any] = {"payload": parts[0]}
    kind = guess_coordinate_format(parts[3], parts[4])
    latitude, longitude = _COORDINATES[kind]
    altitude = _ALTITUDE_FLOAT if "." in parts[5] else _ALTITUDE_INT
    for name, sensor, text in (
        ("sentence_id", _SENTENCE_ID, parts[1]),
        ("time", sensors.time, parts[2]),
        ("latitude", latitude, parts[3]),
        ("longitude", longitude, parts[4]),
        ("altitude", altitude, parts[5]),
    ):
        try:
            data[name] = sensor(text)
        except ValueError as e:
            raise SentenceError(f"default mode, {name}: {e}") from None
    if len(parts) > 6:
        data["_extra_data"] = parts[6:]
    data["_sentence"] = framed.text
    data["_protocol"] = "UKHAS"
    data["_used_default_config"] = True
    return data
