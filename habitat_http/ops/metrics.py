"""Prometheus metrics of the gateway (prometheus_client).

Counters and histograms are kept per process. Under gunicorn with several
workers, prometheus_client's multiprocess mode adds them up across workers: set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the workers start, and
call :func:`mark_process_dead` from gunicorn's ``child_exit`` hook (both done by
deploy/gunicorn.conf.py and ``habitat-http serve``). Without it (SCGI: one
process) the process's own values are exposed.

Label values are bounded: endpoint names, status codes, message types, phases,
field names from the message schema, error kinds and sink names. Never a
callsign, an IP or any other text a client chose.

Requests are counted in plain dicts and added to prometheus_client's values at
most every :data:`FLUSH_INTERVAL` seconds, by a thread of each process and before
each exposition: in multiprocess mode every value update is a locked write to a
shared file, and a request updates about fourteen of them, which cost more than
the rest of the request path. So a scrape may miss the last second of another
worker's requests, never more.
"""

from __future__ import annotations

import atexit
import bisect
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import process
from .phases import PHASES
from .record import RequestRecord

#: Phase durations, in seconds: 50 µs to 10 s.
PHASE_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: Messages per commit group or per batch.
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000)
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: Seconds between two flushes of a process's counts into prometheus_client.
FLUSH_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class SinkStatus:
    """One sink of the message server, as the metrics show it.

    Attributes:
        sink: the sink's configured name.
        lag_messages: stored messages it has not taken yet.
        lag_seconds: how long the oldest of those has waited, in seconds.
        failures: failures since its last success.
        last_success: when its checkpoint last moved, seconds since the UNIX epoch.
    """

    sink: str
    lag_messages: int
    lag_seconds: float
    failures: int
    last_success: float


@dataclass(frozen=True, slots=True)
class PipelineStatus:
    """The message server as the metrics show it.

    Attributes:
        sinks: every sink that has run.
        heartbeat_age: seconds since the message server last beat, or None when
            none ever ran on this database.
    """

    sinks: tuple[SinkStatus, ...]
    heartbeat_age: float | None


