"""Operations of the gateway (issue 12): the JSON access line, Prometheus metrics
(in-process, across real gunicorn workers, and over SCGI), /health and /ready with
the database up, locked and missing, and 504 for a commit that missed its deadline."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.test import Client

from habitat_http import create_app
from habitat_http.config import Config
from habitat_http.ops.accesslog import LOGGER_NAME
from habitat_http.store import START, Heartbeat

from .conftest import CLIENT_IP, cli_messages, make_gateway, telem
from .test_deadline import hold_lock
from .test_scgi import launch


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text; 0 when it is absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? (\S+)$"
    for match in re.finditer(pattern, text, re.MULTILINE):
        found = ",".join(sorted((match.group(1) or "").split(","))) if match.group(1) else ""
        if found == want:
            return float(match.group(2))
    return 0.0


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """The access log lines written during the test, decoded."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(record.getMessage()))

    handler = Collect()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


# --- the access log line ------------------------------------------------------------


def test_the_access_line_of_a_200(tmp_path: Path, access: list[dict[str, Any]]) -> None:
    gw = make_gateway(tmp_path)
    answer = gw.post(telem(callsign="m0abc"))
    assert answer.status_code == 200
    [line] = access
    assert line["method"] == "POST" and line["path"] == "/message" and line["status"] == 200
    assert line["ip"] == CLIENT_IP and line["callsign"] == "m0abc" and line["messages"] == 1
    assert line["ids"] == [answer.json["id"]] and line["group"] == 1
    assert set(line["phases"]) == {"read", "parse", "validate", "commit", "total"}
    assert all(v >= 0 for v in line["phases"].values())
    assert line["phases"]["total"] >= line["phases"]["commit"]
    assert "field" not in line and "error" not in line


def test_the_access_line_of_a_400_names_the_field_and_error(
    tmp_path: Path, access: list[dict[str, Any]]
) -> None:
    gw = make_gateway(tmp_path)
    message = telem()
    message["data"]["frequency"] = -5
    answer = gw.post(message)
    assert answer.status_code == 400
    [line] = access
    assert line["status"] == 400 and line["ids"] == []
    assert line["field"] == answer.json["field"] == "data.frequency"
    assert line["error"] == answer.json["error"]
    assert "commit" not in line["phases"]


def test_the_access_line_of_a_503_says_why(tmp_path: Path, access: list[dict[str, Any]]) -> None:
    # A database in a directory that does not exist cannot be opened: 503.
    config = Config(db_url=f"sqlite:///{tmp_path}/missing/habitat.db")
    app = create_app(config)
    answer = Client(app).post("/message", json=telem())
    assert answer.status_code == 503
    [line] = access
    assert line["status"] == 503 and line["error"] == answer.json["error"]
    assert line["callsign"] == "M0ABC"


def test_a_batch_line_counts_its_messages(tmp_path: Path, access: list[dict[str, Any]]) -> None:
    gw = make_gateway(tmp_path)
    bad = {**telem(callsign="M1"), "time_created": "soon"}
    answer = gw.client.post("/messages", json=[telem(callsign="M0"), bad, telem(callsign="M2")])
    assert answer.status_code == 200
    [line] = access
    assert line["messages"] == 3 and len(line["ids"]) == 2 and line["group"] == 2
    assert line["field"] == "time_created" and line["rejected"] == 1


def test_the_access_log_can_be_turned_off(tmp_path: Path, access: list[dict[str, Any]]) -> None:
    gw = make_gateway(tmp_path, Config(access_log=False))
    assert gw.post(telem()).status_code == 200
    assert access == []


# --- metrics in one process ---------------------------------------------------------


