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
