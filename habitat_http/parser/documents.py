"""payload_configuration documents kept in the store's database.

The parser's own table, ``payload_configurations``, versioned in
``schema_versions`` (component ``parser``) apart from the store's and the
archive's tables, with SQL for SQLite and PostgreSQL. A document is validated
(:func:`~habitat_http.parser.config.load_configuration`) before it is stored, and
stored as given, plus an ``_id`` when it has none: the first 32 hex digits of the
sha256 of its canonical JSON, so adding the same file twice stores it once. A
document is never changed or removed: a launch team adds a newer one (a later
``time_created``), which the parser then chooses for its callsigns.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, Final, NamedTuple

from ..store import CheckpointStore, StoreError
from ..store.migrations import Migration, migrate_component, table_exists
from .config import ConfigurationError, PayloadConfiguration, load_configuration

COMPONENT: Final = "parser"
TABLE: Final = "payload_configurations"
_TABLE_SQL = """
    CREATE TABLE payload_configurations (
        id           TEXT   PRIMARY KEY,
        name         TEXT   NOT NULL,
        time_created {real} NOT NULL,
        document     {json} NOT NULL,
        time_added   {real} NOT NULL
    )
"""
#: The parser's migrations for each store dialect. ``time_created`` is the
#: document's, ``time_added`` when it was stored (UNIX seconds both).
MIGRATIONS: Final[dict[str, tuple[Migration, ...]]] = {
    "sqlite": (Migration(_TABLE_SQL.format(real="REAL", json="TEXT")),),
    "postgresql": (Migration(_TABLE_SQL.format(real="DOUBLE PRECISION", json="JSONB")),),
}
#: pg_advisory_xact_lock key that serialises the parser's migrations across hosts.
_MIGRATION_LOCK: Final = 0x48415052  # "HAPR"


class DocumentConflict(StoreError):
    """A different payload_configuration with the same ``_id`` is already stored."""


class Added(NamedTuple):
    """What :meth:`ConfigurationDocuments.add` did.

    Attributes:
        id: the document's ``_id`` (given, or made from its content).
        new: False when the very same document was already stored.
    """

    id: str
    new: bool


def canonical(document: Mapping[str, Any]) -> str:
    """JSON with sorted keys and no spaces: equal documents give equal text."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def document_id(document: Mapping[str, Any]) -> str:
    """The ``_id`` of a document that has none: 32 hex digits of the sha256 of its
    canonical JSON."""
    return hashlib.sha256(canonical(document).encode("utf-8")).hexdigest()[:32]


class ConfigurationDocuments:
    """The payload_configuration documents in ``store``'s database, through its
    connections (so its timeout applies). Opening does no I/O.

    Args:
        store: the message store (SQLite or PostgreSQL).
    """

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store
        self.dialect = store.dialect
        self._mark = "?" if self.dialect == "sqlite" else "%s"
        self._ready = False

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        if self.dialect == "sqlite":
            with self.store.write() as conn:  # type: ignore[attr-defined]
                yield conn
        else:
            with self.store.transaction() as conn:  # type: ignore[attr-defined]
                yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Any]:
        if self.dialect == "sqlite":
            with self.store.read() as conn:  # type: ignore[attr-defined]
                yield conn
        else:
            with self.store.transaction() as conn:  # type: ignore[attr-defined]
                yield conn

    def initialize(self, at_startup: bool = True) -> None:
        """Create or migrate the parser's table (the store's own tables first).

        Args:
            at_startup: False for ``habitat-http init-db``.

        Raises:
            SchemaTooNew, MigrationNeeded, StoreUnavailable.
        """
        self.store.initialize(at_startup)
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            migrate_component(
                conn,
                self.dialect,
                COMPONENT,
                MIGRATIONS[self.dialect],
                repr(self.store),
                at_startup,
            )
        self._ready = True

    def add(self, document: Mapping[str, Any], now: float) -> Added:
        """Validate and store one document.

        Args:
            document: a decoded payload_configuration (habitat's shape).
            now: the time it is added, in seconds since the UNIX epoch.

        Raises:
            ConfigurationError: it breaks a rule; every error names its path.
            DocumentConflict: a different document with its ``_id`` is stored.
            StoreUnavailable: the database cannot take the write now.
        """
        config = load_configuration(document)
        stored = dict(document)
        stored.setdefault("_id", document_id(document))
        if not isinstance(stored["_id"], str) or not stored["_id"]:
            raise ConfigurationError([("_id", "must be non-empty text")])
        doc_id = stored["_id"]
        if not self._ready:
            self.initialize()
        m = self._mark
        text = canonical(stored)
        with self._write() as conn:
            row = conn.execute(f"SELECT document FROM {TABLE} WHERE id = {m}", (doc_id,)).fetchone()
            if row is not None:
                if canonical(_decoded(row[0])) != text:
                    raise DocumentConflict(
                        f"a different payload_configuration with _id {doc_id!r} is already"
                        " stored; give the new one another _id (or none)"
                    )
                return Added(doc_id, False)
            conn.execute(
                f"INSERT INTO {TABLE} (id, name, time_created, document, time_added)"
                f" VALUES ({m}, {m}, {m}, {m}, {m})",
                (doc_id, config.name, config.time_created.timestamp(), self._json(stored), now),
            )
        return Added(doc_id, True)

    def _json(self, document: dict[str, Any]) -> Any:
        if self.dialect == "sqlite":
            return canonical(document)
        from psycopg.types.json import Jsonb

        return Jsonb(document)

    def documents(self) -> list[dict[str, Any]]:
        """Every stored document as stored, oldest ``time_created`` first (ties: in
        the order added). Only reads: none before the table exists."""
        with self._read() as conn:
            if not self._ready and not table_exists(conn, self.dialect, TABLE):
                return []
            rows = conn.execute(
                f"SELECT document FROM {TABLE} ORDER BY time_created, time_added, id"
            ).fetchall()
        return [_decoded(row[0]) for row in rows]

    def configurations(self) -> list[PayloadConfiguration]:
        """Every stored document, validated, in the order of :meth:`documents` (the
        order :class:`~habitat_http.parser.engine.Parser` breaks ties by).

        Raises:
            ConfigurationError: a stored document no longer validates (named by _id).
        """
        out = []
        for document in self.documents():
            try:
                out.append(load_configuration(document))
            except ConfigurationError as e:
                raise ConfigurationError(
                    [(f"{document.get('_id')}.{p}".rstrip("."), msg) for p, msg in e.errors]
                ) from None
        return out

    def version(self) -> tuple[int, float]:
        """``(how many documents, when the last was added)``: changes whenever a
        document is added, and costs one small query (the sink asks each batch)."""
        with self._read() as conn:
            if not self._ready and not table_exists(conn, self.dialect, TABLE):
                return (0, 0.0)
            row = conn.execute(f"SELECT count(*), max(time_added) FROM {TABLE}").fetchone()
        return (int(row[0]), float(row[1] or 0.0))


def _decoded(value: Any) -> dict[str, Any]:
    """JSON stored as text (SQLite) decoded; PostgreSQL's JSONB arrives decoded."""
    return dict(json.loads(value) if isinstance(value, str) else value)
