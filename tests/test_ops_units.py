"""The operations building blocks alone: phase timing, the access log line, and
metrics exposition (the gateway's use of them is tested in test_ops.py)."""

from __future__ import annotations

import json
import logging

import pytest

from habitat_http.ops import accesslog
from habitat_http.ops.metrics import Metrics, PipelineStatus, SinkStatus
from habitat_http.ops.phases import Phases
from habitat_http.ops.record import Rejection, RequestRecord


class StepClock:
    """A monotonic clock that moves by ``step`` seconds at each of its first
    ``readings`` readings, then stands still."""

    def __init__(self, step: float, readings: int = 1_000_000) -> None:
        self.now = 0.0
        self.step = step
        self.readings = readings

    def __call__(self) -> float:
        if self.readings > 0:
            self.readings -= 1
            self.now += self.step
        return self.now


def record(**kwargs: object) -> RequestRecord:
    phases = Phases(StepClock(0.5, readings=4))  # start, two ends, one total
    phases.end("read")
    phases.end("parse")
    rec = RequestRecord("POST", "/message", phases, endpoint="message", ip="192.0.2.1")
    for key, value in kwargs.items():
        setattr(rec, key, value)
    return rec


def test_phases_measure_from_one_end_to_the_next() -> None:
    phases = Phases(StepClock(0.25))  # start = 0.25
    phases.end("read")  # 0.5
    phases.skip()  # 0.75
    phases.end("commit")  # 1.0
    assert phases.durations == {"read": 0.25, "commit": 0.25}
    assert phases.total() == 1.0


def test_access_line_holds_the_rejection_sent_to_the_client() -> None:
    rec = record(
        status=400,
        callsign="M0ABC",
        messages=1,
        rejections=[Rejection("data.latitude", "data.latitude must be ...", "number_range")],
    )
    entry = accesslog.line(rec, 1_700_000_000.0)
    assert entry["status"] == 400 and entry["callsign"] == "M0ABC"
    assert entry["field"] == "data.latitude" and entry["error"].startswith("data.latitude")
    assert entry["phases"]["read"] == 0.5 and entry["phases"]["parse"] == 0.5
    assert entry["phases"]["total"] == 1.5


def test_access_logger_can_be_turned_off(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger(accesslog.LOGGER_NAME)
    caplog.set_level(logging.INFO, logger=accesslog.LOGGER_NAME)
    accesslog.write(logger, record(status=200), 0.0)
    assert [json.loads(r.getMessage())["status"] for r in caplog.records] == [200]
    logger.setLevel(logging.WARNING)  # what an operator's logging config does
    accesslog.write(logger, record(status=201), 0.0)
    assert len(caplog.records) == 1


def test_metrics_count_and_bound_their_labels() -> None:
    metrics = Metrics(
        multiprocess_dir=None,
        pipeline=lambda: PipelineStatus((SinkStatus("archive", 3, 1.5, 0, 1.0e9),), 2.0),
        known_fields={"data.latitude"},
    )
    metrics.observe(
        record(
            status=400,
            messages=2,
            rejections=[
                Rejection("data.latitude", "e", "number_range", "LISTENER_TELEM"),
                Rejection("my-own-key", "e", "duplicate_key"),  # a client's text
            ],
        )
    )
    text = metrics.exposition().decode()
    assert 'habitat_requests_total{endpoint="message",status="400"} 1.0' in text
    assert 'habitat_rejections_total{field="data.latitude",kind="number_range"} 1.0' in text
    assert 'habitat_rejections_total{field="other",kind="duplicate_key"} 1.0' in text
    assert "my-own-key" not in text
    assert 'habitat_messages_total{outcome="rejected",type="LISTENER_TELEM"} 1.0' in text
    assert 'habitat_sink_lag_messages{sink="archive"} 3.0' in text
    assert "habitat_message_server_heartbeat_age_seconds 2.0" in text
    assert 'habitat_request_phase_seconds_count{endpoint="message",phase="read"} 1.0' in text


def test_a_failing_status_read_shows_as_down() -> None:
    def broken() -> PipelineStatus:
        raise OSError("database is gone")

    metrics = Metrics(multiprocess_dir=None, pipeline=broken, known_fields=())
    text = metrics.exposition().decode()
    assert "habitat_pipeline_status_up 0.0" in text
    assert "habitat_sink_lag_messages" not in text


def test_aggregated_counts_expose_as_observing_each_would() -> None:
    """Counts kept per process and flushed give the same exposition as prometheus_client
    observing each value (the path taken if its internals ever change)."""
    texts = []
    for aggregate in (True, False):
        metrics = Metrics(multiprocess_dir=None, pipeline=None, known_fields={"callsign"})
        metrics._aggregate = aggregate
        for status, group in ((200, 1), (200, 7), (400, None)):
            rec = record(status=status, messages=1)
            rec.phases.group_size = group
            if status == 400:
                rec.rejections.append(Rejection("callsign", "e", "callsign_pattern", None))
            metrics.observe(rec)
        text = metrics.exposition().decode()
        # The *_created samples hold each series' creation time: they differ.
        texts.append("\n".join(x for x in text.splitlines() if "_created" not in x))
    assert texts[0] == texts[1]
    assert 'habitat_commit_group_size_bucket{le="8.0"} 2.0' in texts[0]
    read = 'habitat_request_phase_seconds_bucket{endpoint="message",le="0.5",phase="read"} 3.0'
    assert read in texts[0]


@pytest.mark.parametrize(
    "callsign, error",
    [("M0ABC", None), ('a"b\\c', "data.name must be \u00e9 \U0001f4e1 <x>."), (None, "x\ny")],
)
def test_the_written_line_is_the_json_of_the_entry(callsign: str | None, error: str | None) -> None:
    rec = record(status=400 if error else 200, callsign=callsign, messages=2, ids=[3, 4])
    rec.phases.group_size = 2
    if error:
        rec.rejections.append(Rejection("data.name", error, "string_too_long"))
    assert json.loads(accesslog.text(rec, 1_700_000_000.25)) == accesslog.line(
        rec, 1_700_000_000.25
    )
    rec.failure = "The message store is unavailable."
    rec.rejections.clear()
    written = json.loads(accesslog.text(rec, 1.0))
    assert written == accesslog.line(rec, 1.0) and written["error"] == rec.failure


def test_buffered_lines_are_written_together_when_full_or_flushed() -> None:
    import io

    stream = io.StringIO()
    handler = accesslog.BufferedLines(stream)
    for n in range(accesslog.BUFFER_LINES - 1):
        handler.add(f'{{"n":{n}}}')
    assert stream.getvalue() == ""  # nothing written line by line
    handler.add('{"n":"last"}')  # the buffer is full: all of it at once
    lines = stream.getvalue().splitlines()
    assert len(lines) == accesslog.BUFFER_LINES and lines[-1] == '{"n":"last"}'
    handler.add('{"n":"more"}')
    handler.flush()  # what the flusher thread and logging's shutdown do
    assert stream.getvalue().splitlines()[-1] == '{"n":"more"}'
