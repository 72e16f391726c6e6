"""Sinks for the tests, loadable by dotted path (tests.sink_examples:Name)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from habitat_http.messages import LISTENER_INFO, LISTENER_TELEM, RECEIVED_TELEM, Message
from habitat_http.sinks import SinkContext

#: Every sink made here, by name, so tests can look at what each one received.
MADE: dict[str, Any] = {}


class RecordingSink:
    """Records the ids it receives, one batch at a time."""

    def __init__(self, context: SinkContext) -> None:
        self.types = frozenset(
            context.options.get("types", [RECEIVED_TELEM, LISTENER_INFO, LISTENER_TELEM])
        )
        self.received: list[int] = []
        self.events: list[str] = []
        MADE[context.name] = self

    def setup(self) -> None:
        self.events.append("setup")

    def messages(self, batch: Sequence[Message]) -> None:
        self.received.extend(m.id for m in batch if m.id is not None)

    def flush(self) -> None:
        self.events.append("flush")

    def shutdown(self) -> None:
        self.events.append("shutdown")


class FlakySink(RecordingSink):
    """Refuses its first ``failures`` batches (default 3), then records like RecordingSink."""

    def __init__(self, context: SinkContext) -> None:
        super().__init__(context)
        self.failures_left = int(context.options.get("failures", 3))
        self.attempts = 0

    def messages(self, batch: Sequence[Message]) -> None:
        self.attempts += 1
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("downstream is unavailable")
        super().messages(batch)


class OneAtATimeSink(RecordingSink):
    """Takes messages one by one and fails once on the message with id ``fail_on``."""

    messages = None  # type: ignore[assignment]

    def __init__(self, context: SinkContext) -> None:
        super().__init__(context)
        self.fail_on = int(context.options["fail_on"])

    def message(self, msg: Message) -> None:
        if msg.id == self.fail_on:
            self.fail_on = -1
            raise RuntimeError(f"cannot take message {msg.id}")
        assert msg.id is not None
        self.received.append(msg.id)


class NoTypes:
    def __init__(self, context: SinkContext) -> None:
        pass

    def setup(self) -> None: ...
    def flush(self) -> None: ...
    def shutdown(self) -> None: ...
    def message(self, msg: Message) -> None: ...


class NoDelivery:
    types = frozenset({RECEIVED_TELEM})

    def __init__(self, context: SinkContext) -> None:
        pass

    def setup(self) -> None: ...
    def flush(self) -> None: ...


class UnknownType(RecordingSink):
    def __init__(self, context: SinkContext) -> None:
        super().__init__(context)
        self.types = frozenset({"RECEIVED_TELEM", "PARSED"})


class Explodes:
    def __init__(self, context: SinkContext) -> None:
        raise ValueError("no such downstream")
