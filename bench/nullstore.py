"""Diagnostic only: habitat_http with a store that keeps nothing.

It shows the ceiling of the request path itself (werkzeug, parsing, validation,
clock correction) without any storage; bench/run.py measures it beside the real
thing. Never deploy it: it answers 200 for messages it drops.
"""

from __future__ import annotations

import itertools
import threading

from habitat_http import Message, create_app
from habitat_http.config import Config
from habitat_http.messages import StoredMessage
from habitat_http.store import Stored


class NullStore:
    """Counts messages and discards them."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def put(self, message: Message) -> Stored:
        with self._lock:
            return Stored(next(self._ids), False)

    def put_many(self, messages: list[Message]) -> list[Stored]:
        return [self.put(m) for m in messages]

    def read_after(self, after: int = 0, limit: int | None = None) -> list[StoredMessage]:
        return []

    def close(self) -> None:
        pass

    def initialize(self, at_startup: bool = True) -> None:
        pass

    def check(self, timeout: float) -> None:
        pass


app = create_app(Config.from_env(), NullStore())
