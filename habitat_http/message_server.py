"""The message server: delivers every stored message to the sinks that want it.

Delivery is at least once, in commit order, with a durable checkpoint per sink:

- a sink's checkpoint is the position (see :class:`habitat_http.store.Position`)
  of the last message it has taken, and moves only after the sink's ``flush()``;
  a restart resumes there, and a crash in the middle of a batch delivers that
  batch again, never skipping a message. Positions, not ids, because on
  PostgreSQL concurrent transactions commit out of id order;
- a failing sink keeps its checkpoint just before the message it failed on and
  is retried with exponential backoff; the other sinks go on meanwhile; its lag
  and last error are kept in the database for ``habitat-http status``;
- when idle, it waits for a wake-up from a gateway's commit (a datagram on
  SQLite, NOTIFY on PostgreSQL) and looks anyway every ``poll_interval`` seconds
  (0.2 by default); it never spins, and notices a stop within that interval;
- on stop it finishes the batch in hand, saves the checkpoints, flushes and
  shuts the sinks down;
- every time round its delivery loop, at most once per ``HEARTBEAT_INTERVAL``
  seconds, it records a heartbeat in the database (``host:pid`` and the time).
  ``habitat-http status`` reports a server whose last beat is older than
  ``STALE_AFTER`` seconds as down: dead, stalled in a sink, or cut off from the
  database. A stalled pipeline never looks healthy.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .config import ServerConfig
from .messages import StoredMessage
from .sinks import DeliveryError, Sink, SinkContext, SinkLoadError, deliver, load
from .store import START, CheckpointStore, Heartbeat, Position, StoreError

log = logging.getLogger(__name__)

#: Seconds between two heartbeats of a message server.
HEARTBEAT_INTERVAL = 1.0
#: A message server silent for longer than this, in seconds, is reported down:
#: ten heartbeats missed (or 50 polls at the default poll_interval).
STALE_AFTER = 10.0


@dataclass
class _SinkState:
    name: str
    sink: Sink
    checkpoint: Position
    failures: int = 0
    retry_at: float = 0.0


class MessageServer:
    """Pushes stored messages to sinks; see the module docstring.

    Args:
        store: the message store (its database also keeps the checkpoints).
        sinks: ``(name, sink)`` pairs, already loaded and checked.
        config: batch size, polling and retry settings.
        clock: seconds since the UNIX epoch; used for lag and backoff.
    """

    def __init__(
        self,
        store: CheckpointStore,
        sinks: Sequence[tuple[str, Sink]],
        config: ServerConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = config or ServerConfig()
        self.clock = clock
        self._sinks = [_SinkState(name, sink, START) for name, sink in sinks]
        host = socket.gethostname()
        self._heartbeat = Heartbeat(f"{host}:{os.getpid()}", host, os.getpid(), clock(), 0.0)
        self._last_beat = -HEARTBEAT_INTERVAL

    def beat(self) -> None:
        """Record a heartbeat unless one was recorded in the last HEARTBEAT_INTERVAL
        seconds. A database that cannot take it is logged, not fatal."""
        now = self.clock()
        if 0 <= now - self._last_beat < HEARTBEAT_INTERVAL:
            return
        try:
            self.store.beat(self._heartbeat._replace(beat=now))
            self._last_beat = now
        except StoreError as exc:
            log.warning("cannot record the heartbeat: %s", exc)

    def start(self) -> None:
        """Load the checkpoints and set the sinks up.

        Raises:
            StoreError: the checkpoints could not be read or saved.
        """
        self._load_checkpoints()
        self._setup_sinks()

    def _load_checkpoints(self) -> None:
        saved = self.store.checkpoints()
        for state in self._sinks:
            state.checkpoint = saved[state.name].position if state.name in saved else START
            if state.name not in saved:
                self.store.save_checkpoint(state.name, START, self.clock())

    def _setup_sinks(self) -> None:
        for state in self._sinks:
            state.sink.setup()
            log.info("sink %s starts after %s", state.name, state.checkpoint)

    def step(self, stop: threading.Event | None = None) -> bool:
        """Offer one batch to every sink that is not waiting to retry.

        Returns:
            Whether any sink moved its checkpoint (so there may be more to do).
        """
        progressed = False
        batches: dict[Position, list[tuple[Position, StoredMessage]]] = {}
        for state in self._sinks:
            if stop is not None and stop.is_set():
                break
            if self.clock() < state.retry_at:
                continue
            if state.checkpoint not in batches:
                batches[state.checkpoint] = self.store.deliverable(
                    state.checkpoint, self.config.batch_size
                )
            batch = batches[state.checkpoint]
            if batch:
                progressed |= self._offer(state, batch)
        return progressed

    def _offer(self, state: _SinkState, batch: list[tuple[Position, StoredMessage]]) -> bool:
        wanted = [i for i, (_, m) in enumerate(batch) if m.type in state.sink.types]
        try:
            if wanted:
                deliver(state.sink, [batch[i][1] for i in wanted])
            state.sink.flush()
        except DeliveryError as exc:
            failed_at = wanted[exc.delivered]
            before = batch[failed_at - 1][0] if failed_at else None
            self._failed(state, exc.cause, before)
            return False
        except Exception as exc:  # noqa: BLE001  a third-party sink's flush may raise anything
            self._failed(state, exc, None)
            return False
        self._advance(state, batch[-1][0])
        state.failures = 0
        return True

    def _advance(self, state: _SinkState, position: Position) -> None:
        self.store.save_checkpoint(state.name, position, self.clock())
        state.checkpoint = position

    def _failed(self, state: _SinkState, error: Exception, taken: Position | None) -> None:
        if taken is not None:
            # Everything up to the message before the failed one was taken: keep
            # it. The sink may still need its flush for that part.
            try:
                state.sink.flush()
                self._advance(state, taken)
            except Exception:
                log.exception("sink %s failed to flush after an error", state.name)
        state.failures += 1
        delay = min(self.config.retry_initial * 2 ** (state.failures - 1), self.config.retry_max)
        state.retry_at = self.clock() + delay
        text = f"{type(error).__name__}: {error}"
        log.warning("sink %s failed (%s); retrying in %.1f s", state.name, text, delay)
        self.store.record_failure(state.name, text, self.clock())

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set, then flush and shut the sinks down.

        A database that is unavailable when it starts is retried every
        ``poll_interval`` seconds (logged once), not a reason to exit.
        """
        logged = False
        while True:
            try:
                self._load_checkpoints()
                break
            except StoreError as exc:
                if not logged:
                    log.warning("the store is unavailable (%s); waiting for it", exc)
                    logged = True
                if stop.wait(self.config.poll_interval):
                    return
        self._setup_sinks()
        try:
            while not stop.is_set():
                self.beat()
                try:
                    progressed = self.step(stop)
                except StoreError:
                    log.exception("the store is unavailable; trying again")
                    progressed = False
                if not progressed and not stop.is_set():
                    # Woken by the gateway's commit (doorbell or NOTIFY), or polls.
                    self.store.wait_for_messages(self._idle_wait())
        finally:
            for state in self._sinks:
                try:
                    state.sink.flush()
                    state.sink.shutdown()
                except Exception:
                    log.exception("sink %s failed to shut down", state.name)
            log.info("message server stopped")

    def _idle_wait(self) -> float:
        now = self.clock()
        waits = [s.retry_at - now for s in self._sinks if s.retry_at > now]
        return max(0.01, min([self.config.poll_interval, *waits]))


