"""The tracker API's JSON shapes, made from the archive's rows. Pure code.

Every time is given twice: UNIX seconds under its name, and ISO 8601 UTC (RFC 3339,
``Z``) under the same name plus ``_iso``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from . import state

#: Units of parsed fields, by field name. UKHAS payload_configurations carry no
#: units; these follow habitat's sensors (stdtelem.coordinate gives decimal
#: degrees, stdtelem.time the UTC time of day) and the UKHAS convention of metres
#: for altitude and degrees Celsius for temperatures. Other fields are shown as sent.
_UNITS: Final = (
    (re.compile(r"^(latitude|longitude)$"), "°"),
    (re.compile(r"altitude$"), "m"),
    (re.compile(r"^time$"), "UTC"),
    (re.compile(r"^temp"), "°C"),
    (re.compile(r"_?mv$"), "mV"),
    (re.compile(r"^(ascentrate|vertical_rate)$"), "m/s"),
)


def iso(seconds: float | None) -> str | None:
    """ISO 8601 UTC text of a UNIX time, e.g. ``2023-11-14T22:13:20Z``; None stays None."""
    if seconds is None:
        return None
    text = datetime.fromtimestamp(seconds, UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def timed(name: str, seconds: float | None) -> dict[str, Any]:
    """``{name: seconds, name + "_iso": iso(seconds)}``."""
    return {name: seconds, f"{name}_iso": iso(seconds)}


def unit(field: str) -> str | None:
    """The unit of a parsed field (see :data:`_UNITS`), or None when unknown."""
    return next((u for pattern, u in _UNITS if pattern.search(field.lower())), None)


def receivers(entries: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A string's receivers, earliest first: ``[{"callsign", "time_created",
    "time_created_iso", "frequency" (Hz or None)}]``."""
    out = [
        {
            "callsign": callsign,
            **timed("time_created", entry.get("time_created")),
            "frequency": entry.get("frequency"),
        }
        for callsign, entry in entries.items()
    ]
    return sorted(out, key=lambda r: (r["time_created"] or 0, r["callsign"]))


def point(doc: Mapping[str, Any]) -> dict[str, Any]:
    """One track point from :meth:`habitat_http.archive.Archive.track`'s shape.

    Returns:
        ``{"_id", "time", "time_iso" (estimated_time_created), "latitude",
        "longitude" (degrees), "altitude" (metres or None), "sentence_id",
        "sentence" (the text received), "fields" (every parsed field not starting
        with ``_``), "receivers" (see :func:`receivers`)}``.
    """
    data = doc.get("data") or {}
    return {
        "_id": doc["_id"],
        **timed("time", doc["estimated_time_created"]),
        "latitude": doc["latitude"],
        "longitude": doc["longitude"],
        "altitude": doc["altitude"],
        "sentence_id": data.get("sentence_id"),
        "sentence": data.get("_sentence"),
        "fields": {k: v for k, v in data.items() if not k.startswith("_") and k != "payload"},
        "receivers": receivers(doc.get("receivers") or {}),
    }


def payload(summary: Mapping[str, Any], recent: list[dict[str, Any]]) -> dict[str, Any]:
    """One payload of ``GET /api/payloads``.

    Args:
        summary: :meth:`habitat_http.archive.Archive.payloads_since`'s entry.
        recent: its latest positions, newest first (``Archive.recent``).

    Returns:
        ``{"callsign", "strings", "parse_failures", "positions", "first_heard",
        "last_heard" (+ ``_iso``), "max_altitude" (metres or None), "vertical_rate"
        (m/s or None), "state", "position" (the latest: ``time``, ``time_iso``,
        ``latitude``, ``longitude``, ``altitude``, ``sentence_id``; or None)}``.
    """
    rate = state.vertical_rate(recent)
    latest = point(recent[0]) if recent else None
    return {
        "callsign": summary["payload"],
        "strings": summary["strings"],
        "parse_failures": summary["parse_failures"],
        "positions": summary["positions"],
        **timed("first_heard", summary["first_heard"]),
        **timed("last_heard", summary["last_heard"]),
        "max_altitude": summary["max_altitude"],
        "vertical_rate": None if rate is None else round(rate, 2),
        "state": state.flight_state(rate),
        "position": None
        if latest is None
        else {
            key: latest[key]
            for key in ("time", "time_iso", "latitude", "longitude", "altitude", "sentence_id")
        },
    }


def listener(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One listener of ``GET /api/listeners``: ``{"callsign", "strings",
    "information", "telemetry"}``, each document ``{"time_created",
    "time_created_iso", "data"}`` or None."""

    def document(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if doc is None:
            return None
        return {**timed("time_created", doc["time_created"]), "data": doc["data"]}

    return {
        "callsign": entry["callsign"],
        "strings": entry["strings"],
        "information": document(entry["information"]),
        "telemetry": document(entry["telemetry"]),
    }


def problem(doc: Mapping[str, Any]) -> dict[str, Any]:
    """One parse failure: ``{"_id", "time", "time_iso", "sentence", "_raw",
    "receivers" (callsigns), "reason", "attempts"}`` (from ``_parse_error``)."""
    error = doc.get("_parse_error") or {}
    return {
        "_id": doc["_id"],
        **timed("time", doc["estimated_time_created"]),
        "sentence": doc["sentence"],
        "_raw": doc["_raw"],
        "receivers": doc["receivers"],
        "reason": error.get("reason"),
        "attempts": error.get("attempts", []),
    }
