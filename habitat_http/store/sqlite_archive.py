"""The archive's tables in the SQLite database of the store.

Every batch is applied in one write transaction (queued with the gateway's
writers), so a payload_telemetry merge reads and writes its document with the
database's single writer lock held: concurrent reports of one string never lose a
receiver.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from .. import archive
from ..messages import LISTENER_INFO, LISTENER_TELEM, RECEIVED_TELEM, Message
from .sqlite import SQLiteStore

_LISTENER_TABLES = {
    LISTENER_INFO: archive.LISTENER_INFORMATION,
    LISTENER_TELEM: archive.LISTENER_TELEMETRY,
}


class SQLiteArchive:
    """payload_telemetry, listener_information and listener_telemetry in SQLite.

    Args:
        store: the store whose database holds the archive tables.
    """

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def apply(self, batch: Sequence[Message]) -> None:
        """Merge ``batch`` (stored messages, in id order) into the archive, atomically.

        Idempotent: applying a message again changes nothing.

        Raises:
            StoreUnavailable: nothing of the batch was applied.
        """
        with self.store.write() as conn:
            for message in batch:
                if message.type == RECEIVED_TELEM:
                    self._merge_telemetry(conn, message)
                elif message.type in _LISTENER_TABLES:
                    self._add_listener(conn, _LISTENER_TABLES[message.type], message)

    def _add_listener(self, conn: sqlite3.Connection, table: str, message: Message) -> None:
        assert message.id is not None
        if conn.execute(
            f"SELECT 1 FROM {table} WHERE source_message = ?", (message.id,)
        ).fetchone():
            return  # applied before
        data = archive.canonical_json(message.data)
        if table == archive.LISTENER_INFORMATION:
            latest = conn.execute(
                "SELECT data FROM listener_information WHERE callsign = ? AND source_message < ?"
                " ORDER BY time_created DESC, source_message DESC LIMIT 1",
                (message.callsign, message.id),
            ).fetchone()
            if latest is not None and latest[0] == data:
                return  # unchanged: no new version
        conn.execute(
            f"INSERT OR IGNORE INTO {table} (id, callsign, time_created, time_uploaded, data,"
            " source_message) VALUES (?, ?, ?, ?, ?, ?)",
            (
                archive.listener_doc_id(table, message),
                message.callsign,
                message.time_created,
                message.time_uploaded,
                data,
                message.id,
            ),
        )

    def _latest(self, conn: sqlite3.Connection, table: str, message: Message) -> str | None:
        row = conn.execute(
            f"SELECT id FROM {table} WHERE callsign = ? AND time_created <= ?"
            " AND source_message < ? ORDER BY time_created DESC, source_message DESC LIMIT 1",
            (message.callsign, message.time_created, message.id),
        ).fetchone()
        return None if row is None else str(row[0])

    def _merge_telemetry(self, conn: sqlite3.Connection, message: Message) -> None:
        assert message.id is not None
        raw = message.data["string"]
        doc_id = archive.payload_id(raw)
        row = conn.execute(
            "SELECT receivers FROM payload_telemetry WHERE id = ?", (doc_id,)
        ).fetchone()
        receivers: dict[str, Any] = {} if row is None else json.loads(row[0])
        if message.callsign in receivers:
            return  # first report of a receiver wins; also makes re-delivery harmless
        receivers[message.callsign] = archive.receiver_entry(
            message,
            self._latest(conn, archive.LISTENER_INFORMATION, message),
            self._latest(conn, archive.LISTENER_TELEMETRY, message),
        )
        estimate = archive.estimate_time_created([r["time_created"] for r in receivers.values()])
        conn.execute(
            "INSERT INTO payload_telemetry (id, raw, receivers, estimated_time_created,"
            " first_message) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " receivers = excluded.receivers,"
            " estimated_time_created = excluded.estimated_time_created",
            (doc_id, raw, archive.canonical_json(receivers), estimate, message.id),
        )

    def close(self) -> None:
        """Release this process's connection."""
        self.store.close()

    def documents(self, doc_type: str, after: int = 0) -> Iterator[dict[str, Any]]:
        """Documents of ``doc_type`` in the order of the message that created them.

        Args:
            doc_type: payload_telemetry, listener_information or listener_telemetry.
            after: only documents first created by a message with a greater id.
        """
        last = after
        while True:
            with self.store.read() as conn:
                if doc_type == archive.PAYLOAD_TELEMETRY:
                    rows = conn.execute(
                        "SELECT first_message, id, raw, receivers FROM payload_telemetry"
                        " WHERE first_message > ? ORDER BY first_message LIMIT 1000",
                        (last,),
                    ).fetchall()
                    docs = [
                        archive.payload_document(i, raw, json.loads(rec)) for _, i, raw, rec in rows
                    ]
                elif doc_type in (archive.LISTENER_INFORMATION, archive.LISTENER_TELEMETRY):
                    rows = conn.execute(
                        f"SELECT source_message, id, callsign, time_created, time_uploaded, data"
                        f" FROM {doc_type} WHERE source_message > ? ORDER BY source_message"
                        " LIMIT 1000",
                        (last,),
                    ).fetchall()
                    docs = [
                        {
                            "_id": i,
                            "type": doc_type,
                            "callsign": cs,
                            "time_created": tc,
                            "time_uploaded": tu,
                            "data": json.loads(data),
                        }
                        for _, i, cs, tc, tu, data in rows
                    ]
                else:
                    raise ValueError(f"unknown document type {doc_type!r}")
            if not rows:
                return
            yield from docs
            last = rows[-1][0]
