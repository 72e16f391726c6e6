"""What every store backend shares, as a base class."""

from __future__ import annotations

from ..messages import Message
from . import Stored


class BaseStore:
    """The part of :class:`habitat_http.store.CheckpointStore` that is the same in
    every backend; subclasses set ``dialect`` and define ``put_many``."""

    #: ``sqlite`` or ``postgresql`` (see CheckpointStore.dialect).
    dialect: str

    def put_many(self, messages: list[Message]) -> list[Stored]:
        raise NotImplementedError

    def put(self, message: Message) -> Stored:
        """Commit one message; see :meth:`habitat_http.store.Store.put`."""
        return self.put_many([message])[0]
