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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

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

from .record import RequestRecord

#: Phase durations, in seconds: 50 µs to 10 s.
PHASE_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: Messages per commit group or per batch.
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000)
CONTENT_TYPE = CONTENT_TYPE_LATEST


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

    def observe(self, record: RequestRecord) -> None:
        """Count one served request."""
        endpoint = record.endpoint or "none"
        self.requests.labels(endpoint, str(record.status)).inc()
        for phase, seconds in record.phases.durations.items():
            self.phase_seconds.labels(endpoint, phase).observe(seconds)
        self.phase_seconds.labels(endpoint, "total").observe(record.phases.total())
        if record.phases.group_size is not None:
            self.commit_group.observe(record.phases.group_size)
        if endpoint == "messages" and record.messages:
            self.batch_size.observe(record.messages)
        for outcome, counts in (("stored", record.stored), ("duplicate", record.duplicates)):
            for message_type, n in counts.items():
                self.messages.labels(message_type, outcome).inc(n)
        for rejection in record.rejections:
            field = rejection.field or "body"
            if field not in self.known_fields and field != "body":
                field = "other"
            self.rejections.labels(field, rejection.kind).inc()
            if record.messages:  # a message was rejected, not only a request refused
                self.messages.labels(rejection.type or "unknown", "rejected").inc()

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (all workers' in multiprocess mode)."""
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


def mark_process_dead(pid: int, multiprocess_dir: str | None) -> None:
    """gunicorn ``child_exit``: drop a dead worker's live-gauge files (prometheus_client)."""
    if multiprocess_dir:
        multiprocess.mark_process_dead(pid, multiprocess_dir)  # type: ignore[no-untyped-call]
