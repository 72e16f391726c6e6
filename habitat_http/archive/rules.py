"""The archive's documents and merge rules, as habitat's users know them. Pure code.

- ``payload_telemetry``: one document per distinct telemetry string. Its id is the
  sha256 (hex) of the string's base64 text, ``data._raw`` is that text, and
  ``receivers`` maps each receiving callsign to when it heard the string. The
  first report of a callsign is kept; a later one of the same string adds nothing.
- ``listener_information``: a new version for a callsign only when its data
  differs from that callsign's latest version.
- ``listener_telemetry``: one document per position report.

Each receiver entry names the receiver's latest listener_information and
listener_telemetry documents at or before the message's time_created. Only
documents from messages delivered before it count (in the store's delivery
order: id order on SQLite, (transaction id, id) order on PostgreSQL), so that
processing the same messages again, after a crash, gives the same documents.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final, Protocol

from ..messages import LISTENER_INFO, LISTENER_TELEM, RECEIVED_TELEM, Message, StoredMessage

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
    doc_id: str, raw: str, receivers: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """A payload_telemetry document as ``habitat-http archive`` prints it."""
    return {
        "_id": doc_id,
        "type": PAYLOAD_TELEMETRY,
        "data": {"_raw": raw},
        "receivers": dict(receivers),
        "estimated_time_created": estimate_time_created(
            [r["time_created"] for r in receivers.values()]
        ),
    }


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
        """Create or update a payload_telemetry document."""
        ...


_LISTENER_TABLES: Final = {LISTENER_INFO: LISTENER_INFORMATION, LISTENER_TELEM: LISTENER_TELEMETRY}


def apply(tx: ArchiveTx, batch: Sequence[StoredMessage]) -> None:
    """Merge stored messages (in delivery order) into the documents; idempotent.

    Raises whatever ``tx`` raises; the caller rolls the transaction back.
    """
    for message in batch:
        if message.type == RECEIVED_TELEM:
            _merge_telemetry(tx, message)
        elif message.type in _LISTENER_TABLES:
            _add_listener(tx, _LISTENER_TABLES[message.type], message)


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
            ``(message id, id, raw, receivers)`` for payload_telemetry and
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
                _, doc_id, raw, receivers = row
                yield payload_document(doc_id, raw, _decoded(receivers))
            else:
                _, doc_id, callsign, created, uploaded, data = row
                yield listener_document(
                    doc_type, doc_id, callsign, created, uploaded, _decoded(data)
                )
        last = rows[-1][0]


def _decoded(value: Any) -> Any:
    """JSON stored as text (SQLite) decoded; PostgreSQL's JSONB arrives decoded."""
    return json.loads(value) if isinstance(value, str) else value
