"""gunicorn server hooks of the gateway's metrics (gunicorn's ``child_exit``)."""

from __future__ import annotations

from typing import Any

from ..config import Config
from .metrics import mark_process_dead


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn ``child_exit(server, worker)``: drop the dead worker's live metric
    files, as prometheus_client's multiprocess mode requires."""
    mark_process_dead(worker.pid, Config.from_env().prometheus_multiproc_dir)
