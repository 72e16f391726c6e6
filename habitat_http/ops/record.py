"""What the gateway did with one request: the facts that the access log line and
the metrics are made from."""

from __future__ import annotations

from dataclasses import dataclass, field

from .phases import Phases


@dataclass(slots=True)
class Rejection:
    """One rejected message (or a whole request refused with a 4xx).

    Attributes:
        field: the dotted field the client must fix (``data.latitude``), or None
            when the body as a whole is wrong.
        error: the one sentence sent to the client.
        kind: a short, bounded error type (``number_range``, ``json``,
            ``too_large``...) for counting; never client text.
        type: the message type when it was known, else None.
    """

    field: str | None
    error: str
    kind: str
    type: str | None = None


@dataclass(slots=True)
class RequestRecord:
    """One request, filled in as it is served.

    Attributes:
        method, path: from the request line (path without the query).
        endpoint: the routed action (``message``, ``messages``, ``info``,
            ``metrics``, ``health``, ``ready``), or None when nothing matched.
        ip: the client's address (after ProxyFix when configured).
        phases: the phase durations, in seconds.
        status: the HTTP status answered.
        callsign: the (first) message's callsign, when one was read.
        message_type: the message's type, when it was one of the types.
        messages: how many messages the body held.
        ids: the store ids of the messages stored or found duplicate, in order.
        stored, duplicates: counts by message type.
        rejections: every rejected message, or the refusal of the whole request.
        failure: for a 5xx, the sentence sent to the client.
    """

    method: str
    path: str
    phases: Phases
    endpoint: str | None = None
    ip: str | None = None
    status: int = 0
    callsign: str | None = None
    message_type: str | None = None
    messages: int = 0
    ids: list[int] = field(default_factory=list)
    stored: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    failure: str | None = None

    def count(self, outcome: dict[str, int], message_type: str) -> None:
        """Add one message of ``message_type`` to ``outcome`` (stored or duplicates)."""
        outcome[message_type] = outcome.get(message_type, 0) + 1
