"""The sink interface of the message server, and how sinks are loaded.

A sink receives the stored messages of the types it wants, in the store's
delivery order (commit order: id order on SQLite, but not always on PostgreSQL,
where concurrent transactions commit out of id order), at least once. A sink is
made by a *factory*: a class or function called with a
:class:`SinkContext`. Factories are named in the server's config file, either by
dotted path (``package.module:Name`` or ``package.module.Name``) or by the name of
an entry point in the group ``habitat_http.sinks`` (importlib.metadata), through
which other packages provide sinks.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from ..messages import CLIENT_TYPES, TELEM, Message
from ..store import CheckpointStore

ENTRY_POINT_GROUP = "habitat_http.sinks"
#: Every message type a sink may ask for.
KNOWN_TYPES = frozenset({*CLIENT_TYPES, TELEM})


@runtime_checkable
class Sink(Protocol):
    """What the message server delivers to.

    Attributes:
        types: the message types this sink wants (a subset of RECEIVED_TELEM,
            LISTENER_INFO, LISTENER_TELEM and TELEM); others never reach it.

    A sink also defines ``message(msg)`` or ``messages(batch)`` (or both, in which
    case ``messages`` is used). Either may raise to refuse: the server then calls
    :meth:`flush`, keeps its checkpoint before the message that failed, and
    retries that message later with backoff. Delivery is at least once, so both
    must be idempotent: a message may come again after a crash.
    """

    types: frozenset[str]

    def setup(self) -> None:
        """Called once before the first delivery (connect, create tables)."""

    def flush(self) -> None:
        """Make everything delivered so far durable; the checkpoint moves after this."""

    def shutdown(self) -> None:
        """Called once when the server stops, after the last flush."""


@dataclass(frozen=True)
class SinkContext:
    """What a sink factory is given.

    Attributes:
        name: the sink's name in the config file; its checkpoint is kept under it.
        db_url: the server's database (``HABITAT_DB``), for sinks of other
            packages that keep their own connection.
        options: the sink's own settings from the config file.
        store: the message server's open store, which the archive sink shares;
            None only where no server runs (e.g. a test building a sink alone).
    """

    name: str
    db_url: str
    options: Mapping[str, Any] = field(default_factory=dict)
    store: CheckpointStore | None = None


SinkFactory = Callable[[SinkContext], Any]


class SinkLoadError(Exception):
    """A configured sink cannot be loaded; the message says which and why."""


def resolve(spec: str) -> SinkFactory:
    """The factory named by ``spec``: an entry point name, or a dotted path.

    Raises:
        SinkLoadError: nothing by that name can be imported.
    """
    found = entry_points(group=ENTRY_POINT_GROUP).select(name=spec)
    for ep in found:
        try:
            factory: SinkFactory = ep.load()
        except Exception as exc:
            raise SinkLoadError(f"entry point {spec!r} ({ep.value}) failed to load: {exc}") from exc
        return factory
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise SinkLoadError(
            f"sink {spec!r} is neither an entry point in {ENTRY_POINT_GROUP} "
            "nor a dotted path such as package.module:Name"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SinkLoadError(f"cannot import {module_name!r} for sink {spec!r}: {exc}") from exc
    try:
        obj: SinkFactory = getattr(module, attr)
    except AttributeError:
        raise SinkLoadError(f"{module_name!r} has no {attr!r} for sink {spec!r}") from None
    return obj


def check(sink: Any, spec: str) -> Sink:
    """Check that ``sink`` has the whole interface.

    Raises:
        SinkLoadError: naming every missing or wrong part.
    """
    problems: list[str] = []
    types = getattr(sink, "types", None)
    if not isinstance(types, set | frozenset) or not all(isinstance(t, str) for t in types):
        problems.append("'types' must be a set of message type names")
    elif unknown := sorted(set(types) - KNOWN_TYPES):
        problems.append(f"'types' names unknown message types {unknown}")
    for method in ("setup", "flush", "shutdown"):
        if not callable(getattr(sink, method, None)):
            problems.append(f"it has no {method}() method")
    if not callable(getattr(sink, "messages", None)) and not callable(
        getattr(sink, "message", None)
    ):
        problems.append("it has neither message(msg) nor messages(batch)")
    if problems:
        raise SinkLoadError(f"sink {spec!r} lacks the sink interface: {'; '.join(problems)}.")
    return sink  # type: ignore[no-any-return]


def load(spec: str, context: SinkContext) -> Sink:
    """Resolve ``spec``, build the sink with ``context`` and check its interface.

    Raises:
        SinkLoadError: it cannot be imported, its factory fails, or the result
            lacks part of the interface.
    """
    factory = resolve(spec)
    if not callable(factory):
        raise SinkLoadError(f"sink {spec!r} is not a class or function")
    try:
        sink = factory(context)
    except Exception as exc:
        raise SinkLoadError(f"sink {spec!r} failed to start: {exc}") from exc
    return check(sink, spec)


def deliver(sink: Sink, batch: Sequence[Message]) -> int:
    """Hand ``batch`` to ``sink``; return how many were delivered before a failure.

    Sinks with ``messages(batch)`` get the whole batch; a failure counts as none
    delivered. Sinks with ``message(msg)`` get one at a time, so the server can
    keep its checkpoint just before the one that failed.

    Raises:
        DeliveryError: the sink raised; ``delivered`` says how far it got.
    """
    many = getattr(sink, "messages", None)
    if callable(many):
        try:
            many(list(batch))
        except Exception as exc:
            raise DeliveryError(0, exc) from exc
        return len(batch)
    one = sink.message  # type: ignore[attr-defined]
    for done, msg in enumerate(batch):
        try:
            one(msg)
        except Exception as exc:
            raise DeliveryError(done, exc) from exc
    return len(batch)


class DeliveryError(Exception):
    """A sink raised while taking a batch.

    Attributes:
        delivered: how many messages of the batch it had taken before failing.
        cause: what it raised.
    """

    def __init__(self, delivered: int, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.delivered = delivered
        self.cause = cause