def test_metrics_count_requests_messages_and_rejections(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    assert gw.post(telem()).status_code == 200
    assert gw.post(telem()).status_code == 200  # the same message again: a duplicate
    assert gw.post({**telem(), "callsign": "N0CALL"}).status_code == 400
    assert gw.client.post("/nowhere").status_code == 404
    assert gw.client.post("/messages", json=[telem(callsign="B1")] * 3).status_code == 200
    text = gw.client.get("/metrics").get_data(as_text=True)
    assert metric(text, "habitat_requests_total", endpoint="message", status="200") == 2
    assert metric(text, "habitat_requests_total", endpoint="message", status="400") == 1
    assert metric(text, "habitat_requests_total", endpoint="none", status="404") == 1
    assert metric(text, "habitat_messages_total", type="RECEIVED_TELEM", outcome="stored") == 2
    assert metric(text, "habitat_messages_total", type="RECEIVED_TELEM", outcome="duplicate") == 3
    assert metric(text, "habitat_messages_total", type="RECEIVED_TELEM", outcome="rejected") == 1
    assert metric(text, "habitat_rejections_total", field="callsign", kind="callsign_blocked") == 1
    assert metric(text, "habitat_rejections_total", field="body", kind="not_found") == 1
    assert metric(text, "habitat_batch_size_count") == 1
    assert metric(text, "habitat_batch_size_sum") == 3
    assert metric(text, "habitat_commit_group_size_count") == 3
    for phase in ("read", "parse", "validate", "commit", "total"):
        count = metric(text, "habitat_request_phase_seconds_count", endpoint="message", phase=phase)
        assert count == (3 if phase in ("read", "parse", "validate", "total") else 2), phase
    # Never a callsign or an address as a label.
    assert "M0ABC" not in text and "N0CALL" not in text and CLIENT_IP not in text


def test_metrics_off_is_a_404_and_counts_nothing(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, Config(metrics=False))
    assert gw.post(telem()).status_code == 200
    answer = gw.client.get("/metrics")
    assert answer.status_code == 404 and answer.json["ok"] is False


def test_message_server_gauges_show_lag_and_a_stale_heartbeat(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    for n in range(3):
        assert gw.post(telem(callsign=f"M{n}")).status_code == 200
    gw.store.save_checkpoint("archive", gw.store.deliverable(START, 1)[0][0], gw.clock())
    gw.store.beat(Heartbeat("host:1234", "host", 1234, gw.clock() - 100, gw.clock() - 42))
    text = gw.client.get("/metrics").get_data(as_text=True)
    assert metric(text, "habitat_pipeline_status_up") == 1
    assert metric(text, "habitat_sink_lag_messages", sink="archive") == 2
    assert metric(text, "habitat_sink_failures", sink="archive") == 0
    assert metric(text, "habitat_message_server_heartbeat_age_seconds") == 42


# --- /health and /ready -----------------------------------------------------------


def test_health_touches_no_database(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, Config(db_url=f"sqlite:///{tmp_path}/none/h.db"))
    answer = gw.client.get("/health")
    assert answer.status_code == 200 and answer.json["ok"] is True
    assert not (tmp_path / "habitat.db").exists()


def test_ready_with_the_database_up_missing_and_locked(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, Config(ready_timeout=0.5))
    missing = gw.client.get("/ready")
    assert missing.status_code == 503 and missing.headers["Retry-After"]
    assert "no habitat database" in missing.json["error"]
    assert not gw.db_path.exists()  # a readiness probe creates nothing
    assert gw.post(telem()).status_code == 200
    gw.store.close()  # the gateway's own connection; it reopens when next used
    for _ in range(3):
        assert gw.client.get("/ready").status_code == 200
    # Another process takes the database for itself, which it can only do when no
    # probe left a connection open; then readers cannot read.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time;"
            " c = sqlite3.connect(sys.argv[1], timeout=5, isolation_level=None);"
            " c.execute('PRAGMA locking_mode=EXCLUSIVE'); c.execute('BEGIN EXCLUSIVE');"
            " c.execute('SELECT count(*) FROM messages').fetchone();"
            " print('locked', flush=True); time.sleep(30)",
            str(gw.db_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        locked = gw.client.get("/ready")
        waited = time.monotonic() - start
        assert locked.status_code == 503 and "not ready" in locked.json["error"]
        assert waited < 0.5 + 2.0  # the ready deadline, not HABITAT_DB_TIMEOUT
        assert gw.client.get("/health").status_code == 200
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    assert gw.client.get("/ready").status_code == 200


# --- 504 under a held lock -------------------------------------------------------------


def test_a_commit_past_its_deadline_is_a_504_and_never_stored_later(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, None)
    gw.store.timeout = 0.5
    assert gw.post(telem(callsign="FIRST")).status_code == 200
    holder = hold_lock(gw.db_path, 2.0)
    try:
        late = gw.post(telem(callsign="LATE"))
        assert late.status_code == 504 and late.headers["Retry-After"]
        assert late.json["ok"] is False and "did not commit in time" in late.json["error"]
    finally:
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    # The lock is gone: nothing of the 504 was committed meanwhile or afterwards.
    time.sleep(0.2)
    assert [r["callsign"] for r in cli_messages(f"sqlite:///{gw.db_path}")] == ["FIRST"]
    retry = gw.post(telem(callsign="LATE"))
    assert retry.status_code == 200 and retry.json["duplicate"] is False
    assert gw.post(telem(callsign="LATE")).json["duplicate"] is True


# --- real servers ---------------------------------------------------------------------


@pytest.mark.slow
def test_metrics_of_two_gunicorn_workers_add_up(tmp_path: Path, gunicorn: Any) -> None:
    metrics_dir = tmp_path / "metrics"
    server = gunicorn(
        {
            "HABITAT_DB": f"sqlite:///{tmp_path}/habitat.db",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        },
        "-c",
        "deploy/gunicorn.conf.py",
        "--workers",
        "2",
    )
    posts = 60
    for n in range(posts):
        # A new connection each time, so that both workers take some.
        answer = requests.post(
            server.url + "/message",
            json=telem(callsign=f"W{n}"),
            headers={"Connection": "close"},
            timeout=10,
        )
        assert answer.status_code == 200
    bad = requests.post(server.url + "/message", json={**telem(), "type": "TELEM"}, timeout=10)
    assert bad.status_code == 400
    # Each worker adds its counts within FLUSH_INTERVAL (1 s); poll up to 10 s.
    deadline = time.monotonic() + 10
    while True:
        text = requests.get(server.url + "/metrics", timeout=10).text
        ok = metric(text, "habitat_requests_total", endpoint="message", status="200")
        if ok == posts or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    workers = {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}
    assert len(workers) == 2, sorted(workers)  # both workers counted something
    assert ok == posts
    assert metric(text, "habitat_messages_total", type="RECEIVED_TELEM", outcome="stored") == posts
    assert metric(text, "habitat_rejections_total", field="type", kind="type_parser_only") == 1
    commits = metric(
        text, "habitat_request_phase_seconds_count", endpoint="message", phase="commit"
    )
    assert commits == posts
    # One JSON access line per request on stdout, none from gunicorn (read once
    # the workers have exited: they write their lines in groups).
    server.stop()
    lines = [json.loads(x) for x in server.log.read_text().splitlines() if x.startswith("{")]
    assert sum(x["path"] == "/message" for x in lines) == posts + 1
    assert not re.search(r'"POST /message HTTP', server.log.read_text())


def test_metrics_and_the_access_line_over_scgi(tmp_path: Path) -> None:
    server = launch(tmp_path)
    try:
        c = server.client
        assert c.post_json("/message", telem()).status == 200
        assert c.post_json("/message", {**telem(), "callsign": "N0CALL"}).status == 400
        answer = c.request("GET", "/metrics")
        assert answer.status == 200
        text = answer.body.decode()
        assert metric(text, "habitat_requests_total", endpoint="message", status="200") == 1
        blocked = metric(
            text, "habitat_rejections_total", field="callsign", kind="callsign_blocked"
        )
        assert blocked == 1
        assert c.request("GET", "/ready").status == 200
    finally:
        server.stop()
    lines = [json.loads(x) for x in server.log.read_text().splitlines() if x.startswith("{")]
    statuses = [(x["path"], x["status"]) for x in lines]
    assert ("/message", 200) in statuses and ("/message", 400) in statuses
    [rejected] = [x for x in lines if x["status"] == 400]
    assert rejected["field"] == "callsign" and rejected["ip"] == "192.0.2.44"


# --- status exit codes ---------------------------------------------------------------


def test_status_exits_non_zero_when_the_server_is_down_or_a_sink_fails(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from habitat_http.cli import main

    gw = make_gateway(tmp_path)
    assert gw.post(telem()).status_code == 200
    db = ["status", "--db", f"sqlite:///{gw.db_path}"]

    def run(*extra: str) -> Any:
        return CliRunner().invoke(main, [*db, *extra])

    never = run()
    assert never.exit_code == 1 and "no message server is alive" in never.output
    now = time.time()
    gw.store.beat(Heartbeat("h:1", "h", 1, now - 60, now))
    gw.store.save_checkpoint("archive", START, now)
    healthy = run()
    assert healthy.exit_code == 0, healthy.output
    assert "alive" in healthy.output and "unhealthy" not in healthy.output
    gw.store.record_failure("archive", "OSError: disk full", now)
    failing = run("--json")
    assert failing.exit_code == 1 and "sink archive is failing" in failing.output
    gw.store.save_checkpoint("archive", START, now)  # a success clears the failure
    gw.store.beat(Heartbeat("h:1", "h", 1, now - 60, now - 30))
    stale = run()
    assert stale.exit_code == 1 and "DOWN" in stale.output
