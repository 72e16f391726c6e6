"""Durable message storage: the :class:`Store` protocol and :func:`open_store`.

A backend is chosen by the URL in ``HABITAT_DB``. Opening a store does no I/O;
the first call that needs the database connects and applies migrations. A store
opened ``read_only`` (for the commands that only read) never creates a file, a
table or a migration: it opens what exists, or raises :class:`NoDatabase`.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

from ..messages import Message, StoredMessage


class Position(NamedTuple):
    """Where a message sits in the order the message server delivers in.

    Positions only grow: every message committed later gets a greater one, so a
    reader that pages by position never skips a row. SQLite commits in id order,
    so its positions are ``(0, id)``. PostgreSQL commits concurrent transactions
    out of id order, so its positions are ``(transaction id, id)``, read only
    below the oldest transaction still running (see store/postgres.py).
    """

    tx: int
    id: int


START = Position(0, 0)


class Checkpoint(NamedTuple):
    """Where a sink stands, and its last failure (times in UNIX seconds)."""

    sink: str
    position: Position
    updated: float
    last_error: str | None
    last_error_time: float | None
    failures: int


class Heartbeat(NamedTuple):
    """The last sign of life of one message server (times in UNIX seconds).

    Attributes:
        server: its name, ``host:pid``.
        host: the host it runs on.
        pid: its process id there.
        started: when it started.
        beat: when it last went round its delivery loop.
    """

    server: str
    host: str
    pid: int
    started: float
    beat: float


class Stored(NamedTuple):
    """What became of a message given to :meth:`Store.put`.

    Attributes:
        id: its id, or the original's when it was a duplicate.
        duplicate: True when the same message (same dedup_key) was already stored.
        group: how many messages were committed in the same transaction (the
            commit group this message shared its fsync with), at least 1.
    """

    id: int
    duplicate: bool
    group: int = 1


class StoreError(Exception):
    """Base class of store failures."""


class StoreUnavailable(StoreError):
    """The database cannot take the write now (disk full, read-only, unreachable).
    Nothing was committed; the app answers 503 with Retry-After."""


class StoreTimeout(StoreUnavailable):
    """The database did not commit within the write's deadline (HABITAT_DB_TIMEOUT):
    another writer held its lock. Nothing was committed, and nothing of this write
    will be; the app answers 504 Gateway Timeout with Retry-After."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer habitat_http; refuse to touch it."""


class BadURL(StoreError):
    """The database URL cannot work, and waiting will not help: a malformed libpq
    URL, a port that is not a number, a SQLite file in a directory that does not
    exist. The message says which. The commands and gunicorn's workers refuse to
    start on it (see :func:`prepare`)."""


class UnsupportedURL(BadURL):
    """The URL names no backend: only ``sqlite:///`` and ``postgresql://`` are
    supported. Raised by :func:`open_store`; the caller words the message, naming
    where the URL came from (see :func:`habitat_http.config.store_from_config`).

    Attributes:
        url: the URL as given.
    """

    def __init__(self, url: str) -> None:
        super().__init__(
            f"the database URL must be a sqlite:/// or postgresql:// URL, not {url!r}."
        )
        self.url = url


class NoDatabase(StoreError):
    """A read-only store found no habitat database where it was pointed (no file,
    or no habitat schema in it); nothing was created."""


@runtime_checkable
class Store(Protocol):
    """Where accepted messages are kept.

    Implementations are safe to share between the threads of one process, and
    between processes that open the same database.
    """

    def put(self, message: Message) -> Stored:
        """Commit ``message`` durably and return its id.

        Ids increase with each message. When this returns, the message survives a
        crash (and, with SQLite's synchronous=FULL, a power loss). A message whose
        ``dedup_key`` is already stored is not stored again: the result names the
        original and says ``duplicate``.

        Raises:
            StoreUnavailable: nothing was committed; the client may retry later.
        """
        ...

    def put_many(self, messages: list[Message]) -> list[Stored]:
        """Commit ``messages`` in one transaction; one result each, in order.

        Raises:
            StoreUnavailable: none of them was committed.
        """
        ...

    def read_after(self, after: int = 0, limit: int | None = None) -> list[StoredMessage]:
        """Stored messages with ``id > after`` in id order, at most ``limit`` of them."""
        ...

    def close(self) -> None:
        """Release this process's connections; the store reconnects if used again."""
        ...

    def initialize(self, at_startup: bool = True) -> None:
        """Apply pending schema migrations; ``at_startup=False`` for init-db.

        Raises:
            SchemaTooNew, MigrationNeeded, StoreUnavailable.
        """
        ...

    def check(self, timeout: float) -> None:
        """A cheap read of the messages table, given up after ``timeout`` seconds
        (``GET /ready``). Creates nothing.

        Raises:
            StoreError: the database does not answer, or holds no habitat schema;
                the message says which.
        """
        ...


