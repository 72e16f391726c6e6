"""A best-effort wake-up from the gateway to the message server, for SQLite.

After each commit the gateway sends one datagram to a Unix socket in Linux's
abstract namespace, named after the database file; a message server waiting for
new messages listens there. Nothing depends on it: a lost ring only means the
server notices at its next poll. (PostgreSQL uses LISTEN/NOTIFY instead.)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import time


def address(db_path: str) -> bytes:
    """The abstract socket address for ``db_path`` (no file, no length limit)."""
    digest = hashlib.sha256(os.path.realpath(db_path).encode()).hexdigest()[:24]
    return b"\0habitat_http-" + digest.encode()


class Bell:
    """The gateway's side: ring after a commit; never blocks, never raises."""

    def __init__(self, db_path: str) -> None:
        self.address = address(db_path)
        self._sock: socket.socket | None = None
        self._pid = 0

    def ring(self) -> None:
        if self._sock is None or self._pid != os.getpid():
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            self._pid = os.getpid()
        # No listener, or its queue is full: it will poll anyway.
        with contextlib.suppress(OSError):
            self._sock.sendto(b"!", self.address)

    def close(self) -> None:
        if self._sock is not None and self._pid == os.getpid():
            self._sock.close()
        self._sock = None


class Listener:
    """The message server's side: wait for a ring, or a timeout."""

    def __init__(self, db_path: str) -> None:
        self.address = address(db_path)
        self._sock: socket.socket | None = None
        self._bound = True

    def wait(self, timeout: float) -> None:
        """Block until a ring or ``timeout`` seconds.

        Only one process can listen per database; the others just sleep.
        """
        if self._sock is None and self._bound:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(self.address)
            except OSError:  # another message server listens already
                sock.close()
                self._bound = False
            else:
                self._sock = sock
        if self._sock is None:
            time.sleep(timeout)
            return
        self._sock.settimeout(timeout)
        try:
            self._sock.recv(64)
        except TimeoutError:
            return
        self._sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while self._sock.recv(64):  # drain: many commits, one wake-up
                pass

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
