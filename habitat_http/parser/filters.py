"""Filters: fix a sentence's text before parsing, or its fields after.

Pure code with no I/O. Names, settings and behaviour follow habitat's common
filters (ukhas/habitat ``habitat/filters.py``). A sentence's ``filters`` has two
stages, as in habitat:

* ``intermediate`` filters run on the sentence text (``"$$...*CHECKSUM"``) once its
  callsign is known, before the checksum is checked and the fields are split;
* ``post`` filters run on the dict of parsed fields, in order.

A filter object carries its settings beside ``type`` and ``filter``, e.g.
``{"type": "normal", "filter": "common.numeric_scale", "source": "battery",
"factor": 0.001, "round": 3}``. :func:`check` validates settings when a
document comes in; :func:`build_intermediate` and :func:`build_post` build the
function that runs. As in habitat, a filter that fails on one sentence (e.g. its
source field is missing or not a number) is skipped for that sentence: the caller
keeps the data from before it and records a warning.

The ``invalid_*`` filters set ``_fix_invalid: true`` on the data, habitat's mark
for a position not to be plotted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from .checksums import ALGORITHMS
from .sensors import round_half_away

IntermediateFilter = Callable[[str], str]
#: Changes the parsed fields in place; raises KeyError, ValueError or TypeError
#: (before changing anything) when it cannot run on this data.
PostFilter = Callable[[dict[str, Any]], None]

INTERMEDIATE_FILTERS: Final = frozenset({"common.semicolons_to_commas", "common.zero_pad_times"})
POST_FILTERS: Final = frozenset(
    {
        "common.numeric_scale",
        "common.simple_map",
        "common.invalid_always",
        "common.invalid_location_zero",
        "common.invalid_gps_lock",
    }
)
#: The errors a filter raises when it cannot run on one sentence's data.
RUN_ERRORS: Final = (KeyError, ValueError, TypeError, ArithmeticError)


class FilterConfigError(ValueError):
    """A filter's settings are wrong; *subpath* names the bad key below the filter."""

    def __init__(self, subpath: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.subpath = subpath


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _destination_ok(settings: Mapping[str, Any]) -> None:
    source = settings.get("source")
    if not isinstance(source, str) or not source:
        raise FilterConfigError(("source",), "needs a source field name")
    destination = settings.get("destination", source)
    if not isinstance(destination, str) or not destination:
        raise FilterConfigError(("destination",), "must be a field name")
    if destination.startswith("_") or destination == "payload":
        raise FilterConfigError(("destination",), "must not start with '_' or be 'payload'")


def check(stage: str, settings: Mapping[str, Any]) -> None:
    """Validate one filter object for *stage* (``"intermediate"`` or ``"post"``).

    Raises:
        FilterConfigError: unknown filter for this stage, or bad settings; its
            subpath names the key (e.g. ``("factor",)``).
    """
    name = settings.get("filter")
    known = INTERMEDIATE_FILTERS if stage == "intermediate" else POST_FILTERS
    if name not in known:
        raise FilterConfigError(
            ("filter",), f"unknown {stage} filter {name!r} (known: {', '.join(sorted(known))})"
        )
    if name == "common.numeric_scale":
        _destination_ok(settings)
        if not _is_number(settings.get("factor")):
            raise FilterConfigError(("factor",), "needs a number")
        if "offset" in settings and not _is_number(settings["offset"]):
            raise FilterConfigError(("offset",), "must be a number")
        if "round" in settings and (type(settings["round"]) is not int or settings["round"] < 1):
            raise FilterConfigError(("round",), "must be a whole number of figures >= 1")
    elif name == "common.simple_map":
        _destination_ok(settings)
        if not isinstance(settings.get("map"), dict):
            raise FilterConfigError(("map",), "needs an object mapping values to values")
    elif name == "common.invalid_gps_lock":
        if not isinstance(settings.get("ok"), list):
            raise FilterConfigError(("ok",), "needs a list of the values meaning a fix")
        if not isinstance(settings.get("source", "gps_lock"), str):
            raise FilterConfigError(("source",), "must be a field name")
    elif name in INTERMEDIATE_FILTERS:
        if settings.get("checksum", "crc16-ccitt") not in ALGORITHMS:
            raise FilterConfigError(("checksum",), f"must be one of {', '.join(ALGORITHMS)}")
        if name == "common.zero_pad_times":
            field = settings.get("field", 2)
            if type(field) is not int or field < 1:
                raise FilterConfigError(("field",), "must be a field index >= 1")


def round_significant(value: float, figures: int) -> float:
    """Round *value* to *figures* significant figures (habitat's ``round`` setting).

    ``round_significant(3.027, 3) == 3.03``; ``round_significant(0.0, 3) == 0.0``;
    halves go away from zero as in habitat (``round_significant(17.25, 3) == 17.3``).
    """
    if value == 0:
        return 0.0
    return round_half_away(value, figures - math.ceil(math.log10(abs(value))))


def _numeric_scale(settings: Mapping[str, Any]) -> PostFilter:
    source = settings["source"]
    destination = settings.get("destination", source)
    factor = float(settings["factor"])
    offset = float(settings.get("offset", 0.0))
    figures = settings.get("round")

    def numeric_scale(data: dict[str, Any]) -> None:
        value = float(data[source]) * factor + offset
        if figures is not None:
            value = round_significant(value, figures)
        data[destination] = value

    return numeric_scale


def _simple_map(settings: Mapping[str, Any]) -> PostFilter:
    source = settings["source"]
    destination = settings.get("destination", source)
    mapping = settings["map"]

    def simple_map(data: dict[str, Any]) -> None:
        value = data[source]
        # JSON object keys are text; parsed values may be numbers.
        data[destination] = mapping[value] if value in mapping else mapping[str(value)]

    return simple_map


def _invalid_always(data: dict[str, Any]) -> None:
    data["_fix_invalid"] = True


def _invalid_location_zero(data: dict[str, Any]) -> None:
    if data["latitude"] == 0 and data["longitude"] == 0:
        data["_fix_invalid"] = True


def _invalid_gps_lock(settings: Mapping[str, Any]) -> PostFilter:
    source = settings.get("source", "gps_lock")
    ok = list(settings["ok"])

    def invalid_gps_lock(data: dict[str, Any]) -> None:
        if data[source] not in ok:
            data["_fix_invalid"] = True

    return invalid_gps_lock


def build_post(settings: Mapping[str, Any]) -> PostFilter:
    """Build a post filter from its (checked) settings.

    Raises:
        FilterConfigError: as :func:`check` for stage ``post``.
    """
    check("post", settings)
    name = settings["filter"]
    if name == "common.numeric_scale":
        return _numeric_scale(settings)
    if name == "common.simple_map":
        return _simple_map(settings)
    if name == "common.invalid_gps_lock":
        return _invalid_gps_lock(settings)
    if name == "common.invalid_always":
        return _invalid_always
    return _invalid_location_zero


def _fix_checksum(algorithm: str, old: str, new: str) -> str:
    """Give *new* (``$$body*cs``) a checksum computed like *old*'s, if *old*'s was right.

    A wrong checksum stays wrong, so a filter never launders a corrupt sentence
    (habitat's UKHASChecksumFixer did the same).
    """
    old_body, star, old_sum = old[2:].rpartition("*")
    new_body, _, _ = new[2:].rpartition("*")
    if not star or algorithm == "none":
        return new
    compute = ALGORITHMS[algorithm]
    if compute(old_body.encode("ascii")) != old_sum.upper():
        return "$$" + new_body + "*" + old_sum
    return "$$" + new_body + "*" + compute(new_body.encode("ascii"))


def _semicolons_to_commas(settings: Mapping[str, Any]) -> IntermediateFilter:
    algorithm = settings.get("checksum", "crc16-ccitt")

    def semicolons_to_commas(text: str) -> str:
        body, star, checksum = text.rpartition("*") if "*" in text else (text, "", "")
        return _fix_checksum(algorithm, text, body.replace(";", ",") + star + checksum)

    return semicolons_to_commas


def _zero_pad_times(settings: Mapping[str, Any]) -> IntermediateFilter:
    algorithm = settings.get("checksum", "crc16-ccitt")
    index = settings.get("field", 2)

    def zero_pad_times(text: str) -> str:
        body, star, checksum = text.rpartition("*") if "*" in text else (text, "", "")
        fields = body.split(",")
        if len(fields) <= index:
            raise ValueError(f"the sentence has no field {index}")
        if ":" not in fields[index]:
            raise ValueError("only times written with ':' can be zero-padded")
        fields[index] = ":".join(f"{int(part):02d}" for part in fields[index].split(":"))
        return _fix_checksum(algorithm, text, ",".join(fields) + star + checksum)

    return zero_pad_times


def build_intermediate(settings: Mapping[str, Any]) -> IntermediateFilter:
    """Build an intermediate filter from its (checked) settings.

    ``common.semicolons_to_commas`` turns every ``;`` into ``,``;
    ``common.zero_pad_times`` writes field ``field`` (default 2, counting the
    callsign as 0) as ``HH:MM:SS`` with zeros, e.g. ``9:5:3`` -> ``09:05:03``. Both
    recompute the sentence's checksum with ``checksum`` (default crc16-ccitt) when it
    was right before.

    Raises:
        FilterConfigError: as :func:`check` for stage ``intermediate``.
    """
    check("intermediate", settings)
    if settings["filter"] == "common.semicolons_to_commas":
        return _semicolons_to_commas(settings)
    return _zero_pad_times(settings)