@runtime_checkable
class CheckpointStore(Store, Protocol):
    """A Store that also keeps the message server's per-sink checkpoints.

    Attributes:
        dialect: the kind of database, ``sqlite`` or ``postgresql``; it chooses
            the archive's backend (see :func:`habitat_http.archive.open_archive`).
    """

    dialect: str

    def deliverable(self, after: Position, limit: int) -> list[tuple[Position, StoredMessage]]:
        """The next messages to deliver after ``after``, in position order.

        Gap-free: a message not returned now because it is not yet committed
        will have a position greater than any returned.
        """
        ...

    def checkpoints(self) -> dict[str, Checkpoint]:
        """Every sink's Checkpoint, by sink name."""
        ...

    def save_checkpoint(self, sink: str, position: Position, now: float) -> None:
        """Durably record that ``sink`` took every message up to ``position``.

        A checkpoint never moves back (two servers may run the same sink).
        """
        ...

    def record_failure(self, sink: str, error: str, now: float) -> None:
        """Record that ``sink`` failed with ``error`` at ``now`` (UNIX seconds)."""
        ...

    def beat(self, heartbeat: Heartbeat) -> None:
        """Record that a message server is alive (one row per server, replaced)."""
        ...

    def heartbeats(self) -> list[Heartbeat]:
        """Every message server's last heartbeat, latest first."""
        ...

    def backlog(self, after: Position) -> tuple[int, float | None]:
        """How many messages come after ``after``, and when the oldest was received."""
        ...

    def wait_for_messages(self, timeout: float) -> None:
        """Block until a gateway signals a commit, or ``timeout`` seconds pass.

        A wake-up only: callers read the store afterwards, and poll anyway.
        """
        ...


def open_store(
    url: str,
    *,
    synchronous: str = "FULL",
    timeout: float = 5.0,
    read_only: bool = False,
) -> CheckpointStore:
    """The store for a database URL; :func:`habitat_http.config.store_from_config`
    opens it from the settings.

    Args:
        url: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, or
            ``postgresql://user@host/dbname`` (libpq URL).
        synchronous: SQLite ``PRAGMA synchronous`` level.
        timeout: seconds to wait for a locked database before StoreUnavailable.
        read_only: open only an existing habitat database (NoDatabase otherwise),
            and never write to it.

    Raises:
        UnsupportedURL: the URL's scheme is not supported.
    """
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStore

        return SQLiteStore(
            url.removeprefix("sqlite:///"),
            synchronous=synchronous,
            timeout=timeout,
            read_only=read_only,
        )
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url, timeout=timeout, read_only=read_only)
    raise UnsupportedURL(url)


def prepare(store: Store) -> StoreUnavailable | None:
    """The start-up check of a gateway, a gunicorn worker or a message server:
    apply the migrations that are safe, failing only on what waiting cannot fix.

    A database that is locked or unreachable now is not fatal: the problem is
    returned for the caller to log, writes answer 503 meanwhile, and the store
    connects (and migrates) on its first use after the database is back.

    Returns:
        None when the database is ready, else why it is unavailable now.

    Raises:
        BadURL: the URL cannot work (a malformed libpq URL, a SQLite file in a
            directory that does not exist).
        SchemaTooNew: the database was migrated by a newer habitat_http.
        MigrationNeeded: a pending migration needs ``habitat-http init-db``.
    """
    try:
        store.initialize()
    except StoreUnavailable as exc:
        return exc
    return None
