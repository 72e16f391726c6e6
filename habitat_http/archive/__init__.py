"""The archive: payload_telemetry, listener_information and listener_telemetry
documents, kept in the store's own database.

- :mod:`.rules`: the documents and merge rules (pure code);
- :mod:`.sqlite`, :mod:`.postgres`: the backends, one per store dialect;
- :mod:`.migrations`: the archive's tables, versioned apart from the store's;
- :mod:`.sink`: the message server's ``archive`` sink.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from typing import Any, Final, Protocol

from ..messages import StoredMessage
from ..store import CheckpointStore, StoreError
from .rules import DOCUMENT_TYPES, LISTENER_INFORMATION, LISTENER_TELEMETRY, PAYLOAD_TELEMETRY

__all__ = [
    "DOCUMENT_TYPES",
    "LISTENER_INFORMATION",
    "LISTENER_TELEMETRY",
    "PAYLOAD_TELEMETRY",
    "Archive",
    "open_archive",
]

#: The backend module and class for each store dialect (``CheckpointStore.dialect``),
#: imported only when used, so that SQLite deployments never import psycopg.
_BACKENDS: Final = {
    "sqlite": ("habitat_http.archive.sqlite", "SQLiteArchive"),
    "postgresql": ("habitat_http.archive.postgres", "PostgresArchive"),
}


class Archive(Protocol):
    """The archive's documents (see :mod:`habitat_http.archive.rules`)."""

    def initialize(self, at_startup: bool = True) -> None:
        """Create or migrate the archive's tables; done by the first use anyway.

        Args:
            at_startup: False for ``habitat-http init-db``.

        Raises:
            SchemaTooNew, MigrationNeeded, StoreUnavailable.
        """
        ...

    def apply(self, batch: Sequence[StoredMessage]) -> None:
        """Merge stored messages, in delivery order, into the documents, atomically and
        idempotently.

        Raises:
            StoreUnavailable: nothing of the batch was applied.
        """
        ...

    def documents(self, doc_type: str, after: int = 0) -> Iterator[dict[str, Any]]:
        """Documents of one type, in the order of the messages that created them.

        Only reads (creates no table), so it also works on a read-only store.

        Raises:
            ValueError: ``doc_type`` is not one of :data:`DOCUMENT_TYPES`.
        """
        ...

    def payloads_since(
        self, since: int, limit: int = 1000, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Every payload heard at or after ``since``: the payloads of the strings
        whose estimated_time_created (UNIX seconds) is at least ``since``, latest
        heard first, each ``{"payload", "strings", "parse_failures", "first_heard",
        "last_heard", "max_altitude", "positions"}`` counted over those strings (see
        rules.payload_summary); at most ``limit``, skipping the first ``offset``.

        An indexed query (estimated_time_created). Strings no parser has seen yet
        have no payload and are not counted. Only reads.
        """
        ...

    def recent(self, payload: str, limit: int = 10) -> list[dict[str, Any]]:
        """A payload's latest ``limit`` valid positions, newest first, each as
        :meth:`track` gives it. Indexed (payload, estimated_time_created). Only reads."""
        ...

    def listeners_since(
        self, since: int, limit: int = 100, after: str | None = None
    ) -> list[dict[str, Any]]:
        """The listeners active at or after ``since`` (UNIX seconds): receivers of a
        string heard since then, and callsigns with a listener_information or
        listener_telemetry document made since then. Ordered by callsign, at most
        ``limit``, those after the callsign ``after``. Each is ``{"callsign",
        "strings" (distinct strings it reported among those heard since ``since``),
        "information", "telemetry" (its latest document of each type, at any time,
        as :meth:`documents` gives it, or None)}``.

        Indexed: payload_telemetry_time, the listener tables' time_created indexes
        (archive migration 3) and their (callsign, time_created) indexes. Only reads.
        """
        ...

    def track(
        self, payload: str, since: int = 0, limit: int = 1000, after: str | None = None
    ) -> list[dict[str, Any]]:
        """A payload's valid positions since ``since`` (UNIX seconds), oldest first
        by (estimated_time_created, id), at most ``limit`` (see rules.track_point).

        Args:
            after: the ``_id`` of the last point of the previous page; the page
                starts after it.

        An indexed query (payload, estimated_time_created). Only reads.
        """
        ...

    def problems(
        self, payload: str, limit: int = 20, after: str | None = None
    ) -> list[dict[str, Any]]:
        """A payload's most recent strings that did not parse, newest first, each
        with its ``_parse_error`` (see rules.problem), at most ``limit``. Indexed.
        Only reads.

        Args:
            after: the ``_id`` of the last problem of the previous page.

        Raises:
            ValueError: ``after`` names no payload_telemetry document.
        """
        ...

    def strings_of(self, payload: str) -> Iterator[tuple[str, int]]:
        """``(_raw, estimated_time_created)`` of every string of ``payload``: those
        parsed (or failed) as that payload, and those no parser has seen yet whose
        sentence starts with ``$$<payload>``. For ``habitat-http reparse``."""
        ...

    def close(self) -> None:
        """Release this process's connections (the store's; it reconnects if used)."""
        ...


def open_archive(store: CheckpointStore) -> Archive:
    """The archive documents kept in ``store``'s database, through ``store``'s
    connections (so its timeout and settings apply). Does no I/O.

    Raises:
        StoreError: no archive backend for the store's dialect.
    """
    try:
        module, name = _BACKENDS[store.dialect]
    except KeyError:
        raise StoreError(f"the archive cannot be kept in a {store.dialect} store") from None
    backend: Archive = getattr(importlib.import_module(module), name)(store)
    return backend
