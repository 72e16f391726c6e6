"""The archive's read queries for a tracker and for ``habitat-http reparse``, in SQL
that both backends share (only the parameter mark differs), and the paging around
them. Every query is served by an index of archive migration 2:
``payload_telemetry_time`` (estimated_time_created), ``payload_telemetry_payload``
(payload, estimated_time_created) and the partial ``payload_telemetry_problems``;
or of migration 3: ``listener_information_time`` and ``listener_telemetry_time``
(time_created, callsign); or the listener tables' ``*_latest`` (callsign,
time_created, source_message).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from . import rules

#: Runs one query (SQL with ``?`` marks, parameters) and gives its rows; a backend
#: replaces the marks with its own and returns [] before the archive's tables
#: (version 2) exist.
Query = Callable[[str, Sequence[Any]], Sequence[Sequence[Any]]]

_PAGE: Final = 1000

# MATERIALIZED (SQLite >= 3.35, PostgreSQL >= 12) keeps the time range a range scan
# of payload_telemetry_time; merged into the GROUP BY, a planner may instead walk
# every payload in payload_telemetry_payload.
PAYLOADS_SINCE: Final = (
    "WITH heard AS MATERIALIZED (SELECT payload, parse_error, estimated_time_created,"
    " latitude, altitude FROM payload_telemetry WHERE estimated_time_created >= ?)"
    f" SELECT {rules.SUMMARY_COLUMNS} FROM heard WHERE payload IS NOT NULL"
    " GROUP BY payload ORDER BY max(estimated_time_created) DESC, payload LIMIT ? OFFSET ?"
)
#: A payload's latest valid positions, newest first.
RECENT: Final = (
    f"SELECT {rules.TRACK_COLUMNS} FROM payload_telemetry"
    " WHERE payload = ? AND latitude IS NOT NULL"
    " ORDER BY estimated_time_created DESC, id DESC LIMIT ?"
)
TRACK: Final = (
    f"SELECT {rules.TRACK_COLUMNS} FROM payload_telemetry"
    " WHERE payload = ? AND estimated_time_created >= ? AND latitude IS NOT NULL"
    " AND (estimated_time_created > ? OR (estimated_time_created = ? AND id > ?))"
    " ORDER BY estimated_time_created, id LIMIT ?"
)
CURSOR: Final = "SELECT estimated_time_created, id FROM payload_telemetry WHERE id = ?"
PROBLEMS: Final = (
    f"SELECT {rules.PROBLEM_COLUMNS} FROM payload_telemetry"
    " WHERE payload = ? AND parse_error = 1"
    " AND (estimated_time_created < ? OR (estimated_time_created = ? AND id > ?))"
    " ORDER BY estimated_time_created DESC, id LIMIT ?"
)
#: Later than any estimated_time_created: the cursor of a first page, newest first.
_NEWEST: Final = 2**62

#: How many distinct strings each receiver callsign reported among those heard
#: since a time; the receivers are JSON keys, so each dialect has its own SQL.
LISTENER_STRINGS: Final = {
    "sqlite": "WITH heard AS MATERIALIZED (SELECT receivers FROM payload_telemetry"
    " WHERE estimated_time_created >= ?)"
    " SELECT r.key, count(*) FROM heard, json_each(heard.receivers) AS r GROUP BY r.key",
    "postgresql": "WITH heard AS MATERIALIZED (SELECT receivers FROM payload_telemetry"
    " WHERE estimated_time_created >= ?) SELECT r.key, count(*) FROM heard"
    " CROSS JOIN LATERAL jsonb_object_keys(heard.receivers) AS r(key) GROUP BY r.key",
}
#: The callsigns with a listener document of a type made since a time (MATERIALIZED,
#: as above: else SQLite walks all of ``*_latest`` to skip sorting for DISTINCT).
LISTENERS_ACTIVE: Final = {
    table: f"WITH active AS MATERIALIZED (SELECT callsign FROM {table} WHERE time_created >= ?)"
    " SELECT DISTINCT callsign FROM active"
    for table in (rules.LISTENER_INFORMATION, rules.LISTENER_TELEMETRY)
}
#: A callsign's latest listener document of a type.
LATEST_LISTENER: Final = {
    table: f"SELECT {rules.LISTENER_COLUMNS} FROM {table} WHERE callsign = ?"
    " ORDER BY time_created DESC, source_message DESC LIMIT 1"
    for table in (rules.LISTENER_INFORMATION, rules.LISTENER_TELEMETRY)
}
STRINGS_OF: Final = (
    "SELECT first_message, raw, estimated_time_created FROM payload_telemetry"
    " WHERE payload = ? AND first_message > ? ORDER BY first_message LIMIT ?"
)
UNPARSED: Final = (
    "SELECT first_message, raw, estimated_time_created FROM payload_telemetry"
    " WHERE payload IS NULL AND first_message > ? ORDER BY first_message LIMIT ?"
)


def payloads_since(
    query: Query, since: int, limit: int = 1000, offset: int = 0
) -> list[dict[str, Any]]:
    """See :meth:`habitat_http.archive.Archive.payloads_since`."""
    rows = query(PAYLOADS_SINCE, (since, limit, offset))
    return [rules.payload_summary(row) for row in rows]


def recent(query: Query, payload: str, limit: int) -> list[dict[str, Any]]:
    """See :meth:`habitat_http.archive.Archive.recent`."""
    return [rules.track_point(row) for row in query(RECENT, (payload, limit))]


def track(
    query: Query, payload: str, since: int, limit: int, after: str | None
) -> list[dict[str, Any]]:
    """See :meth:`habitat_http.archive.Archive.track`.

    Raises:
        ValueError: ``after`` names no payload_telemetry document.
    """
    cursor: tuple[int, str] = (since - 1, "")
    if after is not None:
        cursor = _cursor(query, after)
    rows = query(TRACK, (payload, since, cursor[0], cursor[0], cursor[1], limit))
    return [rules.track_point(row) for row in rows]


def problems(
    query: Query, payload: str, limit: int, after: str | None = None
) -> list[dict[str, Any]]:
    """See :meth:`habitat_http.archive.Archive.problems`.

    Raises:
        ValueError: ``after`` names no payload_telemetry document.
    """
    cursor: tuple[int, str] = (_NEWEST, "")
    if after is not None:
        cursor = _cursor(query, after)
    rows = query(PROBLEMS, (payload, cursor[0], cursor[0], cursor[1], limit))
    return [rules.problem(row) for row in rows]


def _cursor(query: Query, after: str) -> tuple[int, str]:
    """(estimated_time_created, id) of the document a page starts after.

    Raises:
        ValueError: ``after`` names no payload_telemetry document.
    """
    rows = query(CURSOR, (after,))
    if not rows:
        raise ValueError(f"no payload_telemetry document {after!r} to page after")
    return int(rows[0][0]), str(rows[0][1])


def listeners_since(
    query: Query, dialect: str, since: int, limit: int, after: str | None
) -> list[dict[str, Any]]:
    """See :meth:`habitat_http.archive.Archive.listeners_since`."""
    strings = {str(callsign): int(n) for callsign, n in query(LISTENER_STRINGS[dialect], (since,))}
    callsigns = set(strings)
    for sql in LISTENERS_ACTIVE.values():
        callsigns.update(str(row[0]) for row in query(sql, (since,)))
    page = sorted(c for c in callsigns if after is None or c > after)[:limit]
    listeners = []
    for callsign in page:
        latest = {}
        for table, sql in LATEST_LISTENER.items():
            rows = query(sql, (callsign,))
            latest[table] = rules.listener_row(table, rows[0]) if rows else None
        listeners.append(
            {
                "callsign": callsign,
                "strings": strings.get(callsign, 0),
                "information": latest[rules.LISTENER_INFORMATION],
                "telemetry": latest[rules.LISTENER_TELEMETRY],
            }
        )
    return listeners


def strings_of(query: Query, payload: str) -> Iterator[tuple[str, int]]:
    """See :meth:`habitat_http.archive.Archive.strings_of`."""
    last = 0
    while rows := query(STRINGS_OF, (payload, last, _PAGE)):
        for _, raw, estimate in rows:
            yield raw, int(estimate)
        last = rows[-1][0]
    last = 0
    while rows := query(UNPARSED, (last, _PAGE)):
        for _, raw, estimate in rows:
            if rules.sentence_callsign(raw) == payload:
                yield raw, int(estimate)
        last = rows[-1][0]


#: Sets a document's parsed data and columns (creating it with no receivers if
#: needed; see ArchiveTx.save_parsed), in ``%s`` marks. The estimate of a document
#: with no receivers yet is the TELEM's time_created; receivers replace it.
SAVE_PARSED: Final = (
    "INSERT INTO payload_telemetry (id, raw, receivers, estimated_time_created, first_message,"
    " data, payload, time_parsed, latitude, longitude, altitude, parse_error, telem_message)"
    " VALUES (%s, %s, '{}', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (id) DO UPDATE SET data = excluded.data, payload = excluded.payload,"
    " time_parsed = excluded.time_parsed, latitude = excluded.latitude,"
    " longitude = excluded.longitude, altitude = excluded.altitude,"
    " parse_error = excluded.parse_error, telem_message = excluded.telem_message,"
    " estimated_time_created = CASE WHEN payload_telemetry.receivers = '{}'"
    " THEN excluded.estimated_time_created ELSE payload_telemetry.estimated_time_created END"
)


class ArchiveReads:
    """The read side of the Archive protocol, written once for both backends on
    top of their ``_query`` and ``_page`` (only how a statement runs differs).

    Attributes:
        dialect: the store's ``sqlite`` or ``postgresql``, set by the backend.
    """

    dialect: str

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    def _page(self, doc_type: str, after: int) -> list[Any]:
        raise NotImplementedError

    def documents(self, doc_type: str, after: int = 0) -> Iterator[dict[str, Any]]:
        """Documents of ``doc_type`` in the order of the message that first made them.

        Args:
            doc_type: payload_telemetry, listener_information or listener_telemetry.
            after: only documents first made by a message with a greater id.

        Only reads: before the archive's tables exist there are no documents.
        """
        return rules.paged_documents(doc_type, after, self._page)

    def payloads_since(
        self, since: int, limit: int = 1000, offset: int = 0
    ) -> list[dict[str, Any]]:
        """See :meth:`habitat_http.archive.Archive.payloads_since`."""
        return payloads_since(self._query, since, limit, offset)

    def recent(self, payload: str, limit: int = 10) -> list[dict[str, Any]]:
        """See :meth:`habitat_http.archive.Archive.recent`."""
        return recent(self._query, payload, limit)

    def listeners_since(
        self, since: int, limit: int = 100, after: str | None = None
    ) -> list[dict[str, Any]]:
        """See :meth:`habitat_http.archive.Archive.listeners_since`."""
        return listeners_since(self._query, self.dialect, since, limit, after)

    def track(
        self, payload: str, since: int = 0, limit: int = 1000, after: str | None = None
    ) -> list[dict[str, Any]]:
        """See :meth:`habitat_http.archive.Archive.track`."""
        return track(self._query, payload, since, limit, after)

    def problems(
        self, payload: str, limit: int = 20, after: str | None = None
    ) -> list[dict[str, Any]]:
        """See :meth:`habitat_http.archive.Archive.problems`."""
        return problems(self._query, payload, limit, after)

    def strings_of(self, payload: str) -> Iterator[tuple[str, int]]:
        """See :meth:`habitat_http.archive.Archive.strings_of`."""
        return strings_of(self._query, payload)
