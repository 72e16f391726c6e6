"""The embedded SQLite store (stdlib sqlite3).

Durability and concurrency choices, from SQLite's documentation:

- WAL journal with ``synchronous=FULL``: a commit is fsync'd to the WAL before
  ``put`` returns, so it survives power loss.
- One connection per process, opened lazily and re-opened after a fork, because a
  sqlite3 connection must not cross processes; a lock shares it between threads.
- ``BEGIN IMMEDIATE`` takes the write lock at the start of a transaction, so a
  waiting writer honours ``busy_timeout`` instead of failing on lock upgrade.
- One deadline per write (``timeout`` seconds from the call): the waits for this
  process's write slot, for the cross-process ``flock`` and for SQLite's lock
  (``busy_timeout``, set to what is left) all count against it, so a write
  answers within ``timeout`` plus the commit itself.
- Switching to WAL and creating the schema happen once per database under an
  exclusive ``flock`` on ``<db>.lock``: several gunicorn workers opening a
  new file at the same moment would otherwise fail with "database is locked"
  from concurrent ``PRAGMA journal_mode=WAL``.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterator
from typing import IO, Any

from ..messages import Message, StoredMessage
from . import (
    BadURL,
    Checkpoint,
    Heartbeat,
    NoDatabase,
    Position,
    SchemaTooNew,
    Stored,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    doorbell,
)
from .base import BaseStore
from .flock import FlockWaiter
from .migrations import Migration, MigrationNeeded, pending
from .rows import COLUMNS, from_row, outcomes, plan_inserts, to_row

#: Migrations in order; PRAGMA user_version holds how many have been applied.
MIGRATIONS: tuple[Migration, ...] = tuple(
    Migration(sql)
    for sql in (
        """
    CREATE TABLE messages (
        id            INTEGER PRIMARY KEY,
        callsign      TEXT    NOT NULL,
        type          TEXT    NOT NULL,
        time_created  INTEGER NOT NULL,
        time_uploaded INTEGER NOT NULL,
        ip            TEXT,
        data          TEXT    NOT NULL,
        time_received REAL    NOT NULL
    );
    """,
        """
    CREATE TABLE sink_checkpoints (
        sink            TEXT    PRIMARY KEY,
        last_id         INTEGER NOT NULL,
        updated         REAL    NOT NULL,
        last_error      TEXT,
        last_error_time REAL,
        failures        INTEGER NOT NULL DEFAULT 0
    );
    """,
        """
    ALTER TABLE messages ADD COLUMN dedup_key BLOB;
    CREATE UNIQUE INDEX messages_dedup_key ON messages (dedup_key);
    """,
        """
    CREATE TABLE server_heartbeats (
        server  TEXT    PRIMARY KEY,
        host    TEXT    NOT NULL,
        pid     INTEGER NOT NULL,
        started REAL    NOT NULL,
        beat    REAL    NOT NULL
    );
    """,
    )
)
SCHEMA_VERSION = len(MIGRATIONS)

_INSERT = f"INSERT INTO messages ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_UPSERT = _INSERT + " ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
_BY_KEY = "SELECT id FROM messages WHERE dedup_key = ?"
_LOOKUP_CHUNK = 500  # well under SQLite's limit on bound parameters
#: Up to this many rows, a statement per row costs fewer calls than lookup + executemany.
_SMALL_GROUP = 16
#: How much sooner than its deadline a write may give up, in ms (see _busy_until).
_BUSY_SLACK_MS = 50
_SELECT = f"SELECT id, {COLUMNS} FROM messages WHERE id > ? ORDER BY id LIMIT ?"


class _Batch:
    """Rows waiting for a group commit, and what became of them."""

    __slots__ = ("deadline", "done", "error", "results", "rows")

    def __init__(self, messages: list[Message], deadline: float) -> None:
        self.rows = [to_row(m, _json_text) for m in messages]  # serialised before any lock
        self.deadline = deadline  # time.monotonic() by which its caller must have an answer
        self.results: list[Stored] = []
        self.error: StoreUnavailable | None = None
        self.done = threading.Event()


class SQLiteStore(BaseStore):
    """Messages in one SQLite file; see the module docstring for the guarantees.

    Writes use group commit: concurrent :meth:`put` calls in one process are
    written in one transaction with one fsync, and each returns only after that
    commit. The thread that finds no commit in progress leads; the others wait
    for its result. Between processes, an ``flock`` on ``<db>.lock`` orders the
    writers: a waiting writer is woken the moment the lock is free
    (store/flock.py), much sooner than SQLite's busy handler would retry, and
    gives up with StoreUnavailable after ``timeout`` seconds.

    Args:
        path: the database file; relative paths are relative to the working
            directory. Its directory must exist.
        synchronous: ``PRAGMA synchronous`` level (OFF, NORMAL, FULL, EXTRA).
        timeout: seconds a write waits for other writers before StoreUnavailable.
        read_only: open only an existing habitat database, read-only: create no
            file (not even ``<db>.lock``) and no schema; raise NoDatabase instead.
    """

    dialect = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "FULL",
        timeout: float = 5.0,
        read_only: bool = False,
    ) -> None:
        self.path = path
        self.read_only = read_only
        self.lock_path = path + ".lock"
        self.synchronous = synchronous
        self.timeout = timeout
        self._pid = 0
        self._connection: sqlite3.Connection | None = None
        self._lock_file: IO[bytes] | None = None
        # Held by the leading writer (and by readers) of this process.
        self._db_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._pending: list[_Batch] = []
        self._bell = doorbell.Bell(path)
        self._listener: doorbell.Listener | None = None
        # The connection last given a busy_timeout, and that timeout in ms.
        self._busy: tuple[sqlite3.Connection | None, int] = (None, 0)
        #: How many group commits took how many batches (put/put_many calls), for
        #: bench/groups.py; this process's commits only.
        self.group_sizes: collections.Counter[int] = collections.Counter()
        _stores.add(self)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, synchronous={self.synchronous!r})"

    # -- connections ---------------------------------------------------------

    def _connect(self, deadline: float) -> sqlite3.Connection:
        # Guarded by _db_lock, so one connection serves every thread of a process.
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        self._busy_until(conn, deadline)
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        # Checkpoint every ~40 MB of WAL rather than 4 MB: hot pages (the tail of
        # the table, the dedup index) are copied back once instead of many times.
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
        return conn

    def _busy_until(self, conn: sqlite3.Connection, deadline: float) -> None:
        """Have SQLite's busy handler give up at ``deadline`` (time.monotonic), or
        up to 50 ms sooner: the PRAGMA is sent again only when the time left has
        moved by more than that, which under load saves a statement per commit.

        Raises:
            StoreUnavailable: the deadline has passed already.
        """
        left = deadline - time.monotonic()
        if left <= 0:
            raise StoreTimeout(f"the database was busy for over {self.timeout} s")
        ms = max(1, int(left * 1000))
        last_conn, last_ms = self._busy
        if last_conn is not conn or not ms - _BUSY_SLACK_MS <= last_ms <= ms:
            conn.execute(f"PRAGMA busy_timeout = {ms}")
            self._busy = (conn, ms)

    def _conn(self, deadline: float | None = None) -> sqlite3.Connection:
        """This process's connection; call with _db_lock held. Opening it gives up
        at ``deadline`` (time.monotonic; default ``timeout`` from now)."""
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        # New, or inherited across a fork: never reuse the parent's handles.
        self._connection, self._lock_file = None, None
        if self.read_only:
            self._connection = self._open_existing()
            self._pid = os.getpid()
            return self._connection
        self._initialize(at_startup=True, deadline=deadline)
        try:
            self._lock_file = open(self.lock_path, "ab")  # noqa: SIM115  kept for the process
            self._connection = self._connect(deadline)
        except (OSError, sqlite3.OperationalError) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._pid = os.getpid()
        return self._connection

    def _open_existing(self, timeout: float | None = None) -> sqlite3.Connection:
        """A read-only connection to the habitat database at ``path``, waiting at
        most ``timeout`` seconds (default ``self.timeout``) for a lock.

        Raises:
            NoDatabase: no file there, or one without the habitat schema.
            SchemaTooNew, MigrationNeeded: its schema is not this code's.
            StoreUnavailable: it cannot be read (StoreTimeout: it stayed locked).
        """
        if not os.path.isfile(self.path):
            raise NoDatabase(f"no habitat database at {self.path}: the file does not exist")
        try:
            conn = sqlite3.connect(
                f"file:{urllib.parse.quote(os.path.abspath(self.path))}?mode=ro",
                uri=True,
                timeout=self.timeout if timeout is None else timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                tables = {
                    r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
            except BaseException:
                conn.close()
                raise
        except sqlite3.OperationalError as exc:
            error = _unavailable(exc)
            if isinstance(error, StoreTimeout):
                raise error from exc  # locked by another process: not "no database"
            raise NoDatabase(f"no habitat database at {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise NoDatabase(f"no habitat database at {self.path}: {exc}") from exc
        problem: StoreError | None = None
        if version == 0 or "messages" not in tables:
            problem = NoDatabase(f"no habitat database at {self.path}: it has no habitat schema")
        elif version > SCHEMA_VERSION:
            problem = SchemaTooNew(
                f"{self.path} has schema version {version}, but this habitat_http knows only"
                f" up to {SCHEMA_VERSION}; upgrade habitat_http."
            )
        elif version < SCHEMA_VERSION:
            problem = MigrationNeeded(
                f"{self.path} has schema version {version}, older than this habitat_http's"
                f" {SCHEMA_VERSION}; run `habitat-http init-db` (or start the gateway) first."
            )
        if problem is not None:
            conn.close()
            raise problem
        return conn

    def _after_fork_in_child(self) -> None:
        # Locks held by other threads at the fork would never be released here, and
        # the parent's pending batches are the parent's to commit.
        self._db_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._pending = []
        self._connection, self._lock_file, self._pid = None, None, 0

    def _lock_within(self, lock_file: IO[bytes], deadline: float) -> None:
        """Take the cross-process lock on ``lock_file``, or raise StoreUnavailable at
        ``deadline`` (time.monotonic).

        A waiter is woken by the kernel as soon as the holder lets go
        (store/flock.py), instead of polling.
        """
        if not _flock.acquire(lock_file.fileno(), deadline):
            raise StoreTimeout(
                f"another process held the write lock for over {self.timeout} s"
            ) from None

    def initialize(self, at_startup: bool = True) -> None:
        """Switch the file to WAL and apply pending migrations, once, across processes.

        Args:
            at_startup: False for ``habitat-http init-db``, which may also apply
                migrations that are unsafe while the database is in use.

        Raises:
            SchemaTooNew: the file was migrated by a newer habitat_http.
            MigrationNeeded: at start-up, a pending migration needs init-db.
            StoreUnavailable: the file cannot be opened or locked within ``timeout``.
            NoDatabase: opened read-only, and there is no habitat database.
            BadURL: the file's directory does not exist.
        """
        if self.read_only:
            self._open_existing().close()
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise BadURL(
                f"cannot keep the database {self.path}: the directory {directory} does not exist"
            )
        self._initialize(at_startup, time.monotonic() + self.timeout)

    def _initialize(self, at_startup: bool, deadline: float) -> None:
        try:
            with open(self.lock_path, "ab") as lock:
                self._lock_within(lock, deadline)
                conn = self._connect(deadline)
                try:
                    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                        conn.execute("PRAGMA journal_mode = WAL")
                    self._migrate(conn, at_startup)
                finally:
                    conn.close()
        except (sqlite3.OperationalError, OSError) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc

    def _migrate(self, conn: sqlite3.Connection, at_startup: bool = True) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for migration in pending(self.path, version, MIGRATIONS, at_startup):
                for statement in migration.statements():
                    conn.execute(statement)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- Store protocol ------------------------------------------------------

    def put_many(self, messages: list[Message]) -> list[Stored]:
        """Commit ``messages`` in one transaction (shared with concurrent callers).

        A message whose dedup_key is already stored (a retry) is not stored again;
        its result holds the original's id and ``duplicate=True``.

        Returns:
            One result per message, in order, once the transaction is durably
            committed.

        Raises:
            StoreUnavailable: nothing of ``messages`` was committed.
        """
        if self.read_only:
            raise StoreError(f"{self.path} was opened read-only")
        deadline = time.monotonic() + self.timeout
        batch = _Batch(messages, deadline)
        with self._queue_lock:
            self._pending.append(batch)
        if self._db_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            try:
                if not batch.done.is_set():
                    self._commit_pending()
            finally:
                self._db_lock.release()
        else:
            with self._queue_lock:
                if batch in self._pending:
                    self._pending.remove(batch)
                    raise StoreTimeout(f"no write slot within {self.timeout} s")
            # A leader holds it in its transaction, bounded by this batch's deadline.
            batch.done.wait()
        if batch.error is not None:
            raise batch.error
        return batch.results

    @contextlib.contextmanager
    def _transaction(
        self, deadline: float, before: Callable[[], float] | None = None
    ) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE .. COMMIT under the cross-process write lock, given up
        with StoreUnavailable at ``deadline`` (time.monotonic).

        Call with _db_lock held. ``before`` runs once the flock is held, before
        BEGIN, and returns the deadline to hold to from then on.
        """
        conn = self._conn(deadline)
        assert self._lock_file is not None
        self._lock_within(self._lock_file, deadline)
        try:
            if before is not None:
                deadline = before()
            self._busy_until(conn, deadline)
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on this database, for the message server and sinks.

        It queues with the gateway's writers (same locks), commits on a clean
        exit and rolls back on an exception.

        Raises:
            StoreUnavailable: the database could not be locked or written.
        """
        if self.read_only:
            raise StoreError(f"{self.path} was opened read-only")
        deadline = time.monotonic() + self.timeout
        if not self._db_lock.acquire(timeout=self.timeout):
            raise StoreUnavailable(f"no write slot within {self.timeout} s")
        try:
            with self._transaction(deadline) as conn:
                yield conn
        except sqlite3.OperationalError as exc:
            raise _unavailable(exc) from exc
        finally:
            self._db_lock.release()

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """This process's connection for reading (a consistent snapshot while held).

        Raises:
            StoreUnavailable: the database could not be read.
        """
        deadline = time.monotonic() + self.timeout
        if not self._db_lock.acquire(timeout=self.timeout):
            raise StoreUnavailable(f"no read slot within {self.timeout} s")
        try:
            try:
                conn = self._conn(deadline)
                self._busy_until(conn, deadline)
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                raise _unavailable(exc) from exc
        finally:
            self._db_lock.release()

    def _commit_pending(self) -> None:
        """Write every pending batch in one transaction; call with _db_lock held.

        The pending list is taken only once this process holds the write lock, so
        whatever queued while it waited for other processes joins this commit.
        The transaction then holds to the earliest deadline among the batches;
        batches already past theirs fail at once.
        """
        group: list[_Batch] = []
        now = time.monotonic()

        def take() -> float:
            nonlocal group
            with self._queue_lock:
                taken, self._pending = self._pending, []
            now = time.monotonic()
            late = [b for b in taken if b.deadline <= now]
            group = [b for b in taken if b.deadline > now]
            for b in late:
                b.error = StoreTimeout(f"no write within {self.timeout} s")
                b.done.set()
            return min((b.deadline for b in group), default=now + self.timeout)

        with self._queue_lock:
            first = min((b.deadline for b in self._pending), default=now + self.timeout)
        try:
            with self._transaction(first, take) as conn:
                flat = _insert_all(conn, [row for b in group for row in b.rows])
                results, start = [], 0
                for b in group:
                    results.append(flat[start : start + len(b.rows)])
                    start += len(b.rows)
        except (sqlite3.OperationalError, StoreUnavailable) as exc:
            error = exc if isinstance(exc, StoreUnavailable) else _unavailable(exc)
            self._fail(group, error)
            return
        except BaseException as exc:
            # Our bug: fail every waiter the same way instead of leaving it hanging.
            self._fail(group, StoreUnavailable(f"write failed: {exc!r}"))
            raise
        size = len(flat)
        for b, batch_results in zip(group, results, strict=True):
            b.results = [r._replace(group=size) for r in batch_results]
            b.done.set()
        self.group_sizes[len(group)] += 1
        self._bell.ring()  # wake a waiting message server at once

    def _fail(self, group: list[_Batch], error: StoreUnavailable) -> None:
        if not group:  # failed before taking the queue: fail everything waiting
            with self._queue_lock:
                group, self._pending = self._pending, []
        for b in group:
            b.error = error
            b.done.set()

    def read_after(self, after: int = 0, limit: int | None = None) -> list[StoredMessage]:
        """Messages with ``id > after`` in id order; see the Store protocol.

        With SQLite, ids are assigned inside the single writer's transaction, so
        they commit in id order and paging by ``id > after`` never skips a row.
        """
        with self.read() as conn:
            rows = conn.execute(_SELECT, (after, -1 if limit is None else limit))
            return [from_row(row) for row in rows]

    # -- checkpoints of the message server -------------------------------------

    def deliverable(self, after: Position, limit: int) -> list[tuple[Position, StoredMessage]]:
        """Messages after ``after`` in id order; SQLite commits in id order, so
        paging by id never skips a row (see the Store protocol)."""
        return [(Position(0, m.id), m) for m in self.read_after(after.id, limit)]

    def checkpoints(self) -> dict[str, Checkpoint]:
        """Every sink's checkpoint, by sink name."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT sink, last_id, updated, last_error, last_error_time, failures"
                " FROM sink_checkpoints ORDER BY sink"
            ).fetchall()
        return {
            sink: Checkpoint(sink, Position(0, last_id), updated, error, error_time, failures)
            for sink, last_id, updated, error, error_time, failures in rows
        }

    def save_checkpoint(self, sink: str, position: Position, now: float) -> None:
        """Durably record that ``sink`` has processed every message up to ``position``.

        Clears the sink's last error. Never moves a checkpoint back.
        """
        with self.write() as conn:
            conn.execute(
                "INSERT INTO sink_checkpoints (sink, last_id, updated, failures)"
                " VALUES (?, ?, ?, 0) ON CONFLICT (sink) DO UPDATE SET"
                " last_id = max(last_id, excluded.last_id),"
                " updated = excluded.updated, last_error = NULL, last_error_time = NULL,"
                " failures = 0",
                (sink, position.id, now),
            )

    def record_failure(self, sink: str, error: str, now: float) -> None:
        """Record that ``sink`` failed; its checkpoint stays where it was."""
        with self.write() as conn:
            conn.execute(
                "INSERT INTO sink_checkpoints (sink, last_id, updated, last_error,"
                " last_error_time, failures) VALUES (?, 0, ?, ?, ?, 1)"
                " ON CONFLICT (sink) DO UPDATE SET last_error = excluded.last_error,"
                " last_error_time = excluded.last_error_time, failures = failures + 1",
                (sink, now, error, now),
            )

    def beat(self, heartbeat: Heartbeat) -> None:
        """Record that a message server is alive; see the CheckpointStore protocol."""
        with self.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO server_heartbeats (server, host, pid, started, beat)"
                " VALUES (?, ?, ?, ?, ?)",
                heartbeat,
            )

    def heartbeats(self) -> list[Heartbeat]:
        """Every message server's last heartbeat, latest first."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT server, host, pid, started, beat FROM server_heartbeats ORDER BY beat DESC"
            ).fetchall()
        return [Heartbeat(*row) for row in rows]

    def wait_for_messages(self, timeout: float) -> None:
        """Block until a gateway rings the doorbell after a commit, or ``timeout``
        seconds pass (the message server's idle wait; see store/doorbell.py)."""
        if self._listener is None:
            self._listener = doorbell.Listener(self.path)
        self._listener.wait(timeout)

    def backlog(self, after: Position) -> tuple[int, float | None]:
        """How many messages come after ``after``, and when the oldest was received
        (seconds since the UNIX epoch; None when there is none)."""
        with self.read() as conn:
            count, oldest = conn.execute(
                "SELECT count(*), min(time_received) FROM messages WHERE id > ?", (after.id,)
            ).fetchone()
        return int(count), oldest

    def check(self, timeout: float) -> None:
        """A cheap read on a fresh read-only connection; see the Store protocol.

        Apart from this process's connection and locks, so that a commit in
        progress here does not hold it up.
        """
        conn = self._open_existing(timeout)
        try:
            conn.execute("SELECT max(id) FROM messages").fetchone()
        except sqlite3.OperationalError as exc:
            raise _unavailable(exc) from exc
        finally:
            conn.close()

    def close(self) -> None:
        """Close this process's connection; the store reconnects if used again."""
        self._bell.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._db_lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            if self._lock_file is not None and self._pid == os.getpid():
                self._lock_file.close()
            self._connection, self._lock_file, self._pid = None, None, 0


_stores: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()
#: This process's waiter for the cross-process write lock (one helper thread).
_flock = FlockWaiter()


def _reset_stores_after_fork() -> None:
    for store in list(_stores):
        store._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_stores_after_fork)