def load_sinks(
    config: ServerConfig, db_url: str, store: CheckpointStore | None = None
) -> list[tuple[str, Sink]]:
    """Load every configured sink and check its interface (none is set up yet),
    giving each the server's ``store`` (see SinkContext).

    Raises:
        SinkLoadError: one cannot be loaded or lacks the interface; the message
            names it as ``[sinks.NAME]``.
    """
    sinks = []
    for spec in config.sinks:
        context = SinkContext(spec.name, db_url, spec.options, store)
        try:
            sinks.append((spec.name, load(spec.use, context)))
        except SinkLoadError as exc:
            raise SinkLoadError(f"[sinks.{spec.name}]: {exc}") from exc
    return sinks


def servers(
    store: CheckpointStore, now: float, stale_after: float = STALE_AFTER
) -> list[dict[str, Any]]:
    """Every message server that has run on this database, latest heartbeat first.

    Each has ``server`` (host:pid), ``host``, ``pid``, ``started`` and
    ``last_beat`` (UNIX seconds), ``seconds_since_beat``, and ``alive``: whether
    it beat within the last ``stale_after`` seconds.
    """
    rows = []
    for hb in store.heartbeats():
        since = round(max(0.0, now - hb.beat), 1)
        rows.append(
            {
                "server": hb.server,
                "host": hb.host,
                "pid": hb.pid,
                "started": hb.started,
                "last_beat": hb.beat,
                "seconds_since_beat": since,
                "alive": since <= stale_after,
            }
        )
    return rows


def status(
    store: CheckpointStore, now: float, stale_after: float = STALE_AFTER
) -> list[dict[str, Any]]:
    """Each sink's checkpoint, lag (messages, seconds) and last error, by name.

    ``lag_seconds`` is how long the oldest message the sink has not taken has
    been waiting; 0 when it is up to date. ``server_alive`` says whether any
    message server beat within ``stale_after`` seconds, and ``server_last_beat``
    when the last one did (None: never).
    """
    beats = servers(store, now, stale_after)
    alive = any(b["alive"] for b in beats)
    last_beat = beats[0]["last_beat"] if beats else None
    rows = []
    for cp in store.checkpoints().values():
        count, oldest = store.backlog(cp.position)
        rows.append(
            {
                "sink": cp.sink,
                "checkpoint": cp.position.id,
                "position": list(cp.position),
                "lag_messages": count,
                "lag_seconds": round(max(0.0, now - oldest), 1) if oldest is not None else 0.0,
                "failures": cp.failures,
                "last_error": cp.last_error,
                "last_error_time": cp.last_error_time,
                "server_alive": alive,
                "server_last_beat": last_beat,
            }
        )
    return rows
