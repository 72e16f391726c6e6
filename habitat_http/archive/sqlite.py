"""The archive's tables in the SQLite database of the store.

Every batch is applied in one write transaction (queued with the gateway's
writers), so a payload_telemetry merge reads and writes its document with the
database's single writer lock held: concurrent reports of one string never lose a
receiver.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from ..messages import StoredMessage
from ..store.sqlite import SQLiteStore
from . import migrations, queries, rules
from .queries import SAVE_PARSED as _SAVE_PARSED

#: One page of each document type, by the message that first made it.
_PAGES: Final = {
    rules.PAYLOAD_TELEMETRY: "SELECT first_message, id, raw, receivers, estimated_time_created,"
    " data FROM payload_telemetry WHERE first_message > ? ORDER BY first_message LIMIT 1000",
    **{
        table: "SELECT source_message, id, callsign, time_created, time_uploaded, data"
        f" FROM {table} WHERE source_message > ? ORDER BY source_message LIMIT 1000"
        for table in (rules.LISTENER_INFORMATION, rules.LISTENER_TELEMETRY)
    },
}


class _SQLiteArchiveTx:
    """:class:`habitat_http.archive.rules.ArchiveTx` on one SQLite write transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def listener_applied(self, table: str, message_id: int) -> bool:
        sql = f"SELECT 1 FROM {table} WHERE source_message = ?"
        return self.conn.execute(sql, (message_id,)).fetchone() is not None

    def latest_information_data(self, callsign: str, before_message: int) -> str | None:
        row = self.conn.execute(
            "SELECT data FROM listener_information WHERE callsign = ? AND source_message < ?"
            " ORDER BY time_created DESC, source_message DESC LIMIT 1",
            (callsign, before_message),
        ).fetchone()
        return None if row is None else str(row[0])

    def latest_listener_id(
        self, table: str, callsign: str, time_created: int, before_message: int
    ) -> str | None:
        row = self.conn.execute(
            f"SELECT id FROM {table} WHERE callsign = ? AND time_created <= ?"
            " AND source_message < ? ORDER BY time_created DESC, source_message DESC LIMIT 1",
            (callsign, time_created, before_message),
        ).fetchone()
        return None if row is None else str(row[0])

    def insert_listener(self, table: str, doc_id: str, message: StoredMessage, data: str) -> None:
        self.conn.execute(
            f"INSERT OR IGNORE INTO {table} (id, callsign, time_created, time_uploaded, data,"
            " source_message) VALUES (?, ?, ?, ?, ?, ?)",
            (
                doc_id,
                message.callsign,
                message.time_created,
                message.time_uploaded,
                data,
                message.id,
            ),
        )

    def payload_receivers(self, doc_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT receivers FROM payload_telemetry WHERE id = ?", (doc_id,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save_payload(
        self, doc_id: str, raw: str, receivers: dict[str, Any], estimate: int, first_message: int
    ) -> None:
        self.conn.execute(
            "INSERT INTO payload_telemetry (id, raw, receivers, estimated_time_created,"
            " first_message) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " receivers = excluded.receivers,"
            " estimated_time_created = excluded.estimated_time_created",
            (doc_id, raw, rules.canonical_json(receivers), estimate, first_message),
        )

    def parsed_rank(self, doc_id: str) -> tuple[int, float, int] | None:
        row = self.conn.execute(
            "SELECT parse_error, time_parsed, telem_message FROM payload_telemetry WHERE id = ?",
            (doc_id,),
        ).fetchone()
        if row is None or row[2] is None:
            return None
        return rules.parse_rank(bool(row[0]), row[1], row[2])

    def save_parsed(
        self, doc_id: str, raw: str, parsed: rules.Parsed, estimate: int, first_message: int
    ) -> None:
        self.conn.execute(
            _SAVE_PARSED.replace("%s", "?"),
            (
                doc_id,
                raw,
                estimate,
                first_message,
                rules.canonical_json(parsed.data),
                *rules.parsed_columns(parsed),
            ),
        )


class SQLiteArchive(queries.ArchiveReads):
    """payload_telemetry, listener_information and listener_telemetry in SQLite.

    Args:
        store: the store whose database holds the archive tables; the archive
            uses its connection and locks.
    """

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.dialect = store.dialect
        self._ready = False

    def initialize(self, at_startup: bool = True) -> None:
        """Create or migrate the archive's tables, in one write transaction (under
        the store's cross-process write lock).

        Raises:
            SchemaTooNew, MigrationNeeded, StoreUnavailable.
        """
        with self.store.write() as conn:
            migrations.migrate(conn, self.store.dialect, self.store.path, at_startup)
        self._ready = True

    def apply(self, batch: Sequence[StoredMessage]) -> None:
        """Merge ``batch`` (stored messages, in id order) into the archive, atomically.

        Idempotent: applying a message again changes nothing.

        Raises:
            StoreUnavailable: nothing of the batch was applied.
        """
        if not self._ready:
            self.initialize()
        with self.store.write() as conn:
            rules.apply(_SQLiteArchiveTx(conn), batch)

    def close(self) -> None:
        """Release this process's connection."""
        self.store.close()

    def _version(self, conn: sqlite3.Connection) -> int:
        if self._ready:
            return len(migrations.MIGRATIONS[self.store.dialect])
        return migrations.version(conn, self.store.dialect)

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self.store.read() as conn:
            if self._version(conn) < 2:
                return []  # only reads: nothing parsed before the tables exist
            return conn.execute(sql, params).fetchall()

    def _page(self, doc_type: str, after: int) -> list[Any]:
        with self.store.read() as conn:
            version = self._version(conn)
            if version == 0:
                return []
            sql = _PAGES[doc_type]
            if version < 2 and doc_type == rules.PAYLOAD_TELEMETRY:
                sql = sql.replace(" data FROM", " NULL FROM")
            return conn.execute(sql, (after,)).fetchall()
