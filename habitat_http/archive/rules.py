"""The archive's documents and merge rules, as habitat's users know them. Pure code.

- ``payload_telemetry``: one document per distinct telemetry string. Its id is the
  sha256 (hex) of the string's base64 text, ``data._raw`` is that text, and
  ``receivers`` maps each receiving callsign to when it heard the string. The
  first report of a callsign is kept; a later one of the same string adds nothing.
- ``listener_information``: a new version for a callsign only when its data
  differs from that callsign's latest version.
- ``listener_telemetry``: one document per position report.

The parser's TELEM messages (see :mod:`habitat_http.parser.sink`) add what a string
parsed into to its payload_telemetry document, beside ``_raw`` and the receivers:
the parsed fields, or ``_parse_error`` when it did not parse. When several TELEM
messages are made for one string (a configuration added later, a reparse), the
document keeps one, chosen by :func:`parse_rank` alone, so the outcome does not
depend on the order they arrive in: a success beats a failure, then the later
``time_parsed`` wins, then the greater message id. A TELEM may arrive before the
string's first receiver; it then makes the document, with no receivers yet.

Each receiver entry names the receiver's latest listener_information and
listener_telemetry documents at or before the message's time_created. Only
documents from messages delivered before it count (in the store's delivery
order: id order on SQLite, (transaction id, id) order on PostgreSQL), so that
processing the same messages again, after a crash, gives the same documents.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ..messages import (
    LISTENER_INFO,
    LISTENER_TELEM,
    RECEIVED_TELEM,
    TELEM,
    Message,
    StoredMessage,
)

PAYLOAD_TELEMETRY: Final = "payload_telemetry"
LISTENER_INFORMATION: Final = "listener_information"
LISTENER_TELEMETRY: Final = "listener_telemetry"
DOCUMENT_TYPES: Final = (PAYLOAD_TELEMETRY, LISTENER_INFORMATION, LISTENER_TELEMETRY)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal data gives equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_id(raw: str) -> str:
    """The payload_telemetry id: sha256 (hex) of the base64 text of the string."""
    return hashlib.sha256(raw.encode("ascii")).hexdigest()


def listener_doc_id(doc_type: str, message: Message) -> str:
    """A listener document's id: sha256 (hex) of its type, callsign, time and data."""
    key = canonical_json([doc_type, message.callsign, message.time_created, message.data])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def receiver_entry(
    message: Message, information_id: str | None, telemetry_id: str | None
) -> dict[str, Any]:
    """The ``receivers[callsign]`` entry for a RECEIVED_TELEM message.

    Times are UNIX seconds (clock-corrected), frequency is in Hz (only when the
    receiver gave it), and the latest_* keys hold document ids or None.
    """
    entry: dict[str, Any] = {
        "time_created": message.time_created,
        "time_uploaded": message.time_uploaded,
    }
    if "frequency" in message.data:
        entry["frequency"] = message.data["frequency"]
    entry["latest_listener_information"] = information_id
    entry["latest_listener_telemetry"] = telemetry_id
    return entry


def estimate_time_created(times: Sequence[float]) -> int:
    """habitat's estimate of when a string was sent, from its receivers' times.

    The mean of the receivers' time_created after dropping those more than one
    (population) standard deviation from the mean, rounded to whole UNIX seconds.

    Raises:
        ValueError: ``times`` is empty.
    """
    if not times:
        raise ValueError("no receiver times")
    mean = math.fsum(times) / len(times)
    spread = math.sqrt(math.fsum((t - mean) ** 2 for t in times) / len(times))
    # A relative epsilon keeps points exactly one deviation away, as "more than" says.
    kept = [t for t in times if abs(t - mean) <= spread * (1 + 1e-12)]
    return round(math.fsum(kept) / len(kept))


