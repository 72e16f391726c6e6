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
from collections.abc import Callable

#: Seconds the bell stays quiet after finding no listener; the message server
#: polls every 0.2 s anyway.
QUIET = 0.5


def address(db_path: str) -> bytes:
    """The abstract socket address for ``db_path`` (no file, no length limit)."""
    digest = hashlib.sha256(os.path.realpath(db_path).encode()).hexdigest()[:24]
    return b"\0habitat_http-" + digest.encode()


class Bell:
    """The gateway's side: ring after a commit; never blocks, never raises.

    When no message server listens, a send fails (ECONNREFUSED); the bell then
    stays quiet for :data:`QUIET` seconds instead of failing on every commit. A
    server that starts listening meanwhile notices new messages at its next poll.
    """

    def __init__(self, db_path: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.address = address(db_path)
        self._sock: socket.socket | None = None
        self._pid = 0
        self._clock = clock
        self._quiet_until = 0.0

    def ring(self) -> None:
        if self._quiet_until and self._clock() < self._quiet_until:
            return
        if self._sock is None or self._pid != os.getpid():
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            self._pid = os.getpid()
        try:
            self._sock.sendto(b"!", self.address)
            self._quiet_until = 0.0
        except (ConnectionRefusedError, FileNotFoundError):
            self._quiet_until = self._clock() + QUIET  # nobody listens
        except OSError:
            pass  # its queue is full: it is awake already

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
