"""A supervised process dies with its supervisor (Linux).

Used by the message server that ``habitat-http serve`` supervises; imports
neither gunicorn nor the app, so the message server's process loads neither.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def exit_with_parent(parent: int | None) -> None:
    """Have the kernel send this process SIGTERM when ``parent`` dies.

    Linux prctl(PR_SET_PDEATHSIG); without it, a SIGKILLed gunicorn master would
    leave its message server running, and the next start would add a second one.
    Does nothing when ``parent`` is None (not supervised) or off Linux.

    Args:
        parent: the supervisor's pid (see habitat_http.config.supervisor_pid).
    """
    if parent is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
