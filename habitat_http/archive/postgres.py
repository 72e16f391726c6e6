"""The archive's tables in PostgreSQL, safe with several message servers at once.

A batch is merged in one transaction. Before merging, it takes its locks in a
fixed (sorted) order, so two servers merging overlapping batches wait for each
other instead of deadlocking:

- the payload_telemetry rows of the batch's strings (created first if missing,
  then locked with ``SELECT ... FOR UPDATE``): concurrent merges of one string
  run one after the other, and no receiver is lost;
- a transaction-scoped advisory lock per listener callsign, so two servers
  cannot both decide that the same listener_information data is a new version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb

from ..messages import LISTENER_INFO, RECEIVED_TELEM, TELEM, StoredMessage
from ..store.postgres import PostgresStore
from . import migrations, queries, rules

#: pg_advisory_xact_lock key that serialises the archive's migrations across hosts.
_MIGRATION_LOCK: Final = 0x48414241  # "HABA"

#: One page of each document type, by the message that first made it. A
#: payload_telemetry row with neither receivers nor a TELEM is only ever seen
#: inside apply().
_PAGES: Final = {
    rules.PAYLOAD_TELEMETRY: "SELECT first_message, id, raw, receivers, estimated_time_created,"
    " data FROM payload_telemetry WHERE first_message > %s"
    " AND (receivers <> '{}' OR telem_message IS NOT NULL) ORDER BY first_message LIMIT 1000",
    **{
        table: "SELECT source_message, id, callsign, time_created, time_uploaded, data"
        f" FROM {table} WHERE source_message > %s ORDER BY source_message LIMIT 1000"
        for table in (rules.LISTENER_INFORMATION, rules.LISTENER_TELEMETRY)
    },
}


def _raw(message: StoredMessage) -> str:
    """The base64 text of the string a RECEIVED_TELEM or TELEM message is about."""
    return str(message.data["string" if message.type == RECEIVED_TELEM else "_raw"])


def _lock_key(callsign: str) -> int:
    """A stable 63-bit advisory lock key for a listener's callsign."""
    digest = hashlib.sha256(("listener_information:" + callsign).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class PostgresArchive(queries.ArchiveReads):
    """payload_telemetry, listener_information and listener_telemetry in PostgreSQL.

    Args:
        store: the store whose database holds the archive tables; the archive
            uses its connection pool.
    """

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.dialect = store.dialect
        self._ready = False

    def initialize(self, at_startup: bool = True) -> None:
        """Create or migrate the archive's tables, under an advisory lock shared by
        all hosts.

        Raises:
            SchemaTooNew, MigrationNeeded, StoreUnavailable.
        """
        with self.store.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            migrations.migrate(conn, self.store.dialect, repr(self.store), at_startup)
        self._ready = True

    def apply(self, batch: Sequence[StoredMessage]) -> None:
        """Merge ``batch`` (stored messages, in delivery order) atomically and
        idempotently.

        Raises:
            StoreUnavailable: nothing of the batch was applied.
        """
        if not self._ready:
            self.initialize()
        telemetry = sorted(
            {
                rules.payload_id(_raw(m)): m
                for m in reversed(batch)
                if m.type in (RECEIVED_TELEM, TELEM)
            }.items()
        )
        callsigns = sorted({m.callsign for m in batch if m.type == LISTENER_INFO})
        lock_keys = sorted({_lock_key(c) for c in callsigns})
        with self.store.transaction() as conn:
            if telemetry:
                conn.cursor().executemany(
                    "INSERT INTO payload_telemetry (id, raw, receivers, estimated_time_created,"
                    " first_message) VALUES (%s, %s, '{}', 0, %s) ON CONFLICT (id) DO NOTHING",
                    [(doc_id, _raw(m), m.id) for doc_id, m in telemetry],
                )
                conn.execute(
                    "SELECT id FROM payload_telemetry WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                    ([doc_id for doc_id, _ in telemetry],),
                )
            for key in lock_keys:  # sorted by key: no deadlock even when two names collide
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            rules.apply(_PostgresArchiveTx(conn), batch)

    def _version(self, conn: psycopg.Connection[Any]) -> int:
        if self._ready:
            return len(migrations.MIGRATIONS[self.store.dialect])
        return migrations.version(conn, self.store.dialect)

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self.store.transaction() as conn:
            if self._version(conn) < 2:
                return []  # only reads: nothing parsed before the tables exist
            return conn.execute(sql.replace("?", "%s").encode(), params).fetchall()

    def _page(self, doc_type: str, after: int) -> list[Any]:
        with self.store.transaction() as conn:
            version = self._version(conn)
            if version == 0:
                return []
            sql = _PAGES[doc_type]
            if version < 2 and doc_type == rules.PAYLOAD_TELEMETRY:
                sql = sql.replace(" data FROM", " NULL FROM").replace(
                    " OR telem_message IS NOT NULL", ""
                )
            return conn.execute(sql.encode(), (after,)).fetchall()

    def close(self) -> None:
        """Close this process's pool."""
        self.store.close()


# "Made by a message delivered before this one": delivery runs in (tx, id) order,
# which is not id order when batches commit concurrently.
_BEFORE = "(m.tx, m.id) < (SELECT tx, id FROM messages WHERE id = %s)"


class _PostgresArchiveTx:
    """:class:`habitat_http.archive.rules.ArchiveTx` on one PostgreSQL transaction."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def listener_applied(self, table: str, message_id: int) -> bool:
        sql = f"SELECT 1 FROM {table} WHERE source_message = %s"
        return self.conn.execute(sql, (message_id,)).fetchone() is not None

    def latest_information_data(self, callsign: str, before_message: int) -> str | None:
        row = self.conn.execute(
            "SELECT d.data FROM listener_information d JOIN messages m ON m.id = d.source_message"
            f" WHERE d.callsign = %s AND {_BEFORE}"
            " ORDER BY d.time_created DESC, d.source_message DESC LIMIT 1",
            (callsign, before_message),
        ).fetchone()
        return None if row is None else rules.canonical_json(row[0])

    def latest_listener_id(
        self, table: str, callsign: str, time_created: int, before_message: int
    ) -> str | None:
        row = self.conn.execute(
            f"SELECT d.id FROM {table} d JOIN messages m ON m.id = d.source_message"
            f" WHERE d.callsign = %s AND d.time_created <= %s AND {_BEFORE}"
            " ORDER BY d.time_created DESC, d.source_message DESC LIMIT 1",
            (callsign, time_created, before_message),
        ).fetchone()
        return None if row is None else str(row[0])

    def insert_listener(self, table: str, doc_id: str, message: StoredMessage, data: str) -> None:
        self.conn.execute(
            f"INSERT INTO {table} (id, callsign, time_created, time_uploaded, data,"
            " source_message) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                doc_id,
                message.callsign,
                message.time_created,
                message.time_uploaded,
                Jsonb(json.loads(data)),
                message.id,
            ),
        )

    def payload_receivers(self, doc_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT receivers FROM payload_telemetry WHERE id = %s", (doc_id,)
        ).fetchone()
        return None if row is None else dict(row[0])

    def save_payload(
        self, doc_id: str, raw: str, receivers: dict[str, Any], estimate: int, first_message: int
    ) -> None:
        self.conn.execute(
            "INSERT INTO payload_telemetry (id, raw, receivers, estimated_time_created,"
            " first_message) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
            " receivers = excluded.receivers,"
            " estimated_time_created = excluded.estimated_time_created",
            (doc_id, raw, Jsonb(receivers), estimate, first_message),
        )

    def parsed_rank(self, doc_id: str) -> tuple[int, float, int] | None:
        row = self.conn.execute(
            "SELECT parse_error, time_parsed, telem_message FROM payload_telemetry WHERE id = %s",
            (doc_id,),
        ).fetchone()
        if row is None or row[2] is None:
            return None
        return rules.parse_rank(bool(row[0]), row[1], row[2])

    def save_parsed(
        self, doc_id: str, raw: str, parsed: rules.Parsed, estimate: int, first_message: int
    ) -> None:
        self.conn.execute(
            queries.SAVE_PARSED,
            (
                doc_id,
                raw,
                estimate,
                first_message,
                Jsonb(parsed.data),
                *rules.parsed_columns(parsed),
            ),
        )
