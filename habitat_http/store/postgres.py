"""The PostgreSQL store (psycopg 3, psycopg_pool), for several gateway hosts and
message servers sharing one database.

Gap-free delivery. Concurrent transactions take ids from the sequence in one
order and commit in another, so a reader paging by ``id > last_seen`` would skip
a row whose transaction commits after a later id was read. Each row therefore
records the id of the transaction that wrote it (``tx``, from
``pg_current_xact_id()``), and the message server reads in ``(tx, id)`` order
only below ``pg_snapshot_xmin(pg_current_snapshot())``: every transaction older
than that xmin has committed or aborted, so no row can later appear below the
reader's position. This needs no per-sink rows at insert time (unlike an outbox),
so sinks can be added without touching the gateway, and several message servers
can read the same log. The cost: one long-running transaction anywhere in the
PostgreSQL cluster holds delivery back until it ends.

Durability: a commit with ``synchronous_commit`` on (PostgreSQL's default) is
flushed to the WAL before it returns; PostgreSQL groups concurrent commits into
one flush itself.

Connections come from a pool created lazily in each process, so gunicorn forks
before any connection exists. A database that cannot be reached within
``timeout`` seconds gives StoreUnavailable (503) and the pool reconnects by
itself when it returns.

One deadline per transaction (``timeout`` seconds from its start): the wait for
a pooled connection and then the statements' ``statement_timeout`` and
``lock_timeout`` (set for the transaction to what is left, and again before
the inserts) all count against it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from ..messages import Message, StoredMessage
from . import (
    BadURL,
    Checkpoint,
    Heartbeat,
    NoDatabase,
    Position,
    SchemaTooNew,
    Stored,
    StoreTimeout,
    StoreUnavailable,
)
from .base import BaseStore
from .migrations import Migration, MigrationNeeded, pending
from .rows import COLUMNS, from_row, outcomes, plan_inserts, to_row

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        """
        CREATE TABLE messages (
            id            BIGSERIAL PRIMARY KEY,
            callsign      TEXT             NOT NULL,
            type          TEXT             NOT NULL,
            time_created  BIGINT           NOT NULL,
            time_uploaded BIGINT           NOT NULL,
            ip            TEXT,
            data          JSONB            NOT NULL,
            time_received DOUBLE PRECISION NOT NULL,
            dedup_key     BYTEA            UNIQUE,
            tx            XID8             NOT NULL DEFAULT pg_current_xact_id()
        );
        CREATE INDEX messages_position ON messages (tx, id);
        CREATE TABLE sink_checkpoints (
            sink            TEXT             PRIMARY KEY,
            last_tx         BIGINT           NOT NULL,
            last_id         BIGINT           NOT NULL,
            updated         DOUBLE PRECISION NOT NULL,
            last_error      TEXT,
            last_error_time DOUBLE PRECISION,
            failures        INTEGER          NOT NULL DEFAULT 0
        );
        """
    ),
    Migration(
        """
        CREATE TABLE server_heartbeats (
            server  TEXT             PRIMARY KEY,
            host    TEXT             NOT NULL,
            pid     BIGINT           NOT NULL,
            started DOUBLE PRECISION NOT NULL,
            beat    DOUBLE PRECISION NOT NULL
        );
        """
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
#: pg_advisory_xact_lock key that serialises migrations across hosts.
_MIGRATION_LOCK = 0x48414249  # "HABI"

_COLUMNS = f"id, {COLUMNS}"
_INSERT = (
    f"INSERT INTO messages ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
)

_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
#: What PostgreSQL raises when statement_timeout or lock_timeout ends a statement.
_TIMED_OUT = (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable)


class PostgresStore(BaseStore):
    """Messages and checkpoints (and the archive's tables) in a PostgreSQL database.

    Args:
        url: a libpq URL, e.g. ``postgresql://habitat@db.example.org/habitat``.
        timeout: seconds to wait for a connection (and for a statement) before
            StoreUnavailable.
        pool_size: the most connections this process opens.
        read_only: open only an existing habitat database: create no table and
            apply no migration; raise NoDatabase when its tables are missing.
    """

    dialect = "postgresql"

    def __init__(
        self, url: str, *, timeout: float = 5.0, pool_size: int = 10, read_only: bool = False
    ) -> None:
        self.url = url
        self.read_only = read_only
        self.timeout = timeout
        self.pool_size = pool_size
        self._pool: ConnectionPool | None = None
        self._listen: psycopg.Connection[Any] | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresStore({psycopg.conninfo.conninfo_to_dict(self.url).get('dbname')!r})"

    # -- connections ---------------------------------------------------------

    def _get_pool(self) -> ConnectionPool:
        if self._pool is not None and self._pid == os.getpid():
            return self._pool
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                # After a fork the parent's pool is not ours: start afresh.
                self.initialize()
                ms = int(self.timeout * 1000)
                self._pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.pool_size,
                    timeout=self.timeout,
                    open=False,
                    check=ConnectionPool.check_connection,
                    kwargs={
                        "connect_timeout": max(1, round(self.timeout)),
                        "options": f"-c statement_timeout={ms} -c lock_timeout={ms}",
                    },
                    name="habitat_http",
                )
                self._pool.open(wait=False)
                self._pid = os.getpid()
        return self._pool

    @contextlib.contextmanager
    def transaction(self, deadline: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection inside one transaction (committed on a clean exit).

        Args:
            deadline: time.monotonic() by which to give up; ``timeout`` seconds
                from now by default. Bounds the wait for a connection, and each
                statement's wait (see :meth:`bound`).

        Raises:
            StoreUnavailable: no connection or lock before the deadline, or it broke.
        """
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        try:
            pool = self._get_pool()
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreTimeout(f"no database connection within {self.timeout} s")
            with pool.connection(timeout=left) as conn, conn.transaction():
                if self.read_only:
                    conn.execute("SET TRANSACTION READ ONLY")
                self.bound(conn, deadline)
                yield conn
        except _TIMED_OUT as exc:
            # statement_timeout or lock_timeout from bound(): past the deadline.
            raise StoreTimeout(str(exc).strip() or type(exc).__name__) from exc
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc).strip() or type(exc).__name__) from exc

    def bound(self, conn: psycopg.Connection[Any], deadline: float) -> None:
        """Make the next statements of this transaction give up at ``deadline``
        (time.monotonic): PostgreSQL's statement_timeout and lock_timeout, for
        this transaction only, set to what is left.

        Raises:
            StoreUnavailable: the deadline has passed.
        """
        left = deadline - time.monotonic()
        if left <= 0:
            raise StoreTimeout(f"the database was busy for over {self.timeout} s")
        ms = str(max(1, int(left * 1000)))
        conn.execute(
            "SELECT set_config('statement_timeout', %s, true),"
            " set_config('lock_timeout', %s, true)",
            (ms, ms),
        )

    def initialize(self, at_startup: bool = True) -> None:
        """Apply pending migrations (under an advisory lock shared by all hosts).

        Raises:
            SchemaTooNew: the database was migrated by a newer habitat_http.
            MigrationNeeded: at start-up, a pending migration needs init-db.
            StoreUnavailable: the database cannot be reached within the timeout.
            NoDatabase: opened read-only, and the habitat tables do not exist.
            BadURL: the URL is malformed.
        """
        self._check_url()
        if self.read_only:
            self._check_existing()
            return
        try:
            with (
                psycopg.connect(self.url, connect_timeout=max(1, round(self.timeout))) as conn,
                conn.transaction(),
            ):
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                conn.execute("CREATE TABLE IF NOT EXISTS habitat_schema (version INTEGER NOT NULL)")
                row = conn.execute("SELECT version FROM habitat_schema").fetchone()
                if row is None:
                    conn.execute("INSERT INTO habitat_schema VALUES (0)")
                version = 0 if row is None else int(row[0])
                for migration in pending(repr(self), version, MIGRATIONS, at_startup):
                    for statement in migration.statements():
                        conn.execute(statement)
                conn.execute(
                    "UPDATE habitat_schema SET version = %s", (max(version, SCHEMA_VERSION),)
                )
        except psycopg.ProgrammingError as exc:  # a malformed URL: waiting will not help
            raise BadURL(f"the database URL is not a valid libpq URL: {exc}") from exc
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"cannot reach the database: {exc}".strip()) from exc

    def _check_url(self) -> None:
        """Parse the URL as libpq does, without connecting.

        Raises:
            BadURL: it is malformed, or its port is not a number.
        """
        try:
            params = psycopg.conninfo.conninfo_to_dict(self.url)
        except psycopg.ProgrammingError as exc:
            raise BadURL(f"the database URL is not a valid libpq URL: {exc}") from exc
        ports = str(params.get("port") or "").split(",")
        if not all(p.strip().isdigit() for p in ports if p.strip()):
            raise BadURL(f"the database URL's port is not a number: {params['port']!r}")

    def _check_existing(self) -> None:
        """Check, creating nothing, that the habitat tables exist at this code's version.

        Raises:
            NoDatabase, SchemaTooNew, MigrationNeeded, StoreUnavailable.
        """
        try:
            with psycopg.connect(self.url, connect_timeout=max(1, round(self.timeout))) as conn:
                found = conn.execute("SELECT to_regclass('habitat_schema') IS NOT NULL").fetchone()
                row = (
                    conn.execute("SELECT version FROM habitat_schema").fetchone()
                    if (found and found[0])
                    else None
                )
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"cannot reach the database: {exc}".strip()) from exc
        if row is None:
            raise NoDatabase(f"no habitat database in {self!r}: the habitat tables do not exist")
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self!r} has schema version {version}, but this habitat_http knows only up"
                f" to {SCHEMA_VERSION}; upgrade habitat_http."
            )
        if version < SCHEMA_VERSION:
            raise MigrationNeeded(
                f"{self!r} has schema version {version}, older than this habitat_http's"
                f" {SCHEMA_VERSION}; run `habitat-http init-db` (or start the gateway) first."
            )

    # -- Store protocol ------------------------------------------------------

    def put_many(self, messages: list[Message]) -> list[Stored]:
        """Commit ``messages`` in one transaction; a retry names its original.

        A concurrent insert of the same dedup_key waits on the unique index and
        then finds the original, so retries through different hosts are stored once.

        Raises:
            StoreUnavailable: none of them was committed.
        """
        rows = [to_row(m, Jsonb) for m in messages]
        keys: list[bytes | None] = [row[-1] for row in rows]
        fresh = plan_inserts(keys)
        inserted: dict[int, int] = {}
        original: dict[bytes, int] = {}
        deadline = time.monotonic() + self.timeout
        with self.transaction(deadline) as conn, conn.cursor() as cur:
            # Ids follow the order of the messages; the rows go in in key order,
            # because two batches inserting the same new keys in different orders
            # would deadlock on the unique index. A retry leaves its id unused.
            cur.execute(
                "SELECT nextval(pg_get_serial_sequence('messages', 'id'))"
                " FROM generate_series(1, %s)",
                (len(fresh),),
            )
            ids = dict(zip(fresh, sorted(int(r[0]) for r in cur.fetchall()), strict=True))
            in_key_order = sorted(fresh, key=lambda pos: keys[pos] or b"")
            self.bound(conn, deadline)  # the inserts may wait for locks
            cur.executemany(
                _INSERT, [(ids[pos], *rows[pos]) for pos in in_key_order], returning=True
            )
            retries: list[bytes] = []
            for pos in in_key_order:
                if cur.fetchone() is not None:
                    inserted[pos] = ids[pos]
                else:
                    retries.append(rows[pos][-1])
                cur.nextset()
            if inserted:
                cur.execute("NOTIFY habitat_messages")  # sent on commit: wakes servers
            if retries:
                cur.execute(
                    "SELECT dedup_key, id FROM messages WHERE dedup_key = ANY(%s)", (retries,)
                )
                original = {bytes(k): int(i) for k, i in cur.fetchall()}
        return [r._replace(group=len(messages)) for r in outcomes(keys, inserted, original)]

    def read_after(self, after: int = 0, limit: int | None = None) -> list[StoredMessage]:
        """Committed messages with ``id > after`` in id order (for listing; the
        message server uses :meth:`deliverable`)."""
        with self.transaction() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE id > %s ORDER BY id LIMIT %s",
                (after, limit),
            ).fetchall()
        return [from_row(row) for row in rows]

    def deliverable(self, after: Position, limit: int) -> list[tuple[Position, StoredMessage]]:
        """The next messages after ``after`` in (transaction id, id) order, from
        transactions older than every one still running; see the module docstring."""
        with self.transaction() as conn:
            rows = conn.execute(
                # Order by the xid8 column itself (not a cast of it), so the
                # (tx, id) index supplies the order instead of a sort of the backlog.
                f"SELECT m.tx::text::bigint AS position_tx, {_COLUMNS} FROM messages m"
                " WHERE (m.tx, m.id) > (%s::text::xid8, %s)"
                " AND m.tx < pg_snapshot_xmin(pg_current_snapshot())"
                " ORDER BY m.tx, m.id LIMIT %s",
                (str(after.tx), after.id, limit),
            ).fetchall()
        return [(Position(int(row[0]), int(row[1])), from_row(row[1:])) for row in rows]

    def checkpoints(self) -> dict[str, Checkpoint]:
        """Every sink's checkpoint, by sink name."""
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT sink, last_tx, last_id, updated, last_error, last_error_time, failures"
                " FROM sink_checkpoints ORDER BY sink"
            ).fetchall()
        return {
            sink: Checkpoint(sink, Position(tx, last_id), updated, error, error_time, failures)
            for sink, tx, last_id, updated, error, error_time, failures in rows
        }

    def save_checkpoint(self, sink: str, position: Position, now: float) -> None:
        """Durably record ``sink``'s position; it never moves back, so several
        message servers may run the same sink."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO sink_checkpoints AS c (sink, last_tx, last_id, updated, failures)"
                " VALUES (%s, %s, %s, %s, 0) ON CONFLICT (sink) DO UPDATE SET"
                " (last_tx, last_id) = (SELECT CASE WHEN (excluded.last_tx, excluded.last_id)"
                " > (c.last_tx, c.last_id) THEN excluded.last_tx ELSE c.last_tx END,"
                " CASE WHEN (excluded.last_tx, excluded.last_id) > (c.last_tx, c.last_id)"
                " THEN excluded.last_id ELSE c.last_id END),"
                " updated = excluded.updated, last_error = NULL, last_error_time = NULL,"
                " failures = 0",
                (sink, position.tx, position.id, now),
            )

    def record_failure(self, sink: str, error: str, now: float) -> None:
        """Record that ``sink`` failed; its checkpoint stays where it was."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO sink_checkpoints AS c (sink, last_tx, last_id, updated, last_error,"
                " last_error_time, failures) VALUES (%s, 0, 0, %s, %s, %s, 1)"
                " ON CONFLICT (sink) DO UPDATE SET last_error = excluded.last_error,"
                " last_error_time = excluded.last_error_time, failures = c.failures + 1",
                (sink, now, error, now),
            )

    def beat(self, heartbeat: Heartbeat) -> None:
        """Record that a message server is alive; see the CheckpointStore protocol."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO server_heartbeats (server, host, pid, started, beat)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (server) DO UPDATE SET"
                " host = excluded.host, pid = excluded.pid, started = excluded.started,"
                " beat = excluded.beat",
                heartbeat,
            )

    def heartbeats(self) -> list[Heartbeat]:
        """Every message server's last heartbeat, latest first."""
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT server, host, pid, started, beat FROM server_heartbeats ORDER BY beat DESC"
            ).fetchall()
        return [Heartbeat(s, h, int(p), float(st), float(b)) for s, h, p, st, b in rows]

    def wait_for_messages(self, timeout: float) -> None:
        """Block until a NOTIFY from a gateway's commit, or ``timeout`` seconds
        (the message server's idle wait). LISTEN/NOTIFY only wakes the server;
        the table stays the truth."""
        try:
            if self._listen is None or self._listen.closed:
                self._listen = psycopg.connect(
                    self.url, autocommit=True, connect_timeout=max(1, round(self.timeout))
                )
                self._listen.execute("LISTEN habitat_messages")
            for _ in self._listen.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error:
            if self._listen is not None:
                self._listen.close()
            self._listen = None
            time.sleep(timeout)  # the database is away: just poll later

    def backlog(self, after: Position) -> tuple[int, float | None]:
        """How many messages come after ``after``, and when the oldest was received."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT count(*), min(time_received) FROM messages"
                " WHERE (tx, id) > (%s::text::xid8, %s)",
                (str(after.tx), after.id),
            ).fetchone()
        assert row is not None
        return int(row[0]), row[1]

    def check(self, timeout: float) -> None:
        """A cheap read through the pool, given up after ``timeout`` seconds; see
        the Store protocol.

        Raises:
            StoreUnavailable: no connection or no answer in time.
            NoDatabase: the habitat tables do not exist.
        """
        deadline = time.monotonic() + timeout
        try:
            with self.transaction(deadline) as conn:
                conn.execute("SELECT max(id) FROM messages").fetchone()
        except psycopg.errors.UndefinedTable as exc:
            raise NoDatabase(f"no habitat database in {self!r}: {exc}".strip()) from exc
        except psycopg.Error as exc:
            raise StoreUnavailable(str(exc).strip() or type(exc).__name__) from exc

    def close(self) -> None:
        """Close this process's pool; the store opens a new one if used again."""
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            if self._listen is not None:
                self._listen.close()
            self._pool, self._listen, self._pid = None, None, 0
