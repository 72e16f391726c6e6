"""Which process this is, cheaply: a number that changes in every forked child.

The operations threads (metrics and access-line flushers) do not survive
gunicorn's fork of a worker, so each process starts its own. Comparing this
number on each request costs less than asking the kernel for the pid.
"""

from __future__ import annotations

import os

_generation = 1


def generation() -> int:
    """The number of this process: different in a child forked after it was read."""
    return _generation


def _forked() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)