def listener_document(
    doc_type: str,
    doc_id: str,
    callsign: str,
    time_created: int,
    time_uploaded: int,
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """A listener_information or listener_telemetry document as ``habitat-http
    archive`` prints it (times in UNIX seconds)."""
    return {
        "_id": doc_id,
        "type": doc_type,
        "callsign": callsign,
        "time_created": time_created,
        "time_uploaded": time_uploaded,
        "data": dict(data),
    }


def payload_document(
    doc_id: str,
    raw: str,
    receivers: Mapping[str, Mapping[str, Any]],
    estimated_time_created: int,
    parsed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A payload_telemetry document as ``habitat-http archive`` prints it.

    Args:
        parsed: the data of the TELEM merged into it (without ``_raw``): the parsed
            fields, ``_sentence``, ``_protocol``, ``_parsed``..., or ``_parse_error``.
    """
    return {
        "_id": doc_id,
        "type": PAYLOAD_TELEMETRY,
        "data": {**(parsed or {}), "_raw": raw},
        "receivers": dict(receivers),
        "estimated_time_created": estimated_time_created,
    }


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a TELEM message sets on its string's payload_telemetry document.

    Attributes:
        data: the TELEM's data without ``_raw`` (canonical JSON is made by the backend).
        payload: the payload's callsign: parsed, or guessed from the sentence for a
            failure; None when not even a callsign could be read.
        time_parsed: when the parser made it, in seconds since the UNIX epoch.
        latitude, longitude: degrees, only for a success with a valid fix (numbers,
            and no ``_fix_invalid``); else None.
        altitude: metres, under the same condition.
        parse_error: True when the string did not parse.
        message: the TELEM message's id.
    """

    data: dict[str, Any]
    payload: str | None
    time_parsed: float
    latitude: float | None
    longitude: float | None
    altitude: float | None
    parse_error: bool
    message: int

    @property
    def rank(self) -> tuple[int, float, int]:
        """See :func:`parse_rank`."""
        return parse_rank(self.parse_error, self.time_parsed, self.message)


def parse_rank(parse_error: bool, time_parsed: float, message: int) -> tuple[int, float, int]:
    """Which of several TELEM messages for one string the document keeps: the
    greatest rank. A success beats a failure, then a later ``time_parsed``, then a
    greater message id; so the choice depends on the set, not on arrival order."""
    return (0 if parse_error else 1, time_parsed, message)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def parsed_from(message: StoredMessage) -> Parsed:
    """The :class:`Parsed` of a TELEM message (shape: habitat_http.parser.sink)."""
    data = {k: v for k, v in message.data.items() if k != "_raw"}
    error = data.get("_parse_error")
    if isinstance(error, Mapping):
        return Parsed(
            data,
            error.get("callsign") if isinstance(error.get("callsign"), str) else None,
            float(error.get("time_parsed") or 0),
            None,
            None,
            None,
            True,
            message.id,
        )
    meta = data.get("_parsed")
    if not isinstance(meta, Mapping):
        meta = {}
    valid = data.get("_fix_invalid") is not True
    latitude, longitude = _number(data.get("latitude")), _number(data.get("longitude"))
    if not valid or latitude is None or longitude is None:
        latitude = longitude = None
    payload = data.get("payload")
    return Parsed(
        data,
        payload if isinstance(payload, str) else None,
        float(meta.get("time_parsed") or 0),
        latitude,
        longitude,
        _number(data.get("altitude")) if valid else None,
        False,
        message.id,
    )


class ArchiveTx(Protocol):
    """The reads and writes :func:`apply` needs, inside one database transaction.

    Each backend implements it over its own SQL; ``table`` is
    ``listener_information`` or ``listener_telemetry``.
    """

    def listener_applied(self, table: str, message_id: int) -> bool:
        """Whether the message already made (or was folded into) a document."""
        ...

    def latest_information_data(self, callsign: str, before_message: int) -> str | None:
        """Canonical JSON data of the callsign's latest listener_information version
        made by a message delivered before message ``before_message``, or None."""
        ...

    def latest_listener_id(
        self, table: str, callsign: str, time_created: int, before_message: int
    ) -> str | None:
        """The callsign's latest document at or before ``time_created``, among those
        made by messages delivered before message ``before_message``."""
        ...

    def insert_listener(self, table: str, doc_id: str, message: StoredMessage, data: str) -> None:
        """Add a listener document made by ``message``; ``data`` is canonical JSON."""
        ...

    def payload_receivers(self, doc_id: str) -> dict[str, Any] | None:
        """The receivers of a payload_telemetry document, or None if there is none."""
        ...

    def save_payload(
        self, doc_id: str, raw: str, receivers: dict[str, Any], estimate: int, first_message: int
    ) -> None:
        """Create or update a payload_telemetry document's receivers and estimate."""
        ...

    def parsed_rank(self, doc_id: str) -> tuple[int, float, int] | None:
        """The :func:`parse_rank` of the TELEM merged into a document, or None if
        there is no document or it has none."""
        ...

    def save_parsed(
        self, doc_id: str, raw: str, parsed: Parsed, estimate: int, first_message: int
    ) -> None:
        """Set a document's parsed data and columns, creating the document (with no
        receivers, ``estimate`` and ``first_message``) if there is none."""
        ...


_LISTENER_TABLES: Final = {LISTENER_INFO: LISTENER_INFORMATION, LISTENER_TELEM: LISTENER_TELEMETRY}


def apply(tx: ArchiveTx, batch: Sequence[StoredMessage]) -> None:
    """Merge stored messages (in delivery order) into the documents; idempotent.

    Raises whatever ``tx`` raises; the caller rolls the transaction back.
    """
    for message in batch:
        if message.type == RECEIVED_TELEM:
            _merge_telemetry(tx, message)
        elif message.type == TELEM:
            _merge_parsed(tx, message)
        elif message.type in _LISTENER_TABLES:
            _add_listener(tx, _LISTENER_TABLES[message.type], message)


def _merge_parsed(tx: ArchiveTx, message: StoredMessage) -> None:
    raw = message.data["_raw"]
    doc_id = payload_id(raw)
    parsed = parsed_from(message)
    current = tx.parsed_rank(doc_id)
    if current is not None and current >= parsed.rank:
        return  # a better (or this very) parse is already there: idempotent
    tx.save_parsed(doc_id, raw, parsed, message.time_created, message.id)


def _add_listener(tx: ArchiveTx, table: str, message: StoredMessage) -> None:
    if tx.listener_applied(table, message.id):
        return
    data = canonical_json(message.data)
    if table == LISTENER_INFORMATION and (
        tx.latest_information_data(message.callsign, message.id) == data
    ):
        return  # unchanged: no new version
    tx.insert_listener(table, listener_doc_id(table, message), message, data)


def _merge_telemetry(tx: ArchiveTx, message: StoredMessage) -> None:
    raw = message.data["string"]
    doc_id = payload_id(raw)
    receivers = tx.payload_receivers(doc_id)
    if receivers is None:
        receivers = {}
    elif message.callsign in receivers:
        return  # first report of a receiver wins; also makes re-delivery harmless
    receivers[message.callsign] = receiver_entry(
        message,
        tx.latest_listener_id(
            LISTENER_INFORMATION, message.callsign, message.time_created, message.id
        ),
        tx.latest_listener_id(
            LISTENER_TELEMETRY, message.callsign, message.time_created, message.id
        ),
    )
    estimate = estimate_time_created([r["time_created"] for r in receivers.values()])
    tx.save_payload(doc_id, raw, receivers, estimate, message.id)


#: Reads one page of a document type's rows, ordered by their first column (the id
#: of the message that first made the document), after a given id.
PageReader = Callable[[str, int], Sequence[Sequence[Any]]]


def paged_documents(doc_type: str, after: int, read_page: PageReader) -> Iterator[dict[str, Any]]:
    """Documents of ``doc_type`` in the order of the message that first made them.

    Args:
        doc_type: one of :data:`DOCUMENT_TYPES`.
        after: only documents first made by a message with a greater id.
        read_page: the backend's query for one page; its rows are
            ``(message id, id, raw, receivers, estimated_time_created, data)`` for
            payload_telemetry (``data``: the parsed data or None) and
            ``(message id, id, callsign, time_created, time_uploaded, data)`` for
            the listener documents, JSON as text or as already decoded values.

    Raises:
        ValueError: ``doc_type`` is not a document type (on the first ``next``).
    """
    if doc_type not in DOCUMENT_TYPES:
        raise ValueError(f"unknown document type {doc_type!r}")
    last = after
    while rows := read_page(doc_type, last):
        for row in rows:
            if doc_type == PAYLOAD_TELEMETRY:
                _, doc_id, raw, receivers, estimate, parsed = row
                yield payload_document(doc_id, raw, _decoded(receivers), estimate, _decoded(parsed))
            else:
                _, doc_id, callsign, created, uploaded, data = row
                yield listener_document(
                    doc_type, doc_id, callsign, created, uploaded, _decoded(data)
                )
        last = rows[-1][0]


def _decoded(value: Any) -> Any:
    """JSON stored as text (SQLite) decoded; PostgreSQL's JSONB arrives decoded."""
    return json.loads(value) if isinstance(value, str) else value


# -- what a tracker reads -------------------------------------------------------------

#: The columns of a track point, in the order :func:`track_point` takes them.
TRACK_COLUMNS: Final = (
    "id, payload, estimated_time_created, time_parsed, latitude, longitude, altitude, data,"
    " receivers"
)
#: The columns of a parse failure, in the order :func:`problem` takes them.
PROBLEM_COLUMNS: Final = "id, payload, estimated_time_created, raw, data, receivers"
#: The columns of a payload summary, in the order :func:`payload_summary` takes them.
SUMMARY_COLUMNS: Final = (
    "payload, count(*), sum(parse_error), min(estimated_time_created),"
    " max(estimated_time_created), max(altitude), count(latitude)"
)
#: The columns of a listener document, in the order :func:`listener_row` takes them.
LISTENER_COLUMNS: Final = "id, callsign, time_created, time_uploaded, data"


def track_point(row: Sequence[Any]) -> dict[str, Any]:
    """One position of a payload's track.

    Returns:
        ``{"_id", "payload", "estimated_time_created" (UNIX s), "time_parsed"
        (UNIX s), "latitude", "longitude" (degrees), "altitude" (metres or None),
        "data" (the parsed data, without ``_raw``), "receivers" (the document's
        ``receivers``: callsign -> :func:`receiver_entry`)}``.
    """
    doc_id, payload, estimate, parsed_at, latitude, longitude, altitude, data, receivers = row
    return {
        "_id": doc_id,
        "payload": payload,
        "estimated_time_created": estimate,
        "time_parsed": parsed_at,
        "latitude": latitude,
        "longitude": longitude,
        "altitude": altitude,
        "data": _decoded(data),
        "receivers": _decoded(receivers),
    }


def problem(row: Sequence[Any]) -> dict[str, Any]:
    """One string of a payload that did not parse.

    Returns:
        ``{"_id", "payload", "estimated_time_created" (UNIX s), "_raw" (base64),
        "sentence" (the text, undecodable bytes replaced), "receivers" (callsigns),
        "_parse_error" (see habitat_http.parser.result.ParseResult.parse_error)}``.
    """
    doc_id, payload, estimate, raw, data, receivers = row
    return {
        "_id": doc_id,
        "payload": payload,
        "estimated_time_created": estimate,
        "_raw": raw,
        "sentence": base64.b64decode(raw).decode("ascii", "replace"),
        "receivers": sorted(_decoded(receivers)),
        "_parse_error": (_decoded(data) or {}).get("_parse_error"),
    }


def payload_summary(row: Sequence[Any]) -> dict[str, Any]:
    """One payload heard: ``{"payload", "strings", "parse_failures", "first_heard",
    "last_heard", "max_altitude", "positions"}`` (counts of distinct strings, and of
    those with a valid position; times are estimated_time_created, UNIX seconds;
    the greatest altitude of a valid fix in metres, or None)."""
    payload, strings, failures, first, last, highest, positions = row
    return {
        "payload": payload,
        "strings": int(strings),
        "parse_failures": int(failures or 0),
        "first_heard": first,
        "last_heard": last,
        "max_altitude": highest,
        "positions": int(positions),
    }


def listener_row(doc_type: str, row: Sequence[Any]) -> dict[str, Any]:
    """A listener document from the :data:`LISTENER_COLUMNS` of its row."""
    doc_id, callsign, created, uploaded, data = row
    return listener_document(doc_type, doc_id, callsign, created, uploaded, _decoded(data))


_CALLSIGN_AT_START: Final = re.compile(rb"\$+([A-Za-z0-9/_-]+)")


def sentence_callsign(raw: str) -> str | None:
    """The callsign a telemetry string starts with (after ``$$``), or None.

    Used to find strings that no parser has seen yet (their ``payload`` is unset).
    """
    found = _CALLSIGN_AT_START.match(base64.b64decode(raw))
    return found.group(1).decode("ascii") if found else None


def parsed_columns(parsed: Parsed) -> tuple[Any, ...]:
    """``(payload, time_parsed, latitude, longitude, altitude, parse_error,
    telem_message)``: the columns :class:`Parsed` sets besides ``data``."""
    return (
        parsed.payload,
        parsed.time_parsed,
        parsed.latitude,
        parsed.longitude,
        parsed.altitude,
        1 if parsed.parse_error else 0,
        parsed.message,
    )
