"""The embedded SQLite store (stdlib sqlite3).

Durability and concurrency choices, from SQLite's documentation:

- WAL journal with ``synchronous=FULL``: a commit is fsync'd to the WAL before
  ``put`` returns, so it survives power loss.
- One connection per thread, opened lazily and re-opened after a fork, because a
  sqlite3 connection must not cross threads or processes.
- ``BEGIN IMMEDIATE`` takes the write lock at the start of a transaction, so a
  waiting writer honours ``busy_timeout`` instead of failing on lock upgrade.
- Switching to WAL and creating the schema happen once per database under an
  exclusive ``flock`` on ``<db>.init-lock``: several gunicorn workers opening a
  new file at the same moment would otherwise fail with "database is locked"
  from concurrent ``PRAGMA journal_mode=WAL``.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from typing import Any

from ..messages import Message
from . import SchemaTooNew, StoreUnavailable

#: Migrations in order; PRAGMA user_version holds how many have been applied.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE messages (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        callsign      TEXT    NOT NULL,
        type          TEXT    NOT NULL,
        time_created  INTEGER NOT NULL,
        time_uploaded INTEGER NOT NULL,
        ip            TEXT,
        data          TEXT    NOT NULL,
        time_received REAL    NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_INSERT = (
    "INSERT INTO messages (callsign, type, time_created, time_uploaded, ip, data, time_received)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SELECT = (
    "SELECT id, callsign, type, time_created, time_uploaded, ip, data, time_received"
    " FROM messages WHERE id > ? ORDER BY id LIMIT ?"
)


class SQLiteStore:
    """Messages in one SQLite file; see the module docstring for the guarantees.

    Args:
        path: the database file; relative paths are relative to the working
            directory. Its directory must exist.
        synchronous: ``PRAGMA synchronous`` level (OFF, NORMAL, FULL, EXTRA).
        timeout: seconds to wait for another writer before StoreUnavailable.
    """

    def __init__(self, path: str, *, synchronous: str = "FULL", timeout: float = 5.0) -> None:
        self.path = path
        self.synchronous = synchronous
        self.timeout = timeout
        self._local = threading.local()
        self._ready_pid = 0
        self._ready_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, synchronous={self.synchronous!r})"

    # -- connections ---------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=True
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        return conn

    def _conn(self) -> sqlite3.Connection:
        pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == pid:
            return conn
        if self._ready_pid != pid:
            with self._ready_lock:
                if self._ready_pid != pid:
                    self.initialize()
                    self._ready_pid = pid
        conn = self._connect()
        self._local.conn, self._local.pid = conn, pid
        return conn

    def initialize(self) -> None:
        """Switch the file to WAL and apply pending migrations, once, across processes.

        Raises:
            SchemaTooNew: the file was migrated by a newer habitat_http.
            StoreUnavailable: the file cannot be opened or locked.
        """
        try:
            with open(self.path + ".init-lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    conn = self._connect()
                    try:
                        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                            conn.execute("PRAGMA journal_mode = WAL")
                        self._migrate(conn)
                    finally:
                        conn.close()
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        except (sqlite3.OperationalError, OSError) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"{self.path} has schema version {version}, but this habitat_http "
                    f"knows only up to {SCHEMA_VERSION}; upgrade habitat_http."
                )
            for script in MIGRATIONS[version:]:
                conn.execute(script)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- Store protocol ------------------------------------------------------

    def put(self, message: Message) -> int:
        """Commit one message; see :meth:`habitat_http.store.Store.put`."""
        row = (
            message.callsign,
            message.type,
            message.time_created,
            message.time_uploaded,
            message.ip,
            json.dumps(message.data, ensure_ascii=False, separators=(",", ":")),
            message.time_received,
        )
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(_INSERT, row)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def read_after(self, after: int = 0, limit: int | None = None) -> list[Message]:
        """Messages with ``id > after`` in id order; see the Store protocol."""
        try:
            rows = self._conn().execute(_SELECT, (after, -1 if limit is None else limit))
            return [_message(row) for row in rows]
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()


def _message(row: tuple[Any, ...]) -> Message:
    id_, callsign, type_, created, uploaded, ip, data, received = row
    return Message(
        callsign=callsign,
        type=type_,
        time_created=created,
        time_uploaded=uploaded,
        data=json.loads(data),
        ip=ip,
        time_received=received,
        id=id_,
    )
