"""The ``parser`` sink: turns RECEIVED_TELEM strings into TELEM messages.

For each distinct string of a batch it parses the string with the
payload_configuration documents in the database (see :mod:`.documents`) and stores
one TELEM message through the message server's store (see :mod:`.telem` for its
data and dedup key); the archive sink then merges it into the string's
payload_telemetry document. A string heard by several receivers, or delivered
again after a crash, makes no second TELEM: the store keeps one message per dedup
key. Before each batch it checks (one small query) whether documents were added,
and rebuilds its parser if so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from ..messages import RECEIVED_TELEM, StoredMessage
from ..sinks import SinkContext
from ..store import CheckpointStore
from .documents import ConfigurationDocuments
from .engine import Parser, build_parser
from .telem import telem_message

log = logging.getLogger(__name__)


class ParserSink:
    """The parser as a sink of the message server.

    Args:
        context: its store is the message server's own (TELEM messages are stored
            there, and the documents are read from there). Option
            ``default_mode`` (bool, default true): parse payloads without a
            payload_configuration in the default mode, or record them as failures.
        clock: seconds since the UNIX epoch; gives ``time_parsed``.

    Raises:
        ValueError: ``default_mode`` is not a bool (the server reports it at start).
    """

    types = frozenset({RECEIVED_TELEM})

    def __init__(self, context: SinkContext, clock: Callable[[], float] = time.time) -> None:
        self.store: CheckpointStore | None = context.store
        self.clock = clock
        default_mode = context.options.get("default_mode", True)
        if not isinstance(default_mode, bool):
            raise ValueError("the parser sink's default_mode must be true or false")
        self.default_mode = default_mode
        self.documents: ConfigurationDocuments | None = None
        self.parser: Parser | None = None
        self._version: tuple[int, float] | None = None

    def setup(self) -> None:
        """Create or migrate the documents' table and load the documents.

        Raises:
            RuntimeError: the context gave no store.
            SchemaTooNew, MigrationNeeded, StoreUnavailable, ConfigurationError.
        """
        if self.store is None:
            raise RuntimeError("the parser sink needs the message server's store")
        self.documents = ConfigurationDocuments(self.store)
        self.documents.initialize()
        self._reload()

    def _reload(self) -> Parser:
        assert self.documents is not None, "setup() was not called"
        version = self.documents.version()
        if self.parser is None or version != self._version:
            configurations = self.documents.configurations()
            self.parser = build_parser(configurations, default_mode=self.default_mode)
            self._version = version
            log.info("parser: %d payload_configuration documents loaded", len(configurations))
        return self.parser

    def messages(self, batch: Sequence[StoredMessage]) -> None:
        """Store one TELEM per distinct string of ``batch`` (idempotent).

        Raises:
            StoreUnavailable: nothing was stored; the server retries the batch.
        """
        assert self.store is not None, "setup() was not called"
        parser = self._reload()
        now = self.clock()
        first: dict[str, StoredMessage] = {}
        for message in batch:
            first.setdefault(message.data["string"], message)
        telems = [telem_message(parser, raw, m.time_created, now) for raw, m in first.items()]
        if telems:
            self.store.put_many(telems)

    def flush(self) -> None:
        """Nothing to do: every batch's TELEM messages are committed by :meth:`messages`."""

    def shutdown(self) -> None:
        """Forget the parser; the store is the server's, which closes it."""
        self.parser = None
