"""Where messages wait until the gateway has answered for them.

Two queues with one interface (:class:`MessageQueue`): :class:`MemoryQueue`, and
:class:`SQLiteSpool`, a local SQLite file that survives a crash or a power cut.
Both are bounded: when full, :meth:`~MessageQueue.put` drops the oldest
messages, counts them in ``dropped`` and logs a WARNING. Both are thread-safe.

A message is a JSON object as the gateway's ``POST /messages`` takes it, minus
``time_uploaded`` (set at every attempt). Each waits under an increasing ``seq``
and leaves only by :meth:`~MessageQueue.remove`, i.e. after the gateway's answer.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: Default bound of a queue, in messages (issue 14: ``max_spool_messages``).
MAX_SPOOL_MESSAGES = 100_000


class SpoolLocked(Exception):
    """Another process (or another Uploader in this one) holds the spool file."""


@dataclass(frozen=True)
class Queued:
    """One waiting message: ``seq`` orders and names it in its queue."""

    seq: int
    message: dict[str, Any]


class MessageQueue(Protocol):
    """A bounded FIFO of messages waiting for the gateway's answer."""

    @property
    def dropped(self) -> int:
        """Messages dropped because the queue was full."""

    def put(self, message: dict[str, Any]) -> None:
        """Append ``message``, durably when the queue is a spool, before returning."""

    def peek(self, limit: int) -> list[Queued]:
        """The ``limit`` oldest waiting messages, oldest first; they stay queued."""

    def remove(self, seqs: list[int]) -> None:
        """Forget these messages (answered by the gateway); unknown seqs are ignored."""

    def __len__(self) -> int:
        """How many messages wait."""

    def close(self) -> None:
        """Release the queue; a spool keeps its waiting messages for the next run."""


class _DropLog:
    """Counts messages dropped at the bound and logs the first of every run of drops."""

    def __init__(self, what: str, bound: int) -> None:
        self.what = what
        self.bound = bound
        self.dropped = 0
        self._logged_at = -1

    def note(self, count: int) -> None:
        if count <= 0:
            return
        self.dropped += count
        # Log the first drop, then every 1000th, so a full spool cannot flood the log.
        if self._logged_at < 0 or self.dropped - self._logged_at >= 1000:
            self._logged_at = self.dropped
            log.warning(
                "%s is full (%d messages): dropped the oldest; %d dropped so far",
                self.what,
                self.bound,
                self.dropped,
            )


class MemoryQueue:
    """A :class:`MessageQueue` in memory, lost when the process ends.

    ``max_messages`` bounds it (default 100,000); ValueError if below 1.
    """

    def __init__(self, max_messages: int = MAX_SPOOL_MESSAGES) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1.")
        self._items: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._next = 1
        self._lock = threading.Lock()
        self._drops = _DropLog("the in-memory queue", max_messages)

    @property
    def dropped(self) -> int:
        """Messages dropped because the queue was full, since it was made."""
        return self._drops.dropped

    def put(self, message: dict[str, Any]) -> None:
        """Append ``message``; when full, drop the oldest (counted and logged)."""
        with self._lock:
            self._items[self._next] = message
            self._next += 1
            excess = len(self._items) - self._drops.bound
            for _ in range(excess):
                self._items.popitem(last=False)
            self._drops.note(excess)

    def peek(self, limit: int) -> list[Queued]:
        """The ``limit`` oldest messages, oldest first."""
        with self._lock:
            out: list[Queued] = []
            for seq, message in self._items.items():
                if len(out) >= limit:
                    break
                out.append(Queued(seq, message))
            return out

    def remove(self, seqs: list[int]) -> None:
        """Forget these messages."""
        with self._lock:
            for seq in seqs:
                self._items.pop(seq, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def close(self) -> None:
        """Nothing to release; the waiting messages are lost with the process."""


_SCHEMA = "CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, message TEXT)"


class SQLiteSpool:
    """A :class:`MessageQueue` in a local SQLite file, for unattended stations.

    ``put`` commits with ``synchronous=FULL`` in WAL mode before it returns, so a
    message survives a power cut. ``<path>.lock`` is held with ``flock`` while the
    spool is open, so two processes cannot share one spool by accident (SQLite's
    own locking would let both send the same messages). ``max_messages`` bounds
    the file (default 100,000); the oldest are dropped beyond it.

    Raises SpoolLocked when the lock is held elsewhere, ValueError for a bound
    below 1, and sqlite3.Error when the file cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str], max_messages: int = MAX_SPOOL_MESSAGES):
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1.")
        self.path = os.fspath(path)
        self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolLocked(
                f"The spool {self.path} is in use by another uploader (its .lock is held)."
            ) from None
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._lock = threading.Lock()
        self._drops = _DropLog(f"the spool {self.path}", max_messages)
        self._count = int(self._db.execute("SELECT count(*) FROM spool").fetchone()[0])

    @property
    def dropped(self) -> int:
        """Messages dropped because the spool was full, since it was opened."""
        return self._drops.dropped

    def put(self, message: dict[str, Any]) -> None:
        """Append ``message`` and commit; when full, drop the oldest in the same commit."""
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            excess = self._count + 1 - self._drops.bound
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("INSERT INTO spool (message) VALUES (?)", (text,))
                if excess > 0:
                    self._db.execute(
                        "DELETE FROM spool WHERE seq IN"
                        " (SELECT seq FROM spool ORDER BY seq LIMIT ?)",
                        (excess,),
                    )
            # Counted only once committed.
            self._count += 1 - max(0, excess)
            self._drops.note(excess)

    def peek(self, limit: int) -> list[Queued]:
        """The ``limit`` oldest messages, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, message FROM spool ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [Queued(int(seq), json.loads(text)) for seq, text in rows]

    def remove(self, seqs: list[int]) -> None:
        """Delete these messages in one commit."""
        if not seqs:
            return
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM spool WHERE seq = ?", [(s,) for s in seqs])
            self._count = int(self._db.execute("SELECT count(*) FROM spool").fetchone()[0])

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def close(self) -> None:
        """Close the file and release the lock; waiting messages stay for the next run."""
        with self._lock:
            self._db.close()
            os.close(self._lock_fd)
