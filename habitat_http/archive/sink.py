"""The archive sink, the message server's default: merges every stored message into
the payload_telemetry, listener_information and listener_telemetry documents
(see :mod:`habitat_http.archive`) in the store's own database, including the
parser's TELEM messages."""

from __future__ import annotations

from collections.abc import Sequence

from ..messages import LISTENER_INFO, LISTENER_TELEM, RECEIVED_TELEM, TELEM, StoredMessage
from ..sinks import SinkContext
from ..store import CheckpointStore
from . import Archive, open_archive


class ArchiveSink:
    """Keeps the archive documents up to date.

    Args:
        context: its database is ``context.store``, the message server's own store
            (so one connection and the server's HABITAT_DB_TIMEOUT); no options.

    Each batch is merged in one transaction, so ``flush`` has nothing left to do.
    """

    types = frozenset({RECEIVED_TELEM, LISTENER_INFO, LISTENER_TELEM, TELEM})

    def __init__(self, context: SinkContext) -> None:
        self.store: CheckpointStore | None = context.store
        self.archive: Archive | None = None

    def setup(self) -> None:
        """Open the archive on the server's store and create or migrate its tables.

        Raises:
            RuntimeError: the context gave no store (the server always gives one).
            SchemaTooNew, MigrationNeeded, StoreUnavailable: see Archive.initialize.
        """
        if self.store is None:
            raise RuntimeError("the archive sink needs the message server's store")
        self.archive = open_archive(self.store)
        self.archive.initialize()

    def messages(self, batch: Sequence[StoredMessage]) -> None:
        """Merge ``batch`` atomically; raises StoreUnavailable if it could not."""
        assert self.archive is not None, "setup() was not called"
        self.archive.apply(batch)

    def flush(self) -> None:
        """Nothing to do: every batch is committed by :meth:`messages`."""

    def shutdown(self) -> None:
        """Forget the archive; the store is the server's, which closes it."""
        self.archive = None
