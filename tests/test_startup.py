"""Start-up: a database that is locked or down when a gateway starts only delays
its writes (503 until it is back); what waiting cannot fix stops it at once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests

from habitat_http.store.sqlite import SQLiteStore

from .conftest import ROOT, Server, free_port, start_gunicorn, telem
from .test_deadline import hold_lock
from .test_pipeline import wait_until
from .test_postgres_e2e import PrivatePostgres, private_pg  # noqa: F401  fixture
from .test_scgi import launch

pytestmark = pytest.mark.slow

DEPLOY = ("-c", "deploy/gunicorn.conf.py", "--workers", "2")


@pytest.fixture
def booting_gunicorn(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Server]]:
    """Start gunicorn with the deploy config; ready once it answers GET /, however
    long its workers take to boot (each waits HABITAT_DB_TIMEOUT for the database)."""
    servers: list[Server] = []

    def start(env: dict[str, str]) -> Server:
        port = free_port()
        log = tmp_path / f"gunicorn-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", *DEPLOY, "--bind", f"127.0.0.1:{port}"],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Server(f"http://127.0.0.1:{port}", process, log)
        servers.append(server)

        def ready() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return requests.get(server.url + "/", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, timeout=30)
        return server

    yield start
    for server in servers:
        server.stop()


def post(url: str) -> int:
    return requests.post(url + "/message", json=telem(), timeout=10).status_code


def test_gunicorn_boots_on_a_locked_sqlite_file_and_answers_503_until_it_is_free(
    tmp_path: Path, booting_gunicorn: Any
) -> None:
    path = tmp_path / "habitat.db"
    SQLiteStore(str(path)).initialize()
    holder = hold_lock(path, 6)
    try:
        gw = booting_gunicorn({"HABITAT_DB": f"sqlite:///{path}", "HABITAT_DB_TIMEOUT": "1"})
        answer = requests.post(gw.url + "/message", json=telem(), timeout=10)
        assert answer.status_code == 503 and answer.headers["Retry-After"]
    finally:
        holder.wait(20)
        assert holder.stdout is not None
        holder.stdout.close()
    wait_until(lambda: post(gw.url) == 200, timeout=20)
    assert gw.process.poll() is None
    assert "unavailable at start-up" in gw.log.read_text()


def test_scgi_boots_on_a_locked_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "habitat.db"
    SQLiteStore(str(path)).initialize()
    holder = hold_lock(path, 6)
    assert holder.stdout is not None
    with holder.stdout:
        server = launch(tmp_path, env={"HABITAT_DB_TIMEOUT": "1"})
        try:
            assert server.client.post_json("/message", telem()).status == 503
            holder.wait(20)
            wait_until(
                lambda: server.client.post_json("/message", telem()).status == 200, timeout=20
            )
        finally:
            holder.kill()
            holder.wait()
            server.stop()


def test_gunicorn_boots_while_postgresql_is_down_and_serves_when_it_is_back(
    private_pg: PrivatePostgres,  # noqa: F811
    booting_gunicorn: Any,
) -> None:
    private_pg.stop()
    gw = booting_gunicorn({"HABITAT_DB": private_pg.url, "HABITAT_DB_TIMEOUT": "1"})
    assert post(gw.url) == 503
    private_pg.start()
    wait_until(lambda: post(gw.url) == 200, timeout=30)
    assert gw.process.poll() is None


def run_gunicorn(tmp_path: Path, db_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", *DEPLOY, "--bind", f"127.0.0.1:{free_port()}"],
        cwd=ROOT,
        env={**os.environ, "HABITAT_DB": db_url, "HABITAT_DB_TIMEOUT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def too_new(tmp_path: Path) -> str:
    path = tmp_path / "new.db"
    SQLiteStore(str(path)).initialize()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 99")
    return f"sqlite:///{path}"


@pytest.mark.parametrize(
    ("make_url", "reason"),
    [
        (too_new, "upgrade habitat_http"),
        (lambda tmp: f"sqlite:///{tmp}/no/such/dir/h.db", "does not exist"),
        (lambda tmp: "postgresql://postgres@127.0.0.1:notaport/habitat", "not a number"),
    ],
    ids=["schema-too-new", "missing-directory", "bad-port"],
)
def test_what_waiting_cannot_fix_stops_every_gateway_at_once(
    tmp_path: Path, make_url: Any, reason: str
) -> None:
    url = make_url(tmp_path)
    result = run_gunicorn(tmp_path, url)
    assert result.returncode != 0
    assert reason in result.stdout + result.stderr
    for command in (
        ["scgi", "--socket", str(tmp_path / "s.sock")],
        ["serve", "--bind", f"127.0.0.1:{free_port()}"],
        ["server"],
    ):
        started = subprocess.run(
            [sys.executable, "-m", "habitat_http", *command, "--db", url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert started.returncode != 0, command
        assert reason in started.stderr, (command, started.stderr)


def test_the_message_server_waits_for_a_database_that_is_down(
    private_pg: PrivatePostgres,  # noqa: F811
    tmp_path: Path,
) -> None:
    private_pg.stop()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "habitat_http", "server", "--db", private_pg.url],
            cwd=ROOT,
            env={**os.environ, "HABITAT_DB_TIMEOUT": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(3)
        assert server.poll() is None, log.read_text()
        private_pg.start()
        gw = start_gunicorn(tmp_path, {"HABITAT_DB": private_pg.url}, *DEPLOY)
        try:
            assert post(gw.url) == 200
            status = [sys.executable, "-m", "habitat_http", "status", "--db", private_pg.url]
            wait_until(
                lambda: b"lag 0 messages" in subprocess.run(status, capture_output=True).stdout,
                timeout=30,
            )
        finally:
            gw.stop()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)


@pytest.mark.parametrize(
    ("sink", "reason"),
    [
        ('use = "no_such_package.sinks:Mirror"', "cannot import 'no_such_package.sinks'"),
        ('use = "tests.sink_examples:NoTypes"', "lacks the sink interface"),
    ],
    ids=["missing-module", "not-a-sink"],
)
def test_a_sink_that_cannot_be_loaded_stops_every_command_that_takes_the_config(
    tmp_path: Path, sink: str, reason: str
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(f"[sinks.mirror]\n{sink}\n")
    url = f"sqlite:///{tmp_path}/habitat.db"
    for command in (
        ["serve", "--bind", f"127.0.0.1:{free_port()}"],
        ["server"],
        ["scgi", "--socket", str(tmp_path / "s.sock")],
    ):
        try:
            started = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "habitat_http",
                    *command,
                    "--config",
                    str(config),
                ],
                cwd=ROOT,
                env={**os.environ, "HABITAT_DB": url},
                capture_output=True,
                text=True,
                timeout=30,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{command[0]} served with a sink that cannot be loaded")
        assert started.returncode != 0, command
        assert reason in started.stderr and "mirror" in started.stderr, (command, started.stderr)
