"""The whole pipeline with real processes: gunicorn, the message server (killed and
restarted), and ``habitat-http serve``, on real telemetry."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests

from habitat_http.archive.rules import estimate_time_created
from habitat_http.messages import LISTENER_INFO, LISTENER_TELEM, RECEIVED_TELEM, Message
from habitat_http.store.sqlite import SQLiteStore

from .conftest import ROOT, cli_messages, free_port

pytestmark = pytest.mark.slow


def cli(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "habitat_http", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def status(*args: str) -> str:
    """What ``habitat-http status`` prints, whatever its exit status: it exits 1
    while no message server is alive or a sink fails (and says so on stderr)."""
    result = subprocess.run(
        [sys.executable, "-m", "habitat_http", "status", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode in (0, 1), result.stderr
    assert (result.returncode == 1) == ("unhealthy:" in result.stderr), result.stderr
    return result.stdout


def archive(db_url: str, kind: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in cli("archive", kind, "--db", db_url).splitlines()]


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def lag(db_url: str) -> int:
    rows = [json.loads(line) for line in status("--json", "--db", db_url).splitlines()]
    return sum(r["lag_messages"] for r in rows) if rows else -1


def start_server(db_url: str, tmp_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"server-{time.monotonic_ns()}.log").open("wb")
    with log:
        return subprocess.Popen(
            [sys.executable, "-m", "habitat_http", "server", "--db", db_url, *extra],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def real_messages(sentences: list[dict[str, Any]], count: int) -> list[Message]:
    """RECEIVED_TELEM from every real receiver of the first ``count`` flight sentences,
    with LISTENER_INFO and LISTENER_TELEM from those listeners now and then."""
    out: list[Message] = []
    t = 1_400_000_000
    for n, s in enumerate(x for x in sentences if x["receivers"]):
        if n == count:
            break
        raw = base64.b64encode(s["sentence"].encode()).decode()
        for k, callsign in enumerate(s["receivers"]):
            cs = callsign.upper()
            if (n + k) % 7 == 0:
                out.append(
                    Message(
                        cs, LISTENER_INFO, t - 3, t, {"name": f"{cs} v{n // 50}"}, "192.0.2.1", t
                    )
                )
            if (n + k) % 5 == 0:
                out.append(
                    Message(
                        cs,
                        LISTENER_TELEM,
                        t - 2,
                        t,
                        {
                            "latitude": 50 + n / 1000,
                            "longitude": -1.5,
                            "altitude": 40,
                            "time": {"hour": 12, "minute": n % 60, "second": k % 60},
                        },
                        "192.0.2.1",
                        t,
                    )
                )
            out.append(
                Message(cs, RECEIVED_TELEM, t - (k % 4), t + 1, {"string": raw}, "192.0.2.1", t + 1)
            )
        t += 5
    return out


def test_five_listeners_post_one_string_concurrently(tmp_path: Path, gunicorn: Any) -> None:
    db = f"sqlite:///{tmp_path}/habitat.db"
    gw = gunicorn(
        {"HABITAT_DB": db}, "--workers", "2", "--worker-class", "gthread", "--threads", "4"
    )
    raw = base64.b64encode(b"$$ALMA-2,56,11:36:09,51.700771,4.663065,23,6,30,2933,08,UP*DC93")
    now = int(time.time())
    delays = {"M0AAA": 1, "M0BBB": 2, "M0CCC": 3, "M0DDD": 2, "M0EEE": 40}
    barrier = threading.Barrier(5)
    answers: dict[str, int] = {}

    def listener(callsign: str) -> None:
        body = {
            "callsign": callsign,
            "type": "RECEIVED_TELEM",
            "time_created": now - 100,
            "time_uploaded": now - 100 + delays[callsign],
            "data": {"string": raw.decode()},
        }
        barrier.wait()
        r = requests.post(gw.url + "/message", json=body, timeout=10)
        assert r.status_code == 200
        answers[callsign] = r.json()["id"]

    threads = [threading.Thread(target=listener, args=(cs,)) for cs in delays]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(answers) == 5
    server = start_server(db, tmp_path)
    try:
        wait_until(lambda: lag(db) == 0)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0
    [doc] = archive(db, "payload_telemetry")
    assert set(doc["receivers"]) == set(delays)
    stored = {
        m["callsign"]: m["time_created"]
        for m in cli_messages(db)
        if m["type"] == "RECEIVED_TELEM"  # the parser adds a TELEM
    }
    assert {cs: r["time_created"] for cs, r in doc["receivers"].items()} == stored
    assert doc["estimated_time_created"] == estimate_time_created(list(stored.values()))
    # M0EEE uploaded 40 s after hearing it: its corrected time is an outlier.
    assert doc["estimated_time_created"] != round(sum(stored.values()) / 5)


def test_kill_9_and_restart_gives_the_same_archive(
    tmp_path: Path, sentences: list[dict[str, Any]]
) -> None:
    messages = real_messages(sentences, 1500)
    source = SQLiteStore(str(tmp_path / "source.db"))
    for i in range(0, len(messages), 1000):
        source.put_many(messages[i : i + 1000])
    source.close()
    urls = {}
    for name in ("calm", "killed"):  # two identical copies of the same messages
        with (
            closing(sqlite3.connect(tmp_path / "source.db")) as src,
            closing(sqlite3.connect(tmp_path / f"{name}.db")) as dst,
        ):
            src.backup(dst)
        urls[name] = f"sqlite:///{tmp_path}/{name}.db"
    config = tmp_path / "server.toml"
    config.write_text('batch_size = 40\n[sinks.archive]\nuse = "archive"\n')

    calm = start_server(urls["calm"], tmp_path, "--config", str(config))
    wait_until(lambda: lag(urls["calm"]) == 0)
    calm.send_signal(signal.SIGTERM)
    assert calm.wait(10) == 0

    db_path = tmp_path / "killed.db"
    kills = 0
    while True:
        victim = start_server(urls["killed"], tmp_path, "--config", str(config))
        if kills < 2:
            target = len(messages) * (kills + 1) // 3

            def progress() -> int:
                with closing(sqlite3.connect(db_path, timeout=10)) as conn:
                    row = conn.execute("SELECT max(last_id) FROM sink_checkpoints").fetchone()
                    return int(row[0] or 0)

            wait_until(lambda target=target: progress() >= target)  # type: ignore[misc]
            victim.send_signal(signal.SIGKILL)  # in the middle of a batch, most likely
            victim.wait(10)
            kills += 1
            assert 0 < progress() < len(messages)
            continue
        wait_until(lambda: lag(urls["killed"]) == 0)
        victim.send_signal(signal.SIGTERM)
        assert victim.wait(10) == 0
        break

    for kind in ("payload_telemetry", "listener_information", "listener_telemetry"):
        assert archive(urls["killed"], kind) == archive(urls["calm"], kind), kind
    payloads = archive(urls["calm"], "payload_telemetry")
    assert len(payloads) == 1500
    assert max(len(p["receivers"]) for p in payloads) > 5


def test_serve_runs_the_whole_pipeline(tmp_path: Path, sentences: list[dict[str, Any]]) -> None:
    db = f"sqlite:///{tmp_path}/habitat.db"
    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "habitat_http",
                "serve",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
            ],
            cwd=ROOT,
            env={**os.environ, "HABITAT_DB": db},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), timeout=30)
        sample = [s for s in sentences if len(s["receivers"]) > 1][:60]
        session = requests.Session()
        now = int(time.time())
        for s in sample:
            for callsign in s["receivers"]:
                r = session.post(
                    url + "/message",
                    timeout=10,
                    json={
                        "callsign": callsign,
                        "type": "RECEIVED_TELEM",
                        "time_created": now - 1,
                        "time_uploaded": now,
                        "data": {"string": base64.b64encode(s["sentence"].encode()).decode()},
                    },
                )
                assert r.status_code == 200
        expected = {
            base64.b64encode(s["sentence"].encode()).decode(): {c.upper() for c in s["receivers"]}
            for s in sample
        }

        def merged() -> bool:
            docs = archive(db, "payload_telemetry")
            return {d["data"]["_raw"]: set(d["receivers"]) for d in docs} == expected

        wait_until(merged, timeout=30)
        children = subprocess.run(
            ["pgrep", "-f", "habitat_http server"], capture_output=True, text=True
        ).stdout.split()
        assert children  # the supervised message server is running
    finally:
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(40)
    assert code == 0
    time.sleep(0.5)
    assert (
        subprocess.run(
            ["pgrep", "-f", f"habitat_http server --db {db}"], capture_output=True
        ).returncode
        == 1
    )  # stopped with it
    assert "restarting" not in (tmp_path / "serve.log").read_text()


def _answers(url: str) -> bool:
    try:
        return requests.get(url + "/", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def test_serve_leaves_no_orphan_when_its_master_is_killed(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/habitat.db"
    port = free_port()
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "habitat_http",
            "serve",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=ROOT,
        env={**os.environ, "HABITAT_DB": db},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_until(lambda: _answers(f"http://127.0.0.1:{port}"), timeout=30)

    def children() -> list[str]:
        out = subprocess.run(
            ["pgrep", "-f", "habitat_http server"], capture_output=True, text=True
        ).stdout.split()
        return [
            pid
            for pid in out
            if Path(f"/proc/{pid}/environ").exists()
            and f"HABITAT_DB={db}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
        ]

    wait_until(lambda: bool(children()), timeout=20)
    [child] = children()
    assert "--db" not in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace")
    serve.send_signal(signal.SIGKILL)  # the master dies without cleaning up
    serve.wait(10)
    wait_until(
        lambda: (
            not Path(f"/proc/{child}").exists()
            or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
        ),
        timeout=15,
    )
    os.killpg(serve.pid, signal.SIGKILL)  # the gunicorn worker, orphaned too by design


def test_status_says_when_the_message_server_was_last_alive(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/habitat.db"
    server = start_server(db, tmp_path)
    try:

        def shown() -> str:
            try:
                return cli("status", "--db", db)  # exit 0 only with a live server
            except subprocess.CalledProcessError:  # not created yet, or not alive yet
                return ""

        wait_until(lambda: "alive" in shown(), timeout=30)
        assert "DOWN" not in cli("status", "--db", db)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    wait_until(lambda: "DOWN" in status("--db", db, "--stale-after", "1"), timeout=10)
    out = status("--db", db, "--stale-after", "1")
    assert "last alive" in out
    rows = [json.loads(line) for line in status("--db", db, "--json").splitlines()]
    assert [r["sink"] for r in rows] == ["archive", "parser"]  # the default sinks
    assert all(r["server_last_beat"] > 0 for r in rows)
