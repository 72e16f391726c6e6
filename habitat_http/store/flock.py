"""An exclusive ``flock`` taken within a deadline, woken the moment it is free.

``flock(2)`` either blocks with no time limit or fails at once (LOCK_NB). Polling
with LOCK_NB and short sleeps wakes a waiter up to a sleep late after the holder
lets go. Here a waiter that finds the lock taken hands a blocking flock to one
helper thread per process, which the kernel wakes as soon as the lock is free,
and waits for it at most until its deadline. A wait given up at the deadline is
marked abandoned; the helper releases the lock at once when it gets it later.

The helper flocks a duplicate of the caller's descriptor: flock locks belong to
the open file description, which the duplicate shares, so the caller holds the
lock; and closing the caller's file meanwhile cannot make the helper lock
another file that reuses the descriptor's number.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import deque


class _Wait:
    __slots__ = ("abandoned", "fd", "granted", "lock")

    def __init__(self, fd: int) -> None:
        self.fd = os.dup(fd)
        self.granted = threading.Event()
        self.abandoned = False
        self.lock = threading.Lock()


class FlockWaiter:
    """Takes ``flock(LOCK_EX)`` on a descriptor before a deadline; see the module
    docstring. One per process is enough; it is safe to share between threads."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[_Wait] = deque()
        self._pid = 0

    def acquire(self, fd: int, deadline: float) -> bool:
        """Lock ``fd`` exclusively; False when ``deadline`` (time.monotonic) passed
        first, and then the lock is not held."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        wait = _Wait(fd)
        with self._cond:
            if self._pid != os.getpid():  # new, or forked: the helper thread is not here
                self._queue = deque()
                threading.Thread(target=self._serve, name="habitat-flock", daemon=True).start()
                self._pid = os.getpid()
            self._queue.append(wait)
            self._cond.notify()
        if wait.granted.wait(left):
            return True
        with wait.lock:
            if wait.granted.is_set():  # granted just as the wait ended
                return True
            wait.abandoned = True
        return False

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                wait = self._queue.popleft()
            try:
                with wait.lock:
                    if wait.abandoned:
                        continue
                fcntl.flock(wait.fd, fcntl.LOCK_EX)  # blocks without the GIL
                with wait.lock:
                    if wait.abandoned:
                        fcntl.flock(wait.fd, fcntl.LOCK_UN)
                    else:
                        wait.granted.set()
            except OSError:
                pass  # the waiter gives up at its deadline
            finally:
                os.close(wait.fd)
