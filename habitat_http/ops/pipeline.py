"""The message server's state as the metrics show it, read from the database."""

from __future__ import annotations

from ..store import CheckpointStore
from .metrics import PipelineStatus, SinkStatus


def read_status(store: CheckpointStore, now: float) -> PipelineStatus:
    """Every sink's lag, failures and last success, and the server's heartbeat age.

    Args:
        store: the database the message server keeps its checkpoints in.
        now: seconds since the UNIX epoch.

    Raises:
        StoreError: the database could not be read (the collector then reports
            ``habitat_pipeline_status_up 0``).
    """
    sinks = []
    for cp in store.checkpoints().values():
        count, oldest = store.backlog(cp.position)
        sinks.append(
            SinkStatus(
                sink=cp.sink,
                lag_messages=count,
                lag_seconds=max(0.0, now - oldest) if oldest is not None else 0.0,
                failures=cp.failures,
                last_success=cp.updated,
            )
        )
    beats = store.heartbeats()
    # The newest beat of any server: with several servers, the pipeline is alive
    # while one of them is; a stalled or dead one shows in status, by name.
    age = max(0.0, now - max(hb.beat for hb in beats)) if beats else None
    return PipelineStatus(tuple(sinks), heartbeat_age=age)
