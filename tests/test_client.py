"""The uploader client's parts without a gateway: backoff, the queues, the command's parsing."""

from __future__ import annotations

import logging
import subprocess
import sys
from email.utils import formatdate
from pathlib import Path
from typing import Any

import click
import pytest

from habitat_http.client import Backoff, MemoryQueue, SpoolLocked, SQLiteSpool, Uploader
from habitat_http.client.backoff import parse_retry_after
from habitat_http.client.command import parse_listener_info, parse_position, sentence_from_line

from .conftest import ROOT, free_port


def test_backoff_doubles_from_1s_to_300s_with_full_jitter() -> None:
    top = Backoff(random=lambda: 0.999999)
    ceilings = [round(top.next_delay()) for _ in range(12)]
    assert ceilings == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert Backoff(random=lambda: 0.0).next_delay() == 0.0
    half = Backoff(random=lambda: 0.5)
    assert [half.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]
    half.reset()
    assert half.next_delay() == 0.5


def test_backoff_never_sooner_than_retry_after_and_caps_it() -> None:
    backoff = Backoff(random=lambda: 0.0)
    assert backoff.next_delay(retry_after=7) == 7
    assert backoff.next_delay(retry_after=86_400) == 300  # a wrong header cannot stall for days
    assert Backoff(random=lambda: 0.999).next_delay(retry_after=0.1) > 0.99


def test_retry_after_seconds_or_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == 30
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def _queues(tmp_path: Path, bound: int) -> list[Any]:
    return [MemoryQueue(bound), SQLiteSpool(tmp_path / "spool.db", bound)]


def test_queues_keep_fifo_order_and_forget_only_what_is_removed(tmp_path: Path) -> None:
    for queue in _queues(tmp_path, 100):
        for i in range(5):
            queue.put({"n": i})
        first = queue.peek(3)
        assert [q.message["n"] for q in first] == [0, 1, 2]
        assert [q.message["n"] for q in queue.peek(3)] == [0, 1, 2]  # peek keeps them
        queue.remove([first[0].seq, first[2].seq, 10_000])
        assert [q.message["n"] for q in queue.peek(10)] == [1, 3, 4]
        assert len(queue) == 3
        queue.close()


def test_a_full_queue_drops_the_oldest_counts_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for queue in _queues(tmp_path, 10):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            for i in range(15):
                queue.put({"n": i})
        assert [q.message["n"] for q in queue.peek(100)] == list(range(5, 15))
        assert len(queue) == 10
        assert queue.dropped == 5
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings and "full (10 messages): dropped the oldest" in warnings[0]
        assert len(warnings) == 1  # one line for a run of drops, not one per message
        queue.close()


def test_the_spool_survives_reopening(tmp_path: Path) -> None:
    spool = SQLiteSpool(tmp_path / "spool.db")
    spool.put({"sentence": "$$A,1*00"})
    spool.close()
    again = SQLiteSpool(tmp_path / "spool.db")
    assert [q.message for q in again.peek(10)] == [{"sentence": "$$A,1*00"}]
    assert len(again) == 1
    again.close()


def test_two_users_of_one_spool_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = SQLiteSpool(path)
    with pytest.raises(SpoolLocked, match="in use"):
        SQLiteSpool(path)
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from habitat_http.client import SQLiteSpool; SQLiteSpool({str(path)!r})",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert other.returncode != 0 and "SpoolLocked" in other.stderr
    command = subprocess.run(
        [
            sys.executable,
            "-m",
            "habitat_http",
            "upload",
            "--url",
            "http://127.0.0.1:9",
            "--callsign",
            "M0ABC",
            "--spool",
            str(path),
            "/dev/null",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert command.returncode == 1 and "is in use by another uploader" in command.stderr
    spool.close()
    SQLiteSpool(path).close()  # free again once closed


def test_messages_wait_in_the_spool_while_the_gateway_is_unreachable(tmp_path: Path) -> None:
    uploader = Uploader(
        f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "M0ABC",
        spool=tmp_path / "spool.db",
        max_spool_messages=10,
        batch_interval=0,
    )
    for i in range(15):
        uploader.received_telem(f"$$TEST,{i}*00", frequency_hz=434_075_000, time_created=1000 + i)
    assert uploader.close(timeout=0) is False
    stats = uploader.stats()
    assert (stats.queued, stats.dropped, stats.waiting, stats.stored) == (15, 5, 10, 0)
    spool = SQLiteSpool(tmp_path / "spool.db")
    kept = [q.message for q in spool.peek(100)]
    spool.close()
    assert [m["time_created"] for m in kept] == list(range(1005, 1015))
    assert kept[0]["data"]["frequency"] == 434_075_000
    assert len({m["message_id"] for m in kept}) == 10
    assert all("time_uploaded" not in m for m in kept)  # set at each attempt, not stored


def test_uploader_refuses_bad_settings_and_use_after_close() -> None:
    with pytest.raises(ValueError, match="http"):
        Uploader("ftp://example.org", "M0ABC")
    with pytest.raises(ValueError, match="max_batch"):
        Uploader("http://127.0.0.1:9", "M0ABC", max_batch=1001)
    uploader = Uploader("http://127.0.0.1:9", "M0ABC")
    assert uploader.close() is True
    with pytest.raises(RuntimeError, match="closed"):
        uploader.received_telem(b"$$A*00")


def test_command_parsing() -> None:
    assert parse_listener_info(('name="Test station" radio=FT-817', "antenna=yagi")) == {
        "name": "Test station",
        "radio": "FT-817",
        "antenna": "yagi",
    }
    with pytest.raises(click.BadParameter, match="KEY=VALUE"):
        parse_listener_info(("colour=blue",))
    assert parse_position("51.5,-0.12,35") == (51.5, -0.12, 35.0)
    with pytest.raises(click.BadParameter, match="LAT,LON,ALT"):
        parse_position("51.5,-0.12")
    assert sentence_from_line(b"$$A,1*00\r\n") == b"$$A,1*00"
    assert sentence_from_line(b"$$A,1*00 \n") == b"$$A,1*00 "
    assert sentence_from_line(b"$$A,1*00") == b"$$A,1*00"
