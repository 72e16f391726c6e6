"""Shared fixtures: isolated apps on tmp SQLite files with a fake clock, real
telemetry from tests/data, and real gunicorn processes on free loopback ports."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.test import Client

from habitat_http import create_app
from habitat_http.app import HabitatApp
from habitat_http.config import Config
from habitat_http.ops.accesslog import LOGGER_NAME
from habitat_http.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent

# The apps the tests build log their access lines through logging's own route
# (to caplog and pytest's capture), not to this process's stdout, where the
# default handler would write what it buffered after pytest's summary.
logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())
DATA = Path(__file__).resolve().parent / "data"
CLIENT_IP = "192.0.2.7"  # RFC 5737 documentation address


class IPClient(Client):
    """werkzeug's test Client, with REMOTE_ADDR set as a real server would."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("environ_base", {"REMOTE_ADDR": CLIENT_IP})
        return super().open(*args, **kwargs)


class FakeClock:
    """A settable server clock, in seconds since the UNIX epoch."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Gateway:
    """An app built by create_app on its own tmp database, and a test client."""

    app: HabitatApp
    store: SQLiteStore
    clock: FakeClock
    client: IPClient
    db_path: Path

    def post(self, message: dict[str, Any], **environ: Any) -> Any:
        return self.client.post("/message", json=message, environ_overrides=environ or None)


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def telem(
    sentence: str = "$$habitat,123,12:45:06,-35.1032,138.8568,4285,3.6,hab*5681\n",
    callsign: str = "M0ABC",
    time_created: float = 1_699_999_990,
    time_uploaded: float = 1_699_999_995,
    **data: Any,
) -> dict[str, Any]:
    """A RECEIVED_TELEM message as a client would post it."""
    return {
        "callsign": callsign,
        "type": "RECEIVED_TELEM",
        "time_created": time_created,
        "time_uploaded": time_uploaded,
        "data": {"string": b64(sentence), **data},
    }


_open_stores: list[SQLiteStore] = []


def make_gateway(tmp_path: Path, config: Config | None = None, *, hot: bool = True) -> Gateway:
    """A fresh app on ``tmp_path/habitat.db``; its store is closed after the test.

    ``hot=False`` builds it without the plain-WSGI hot path (app.py), so every
    request takes the werkzeug path.
    """
    db_path = tmp_path / "habitat.db"
    store = SQLiteStore(str(db_path))
    _open_stores.append(store)
    clock = FakeClock()
    app = create_app(config or Config(), store, clock)
    if not hot:
        app = HabitatApp(app.config, store, clock, app.observer, app.monotonic, hot_path=False)
    client = IPClient(app)
    return Gateway(app, store, clock, client, db_path)


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while _open_stores:
        _open_stores.pop().close()


@pytest.fixture(params=["hot path", "werkzeug path"])
def gw(request: pytest.FixtureRequest, tmp_path: Path) -> Gateway:
    """A gateway, once with the hot path and once with the werkzeug path only: every
    test that uses it runs on both paths."""
    return make_gateway(tmp_path, hot=request.param == "hot path")


@pytest.fixture(scope="session")
def sentences() -> list[dict[str, Any]]:
    """Every real sentence in tests/data/ukhas_sentences.jsonl (see SOURCES.md)."""
    with open(DATA / "ukhas_sentences.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A real server process and the URL it answers on."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_gunicorn(
    tmp_path: Path, env: dict[str, str], *args: str, app: str = "wsgi:app"
) -> Server:
    """Start ``gunicorn app`` from the repository root on a free port; wait until it answers."""
    port = free_port()
    log = tmp_path / f"gunicorn-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *args, app],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a test can kill the whole process group
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited early:\n{log.read_text()}")
        try:
            requests.get(server.url + "/", timeout=1)
            return server
        except requests.RequestException:  # not listening yet, or slow on a loaded machine
            time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"gunicorn did not answer within 30 s:\n{log.read_text()}")


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Any]:
    """A factory that starts gunicorn processes and stops them after the test."""
    servers: list[Server] = []

    def start(env: dict[str, str], *args: str, app: str = "wsgi:app") -> Server:
        server = start_gunicorn(tmp_path, env, *args, app=app)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def cli_messages(db_url: str, *args: str) -> list[dict[str, Any]]:
    """Run the real ``habitat-http messages`` command and parse its JSON lines."""
    out = subprocess.run(
        [sys.executable, "-m", "habitat_http", "messages", "--db", db_url, *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


# --- PostgreSQL ------------------------------------------------------------------

PG_ADMIN_URL = os.environ.get("HABITAT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ARCHIVE_TABLES = (
    "messages",
    "sink_checkpoints",
    "payload_telemetry",
    "listener_information",
    "listener_telemetry",
    "payload_configurations",
)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throwaway database on the machine's PostgreSQL, for this test session.

    Skips (saying why) only when no server is reachable; .ci/run starts one.
    """
    with throwaway_pg_database() as url:
        yield url


@contextlib.contextmanager
def throwaway_pg_database() -> Iterator[str]:
    """The URL of a new, empty database on the machine's PostgreSQL, dropped after.

    Skips (saying why) only when no server is reachable.
    """
    import uuid

    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}".strip())
    name = f"habitat_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_reset(url: str) -> None:
    """Empty every table of the test database (the schema stays)."""
    import psycopg

    from habitat_http.archive import open_archive
    from habitat_http.parser.documents import ConfigurationDocuments
    from habitat_http.store.postgres import PostgresStore

    store = PostgresStore(url)
    store.initialize()
    open_archive(store).initialize()
    ConfigurationDocuments(store).initialize()
    store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(ARCHIVE_TABLES)} RESTART IDENTITY")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database of each backend (the contract suite's fixture)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/habitat.db"
    url: str = request.getfixturevalue("pg_url")
    pg_reset(url)
    return url
