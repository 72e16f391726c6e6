"""The archive sink, the message server's default: merges every stored message into
the payload_telemetry, listener_information and listener_telemetry documents
(see :mod:`habitat_http.archive`) in the store's own database."""

from __future__ import annotations

from collections.abc import Sequence

from ..messages import LISTENER_INFO, LISTENER_TELEM, RECEIVED_TELEM, Message
from ..store import Archive, open_archive
from . import SinkContext


class ArchiveSink:
    """Keeps the archive documents up to date.

    Args:
        context: its database is ``context.db_url`` (the store's); no options.

    Each batch is merged in one transaction, so ``flush`` has nothing left to do.
    """

    types = frozenset({RECEIVED_TELEM, LISTENER_INFO, LISTENER_TELEM})

    def __init__(self, context: SinkContext) -> None:
        self.db_url = context.db_url
        self.archive: Archive | None = None

    def setup(self) -> None:
        """Open the archive tables (created by the store's migrations)."""
        self.archive = open_archive(self.db_url)

    def messages(self, batch: Sequence[Message]) -> None:
        """Merge ``batch`` atomically; raises StoreUnavailable if it could not."""
        assert self.archive is not None, "setup() was not called"
        self.archive.apply(batch)

    def flush(self) -> None:
        """Nothing to do: every batch is committed by :meth:`messages`."""

    def shutdown(self) -> None:
        """Release the database connection."""
        if self.archive is not None:
            self.archive.close()
            self.archive = None