class PipelineCollector(Collector):
    """Gauges of the message server, read from the database at scrape time.

    Read at scrape time rather than pushed by the server, so a dead server shows
    as a growing heartbeat age and lag, never as stale good values.

    Args:
        read: returns the current :class:`PipelineStatus`; may raise, in which
            case the gauges are left out and ``habitat_pipeline_up`` is 0.
    """

    def __init__(self, read: Callable[[], PipelineStatus]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the gauges (prometheus_client's Collector interface)."""
        up = GaugeMetricFamily(
            "habitat_pipeline_status_up", "1 when the message server's status could be read."
        )
        try:
            status = self._read()
        except Exception:  # noqa: BLE001  a scrape must answer, showing the failure
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        gauges = {
            "lag_messages": GaugeMetricFamily(
                "habitat_sink_lag_messages",
                "Stored messages a sink has not taken.",
                labels=["sink"],
            ),
            "lag_seconds": GaugeMetricFamily(
                "habitat_sink_lag_seconds",
                "Seconds the oldest message a sink has not taken has waited.",
                labels=["sink"],
            ),
            "failures": GaugeMetricFamily(
                "habitat_sink_failures",
                "A sink's failures since its last success.",
                labels=["sink"],
            ),
            "last_success": GaugeMetricFamily(
                "habitat_sink_last_success_timestamp_seconds",
                "When a sink's checkpoint last moved (UNIX seconds).",
                labels=["sink"],
            ),
        }
        for sink in status.sinks:
            for attr, gauge in gauges.items():
                gauge.add_metric([sink.sink], float(getattr(sink, attr)))
        yield from gauges.values()
        if status.heartbeat_age is not None:
            beat = GaugeMetricFamily(
                "habitat_message_server_heartbeat_age_seconds",
                "Seconds since the message server last recorded its heartbeat.",
            )
            beat.add_metric([], status.heartbeat_age)
            yield beat


class Metrics:
    """The gateway's counters and histograms, and their exposition.

    Args:
        multiprocess_dir: prometheus_client's ``PROMETHEUS_MULTIPROC_DIR`` when
            gunicorn runs several workers, else None.
        pipeline: reads the message server's status for its gauges, or None to
            leave them out.
        known_fields: the field names that may appear as a label; any other
            (e.g. a duplicate key a client chose) is counted as ``other``.
    """

    def __init__(
        self,
        *,
        multiprocess_dir: str | None,
        pipeline: Callable[[], PipelineStatus] | None,
        known_fields: Iterable[str],
    ) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.known_fields = frozenset(known_fields)
        # A private registry: several apps in one process (tests) never clash,
        # and in multiprocess mode values go to the shared files whatever the registry.
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "habitat_requests",
            "HTTP requests answered, by endpoint and status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.messages = Counter(
            "habitat_messages",
            "Messages by type and outcome (stored, duplicate, rejected).",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "habitat_rejections",
            "Rejected messages and refused requests, by field and error kind.",
            ["field", "kind"],
            registry=self.registry,
        )
        self.phase_seconds = Histogram(
            "habitat_request_phase_seconds",
            "Time spent in each phase of a request (read, parse, validate, commit, total).",
            ["endpoint", "phase"],
            buckets=PHASE_BUCKETS,
            registry=self.registry,
        )
        self.commit_group = Histogram(
            "habitat_commit_group_size",
            "Messages committed together in the commit a request waited for.",
            buckets=SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "habitat_batch_size",
            "Messages in one POST /messages.",
            buckets=SIZE_BUCKETS,
            registry=self.registry,
        )
        self._pipeline = PipelineCollector(pipeline) if pipeline is not None else None
        # Labelled children, looked up once: labels() costs more than inc() itself.
        self._children: dict[tuple[Any, ...], Any] = {}
        self._phase_children: dict[str, dict[str, Any]] = {}  # endpoint -> phase -> child
        self._lock = threading.Lock()
        self._counts: dict[Any, float] = {}  # counter child -> increment
        self._observed: dict[Any, list[float]] = {}  # histogram child -> per bucket, sum
        self._flusher_process = 0  # the process (see ops.process) whose flusher runs
        # Histograms are flushed bucket by bucket through the child's own values,
        # prometheus_client's internals: checked here, or each observation goes
        # through observe() as it happens.
        probe = self.batch_size
        self._aggregate = all(hasattr(probe, a) for a in ("_sum", "_buckets", "_upper_bounds"))

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels) if labels else metric
        return child

    def _count(self, child: Any, amount: float = 1) -> None:
        # With self._lock held.
        self._counts[child] = self._counts.get(child, 0) + amount

    def _observe(self, child: Any, value: float) -> None:
        # With self._lock held.
        if not self._aggregate:
            child.observe(value)
            return
        pending = self._observed.get(child)
        if pending is None:
            pending = self._observed[child] = [0.0] * (len(child._upper_bounds) + 1)
        pending[bisect.bisect_left(child._upper_bounds, value)] += 1
        pending[-1] += value

    def observe(self, record: RequestRecord) -> None:
        """Count one served request (added to the exposed values within a second)."""
        if self._flusher_process != process.generation():
            self._start_flusher()
        endpoint = record.endpoint or "none"
        child = self._child
        phase_children = self._phase_children.get(endpoint)
        if phase_children is None:
            phase_children = self._phase_children[endpoint] = {
                phase: child(self.phase_seconds, endpoint, phase)
                for phase in (*PHASES, "total")
            }
        with self._lock:
            self._count(child(self.requests, endpoint, str(record.status)))
            for phase, seconds in record.phases.durations.items():
                self._observe(phase_children[phase], seconds)
            self._observe(phase_children["total"], record.phases.total())
            if record.phases.group_size is not None:
                self._observe(child(self.commit_group), record.phases.group_size)
            if endpoint == "messages" and record.messages:
                self._observe(child(self.batch_size), record.messages)
            for outcome, counts in (("stored", record.stored), ("duplicate", record.duplicates)):
                for message_type, n in counts.items():
                    self._count(child(self.messages, message_type, outcome), n)
            for rejection in record.rejections:
                field = rejection.field or "body"
                if field not in self.known_fields and field != "body":
                    field = "other"
                self._count(child(self.rejections, field, rejection.kind))
                if record.messages:  # a message was rejected, not only a request refused
                    self._count(child(self.messages, rejection.type or "unknown", "rejected"))

    def flush(self) -> None:
        """Add the counts made since the last flush to prometheus_client's values."""
        with self._lock:
            counts, self._counts = self._counts, {}
            observed, self._observed = self._observed, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        for histogram, pending in observed.items():
            histogram._sum.inc(pending[-1])
            for bucket, n in zip(histogram._buckets, pending[:-1], strict=True):
                if n:
                    bucket.inc(n)

    def _start_flusher(self) -> None:
        # Once per process: a thread does not survive gunicorn's fork of a worker.
        with self._lock:
            if self._flusher_process == process.generation():
                return
            self._flusher_process = process.generation()
        ref = weakref.ref(self)
        thread = threading.Thread(target=_flush_every, args=(ref,), daemon=True)
        thread.start()
        atexit.register(_flush_once, ref)

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (all workers' in multiprocess mode)."""
        self.flush()
        registry = CollectorRegistry(auto_describe=True)
        if self.multiprocess_dir:
            multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
                registry, path=self.multiprocess_dir
            )
        else:
            own: list[Collector] = [self.requests, self.messages, self.rejections]
            own += [self.phase_seconds, self.commit_group, self.batch_size]
            for collector in own:
                registry.register(collector)
        if self._pipeline is not None:
            registry.register(self._pipeline)
        return generate_latest(registry)


def _flush_every(ref: weakref.ref[Metrics]) -> None:
    """A process's flusher: until its Metrics is gone."""
    while True:
        time.sleep(FLUSH_INTERVAL)
        metrics = ref()
        if metrics is None:
            return
        metrics.flush()
        del metrics


def _flush_once(ref: weakref.ref[Metrics]) -> None:
    metrics = ref()
    if metrics is not None:
        metrics.flush()


def mark_process_dead(pid: int, multiprocess_dir: str | None) -> None:
    """gunicorn ``child_exit``: drop a dead worker's live-gauge files (prometheus_client)."""
    if multiprocess_dir:
        multiprocess.mark_process_dead(pid, multiprocess_dir)  # type: ignore[no-untyped-call]
