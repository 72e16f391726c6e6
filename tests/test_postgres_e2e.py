"""Several gateway hosts and message servers on one PostgreSQL database, and a
PostgreSQL that stops and comes back in the middle of a load."""

from __future__ import annotations

import base64
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import ROOT, cli_messages, free_port, pg_reset
from .nginx import start_nginx
from .test_pipeline import archive, lag, start_server, wait_until

pytestmark = pytest.mark.slow


@dataclass
class PrivatePostgres:
    """A PostgreSQL instance of this test's own, started with pg_ctl on a free port."""

    bindir: Path
    datadir: Path
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/habitat"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-l",
            str(self.log),
            "-w",
            "-o",
            f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL's server binaries are not installed: run tests/install-servers")
    bindir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="habitat-pg-"))
    base.chmod(0o755)
    datadir, log = base / "data", base / "postgres.log"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    pg = PrivatePostgres(bindir, datadir, free_port(), log)
    pg._run("initdb", "-D", str(datadir), "-A", "trust", "-U", "postgres")
    pg.start()
    import psycopg

    with psycopg.connect(pg.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE habitat")
    try:
        yield pg
    finally:
        try:
            with contextlib.suppress(subprocess.CalledProcessError):  # a test stopped it
                pg.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def test_database_outage_gives_503_and_loses_nothing(
    private_pg: PrivatePostgres, gunicorn: Any
) -> None:
    gw = gunicorn(
        {"HABITAT_DB": private_pg.url, "HABITAT_DB_TIMEOUT": "2"},
        "--workers",
        "2",
        "--worker-class",
        "gthread",
        "--threads",
        "4",
        "--timeout",
        "60",
    )
    outcomes: list[tuple[float, int, str, Any, float]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def listener(n: int) -> None:
        session = requests.Session()
        i = 0
        while not stop.is_set():
            sentence = f"$$OUTAGE,{n},{i}*00"
            body = {
                "callsign": f"M{n}OUT",
                "type": "RECEIVED_TELEM",
                "time_created": int(time.time()),
                "time_uploaded": int(time.time()),
                "data": {"string": base64.b64encode(sentence.encode()).decode()},
            }
            start = time.monotonic()
            r = session.post(gw.url + "/message", json=body, timeout=30)
            took = time.monotonic() - start
            with lock:
                outcomes.append(
                    (
                        start,
                        r.status_code,
                        body["data"]["string"],
                        r.json() | {"retry_after": r.headers.get("Retry-After")},
                        took,
                    )
                )
            i += 1
            if r.status_code != 200:
                time.sleep(0.2)

    threads = [threading.Thread(target=listener, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    private_pg.stop()
    stopped_at = time.monotonic()
    time.sleep(6)  # long enough for whole 2 s waits to fall inside the outage
    private_pg.start()
    up_at = time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until it recovers by itself, or not
        with lock:
            recent = [o for o in outcomes if o[0] > up_at + 0.5]
        if sum(o[1] == 200 for o in recent) >= 20:
            break
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(60)

    statuses = {o[1] for o in outcomes}
    # Never a 500. A request caught in flight as the server stops may miss its
    # deadline (504); one that began and ended while it was down gets 503.
    assert statuses <= {200, 503, 504}, statuses
    # Requests that began and ended while the database was down got 503.
    down = [o for o in outcomes if o[0] >= stopped_at and o[0] + o[4] < up_at - 0.5]
    assert down and all(o[1] == 503 for o in down)
    assert all(o[3]["retry_after"] for o in outcomes if o[1] in (503, 504))
    assert max(o[4] for o in outcomes) < 2 + 3  # nothing hangs past HABITAT_DB_TIMEOUT
    assert sum(o[1] == 200 for o in outcomes if o[0] > up_at) >= 20  # recovered by itself
    stored = {m["data"]["string"]: m["id"] for m in cli_messages(private_pg.url)}
    acked = [(o[2], o[3]["id"]) for o in outcomes if o[1] == 200]
    assert acked and all(stored.get(string) == id_ for string, id_ in acked)


def test_two_gateways_and_two_servers_share_one_database(
    pg_url: str, gunicorn: Any, tmp_path: Path, sentences: list[dict[str, Any]]
) -> None:
    pg_reset(pg_url)
    env = {"HABITAT_DB": pg_url}
    gateways = [
        gunicorn(env, "--workers", "2", "--worker-class", "gthread", "--threads", "4")
        for _ in range(2)
    ]
    servers = [start_server(pg_url, tmp_path) for _ in range(2)]
    sample = [s for s in sentences if s["receivers"]][:150]
    listeners = ["M0ONE", "M0TWO", "M0THR", "M0FOU"]
    now = int(time.time())

    def listener(k: int, callsign: str) -> None:
        session = requests.Session()
        for n, s in enumerate(sample):
            body = {
                "callsign": callsign,
                "type": "RECEIVED_TELEM",
                "time_created": now - k,
                "time_uploaded": now,
                "data": {"string": base64.b64encode(s["sentence"].encode()).decode()},
            }
            # Each upload goes to one gateway and is retried through the other.
            for gw in (gateways[n % 2], gateways[(n + 1) % 2]):
                r = session.post(gw.url + "/message", json=body, timeout=30)
                assert r.status_code == 200

    threads = [threading.Thread(target=listener, args=(k, cs)) for k, cs in enumerate(listeners)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        wait_until(lambda: lag(pg_url) == 0, timeout=60)
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            assert server.wait(20) == 0
    kinds = [m["type"] for m in cli_messages(pg_url)]
    assert kinds.count("RECEIVED_TELEM") == len(sample) * len(listeners)  # each stored once
    # Two parser sinks, one TELEM per distinct string (the dedup key).
    assert kinds.count("TELEM") == len({s["sentence"] for s in sample})
    docs = archive(pg_url, "payload_telemetry")
    assert len(docs) == len({s["sentence"] for s in sample})
    assert all(set(d["receivers"]) == set(listeners) for d in docs)
    assert all(d["data"]["_used_default_config"] for d in docs)  # ALMA-2: the common layout


def test_init_db_and_cli_on_postgresql(pg_url: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "habitat_http", "init-db", "--db", pg_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "up to date" in out


def test_an_unreachable_database_is_waited_for_with_the_reason_logged(tmp_path: Path) -> None:
    """Waiting can fix an unreachable database: the gateway and the message server
    start, log why the database is unavailable, and serve 503 meanwhile (issue 9;
    tests/test_startup.py has them recover when it comes back)."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/habitat"
    for command in (["server", "--db", url], ["scgi", "--socket", str(tmp_path / "s.sock")]):
        log = tmp_path / f"{command[0]}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "habitat_http", *command],
                cwd=ROOT,
                env={**os.environ, "HABITAT_DB": url, "HABITAT_DB_TIMEOUT": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(lambda log=log: "cannot reach the database" in log.read_text(), 20)  # type: ignore[misc]
            assert process.poll() is None, log.read_text()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(20)


def test_nginx_balances_two_gateways_on_one_database(
    pg_url: str, gunicorn: Any, tmp_path: Path
) -> None:
    import http.client
    import json

    pg_reset(pg_url)
    env = {"HABITAT_DB": pg_url, "HABITAT_TRUSTED_PROXIES": "1"}
    gateways = [gunicorn(env, "--workers", "1") for _ in range(2)]
    port = free_port()
    site = (ROOT / "deploy/nginx/habitat-lb.conf").read_text()
    site = site.replace("10.0.0.11:8000", gateways[0].url.removeprefix("http://"))
    site = site.replace("10.0.0.12:8000", gateways[1].url.removeprefix("http://"))
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    nginx = start_nginx(tmp_path / "nginx", site)

    def post(n: int) -> int:
        conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=10, source_address=("127.0.0.3", 0)
        )
        body = {
            "callsign": "M0LB",
            "type": "RECEIVED_TELEM",
            "time_created": 1_700_000_000 + n,
            "time_uploaded": 1_700_000_000 + n,
            "data": {"string": base64.b64encode(f"$$LB,{n}*00".encode()).decode()},
        }
        conn.request(
            "POST",
            "/message",
            json.dumps(body),
            {"Content-Type": "application/json", "X-Forwarded-For": "6.6.6.6"},
        )
        status = conn.getresponse().status
        conn.close()
        return status

    try:
        wait_until(lambda: _answers(port), timeout=10)
        assert [post(n) for n in range(10)] == [200] * 10
        gateways[0].stop()  # one host goes away: the other takes everything
        assert [post(n) for n in range(10, 20)] == [200] * 10
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(15)
    rows = cli_messages(pg_url)
    assert len(rows) == 20
    assert {r["ip"] for r in rows} == {"127.0.0.3"}  # the client, not the forged header


def _answers(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