def _insert_all(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[Stored]:
    """Insert the rows that are not retries; call in a write transaction. A row
    whose dedup_key is stored already, or came earlier in ``rows``, is a duplicate
    of that message.

    A small group (the group commit of single messages) takes one statement per
    row, ``INSERT .. ON CONFLICT (dedup_key) DO NOTHING RETURNING id``, and a lookup
    only for a retry. A large one (a batch) takes one lookup per 500 keys and one
    executemany.
    """
    if len(rows) <= _SMALL_GROUP and all(row[-1] is not None for row in rows):
        out: list[Stored] = []
        for row in rows:
            inserted = conn.execute(_UPSERT, row).fetchone()
            if inserted is not None:
                out.append(Stored(inserted[0], False))
            else:  # a retry of a stored message, or of one earlier in this group
                original = conn.execute(_BY_KEY, (row[-1],)).fetchone()
                out.append(Stored(original[0], True))
        return out
    keys: list[bytes | None] = [row[-1] for row in rows]
    given = [key for key in keys if key is not None]
    existing: dict[bytes, int] = {}
    for i in range(0, len(given), _LOOKUP_CHUNK):
        chunk = given[i : i + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        existing.update(
            conn.execute(f"SELECT dedup_key, id FROM messages WHERE dedup_key IN ({marks})", chunk)
        )
    fresh = [pos for pos in plan_inserts(keys) if keys[pos] not in existing]
    ids: dict[int, int] = {}
    if fresh:
        conn.executemany(_INSERT, [rows[pos] for pos in fresh])
        # Under the write lock, without AUTOINCREMENT, each row gets max(id) + 1:
        # the new ids are consecutive and end at last_insert_rowid().
        last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        ids = {pos: last - len(fresh) + 1 + n for n, pos in enumerate(fresh)}
    return outcomes(keys, ids, existing)


def _unavailable(exc: sqlite3.OperationalError) -> StoreUnavailable:
    """The store error for an SQLite error: StoreTimeout when another connection
    held a lock past the busy timeout (SQLITE_BUSY), else StoreUnavailable."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreTimeout(f"the database stayed locked: {text}")
    return StoreUnavailable(text)


def _json_text(data: dict[str, Any]) -> str:
    """``data`` as compact JSON text, for SQLite's TEXT column."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
