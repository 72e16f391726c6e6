"""What both backends do alike with the rows of ``messages``: the row codec, and
the planning of which rows of a batch to insert (a retry is stored once).

Only how ``data`` is encoded differs: JSON text in SQLite, JSONB in PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..messages import Message, StoredMessage
from . import Stored

#: The columns of ``messages`` that :func:`to_row` fills, in its order.
COLUMNS = "callsign, type, time_created, time_uploaded, ip, data, time_received, dedup_key"


def to_row(message: Message, encode_data: Callable[[dict[str, Any]], Any]) -> tuple[Any, ...]:
    """``message`` as the values of :data:`COLUMNS`; the dedup_key last, as bytes."""
    return (
        message.callsign,
        message.type,
        message.time_created,
        message.time_uploaded,
        message.ip,
        encode_data(message.data),
        message.time_received,
        None if message.dedup_key is None else bytes.fromhex(message.dedup_key),
    )


def from_row(row: Sequence[Any]) -> StoredMessage:
    """The message of a row ``(id, *COLUMNS)``; ``data`` as JSON text or decoded."""
    id_, callsign, type_, created, uploaded, ip, data, received, key = row
    return StoredMessage(
        callsign=callsign,
        type=type_,
        time_created=int(created),
        time_uploaded=int(uploaded),
        data=json.loads(data) if isinstance(data, str) else data,
        ip=ip,
        time_received=float(received),
        id=int(id_),
        dedup_key=None if key is None else bytes(key).hex(),
    )


def plan_inserts(keys: Sequence[bytes | None]) -> list[int]:
    """The positions in a batch to insert: every row without a dedup_key, and the
    first row of each key (a later one is a retry of it)."""
    seen: set[bytes] = set()
    fresh = []
    for pos, key in enumerate(keys):
        if key is None or key not in seen:
            fresh.append(pos)
            if key is not None:
                seen.add(key)
    return fresh


def outcomes(
    keys: Sequence[bytes | None], inserted: Mapping[int, int], originals: Mapping[bytes, int]
) -> list[Stored]:
    """What became of each row of a batch.

    Args:
        keys: each row's dedup_key.
        inserted: the id of each row that was inserted, by position.
        originals: the ids of messages stored before this batch, by dedup_key.

    A row not inserted is a duplicate of the stored original of its key or, failing
    that, of the first row of the batch with its key.
    """
    first: dict[bytes, int] = {}
    out = []
    for pos, key in enumerate(keys):
        if pos in inserted:
            out.append(Stored(inserted[pos], False))
            if key is not None:
                first.setdefault(key, inserted[pos])
        else:
            assert key is not None, "a row without a dedup_key is always inserted"
            out.append(Stored(originals[key] if key in originals else first[key], True))
    return out
