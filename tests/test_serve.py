"""``habitat-http serve``: the message server is supervised by gunicorn's master."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from habitat_http.pipeline import Supervisor

from .conftest import ROOT, free_port
from .test_pipeline import _answers, wait_until


def test_a_child_reaped_by_someone_else_is_still_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """gunicorn's master waits for any child (waitpid(-1)) when it gets SIGCHLD,
    and so may collect the message server's exit status before the supervisor."""
    done = threading.Event()

    def reap_like_gunicorn() -> None:
        while not done.is_set():
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                time.sleep(0.001)

    reaper = threading.Thread(target=reap_like_gunicorn)
    reaper.start()
    supervisor = Supervisor([sys.executable, "-c", "import time; time.sleep(60)"], 0.05)
    try:
        supervisor.start()
        seen: list[int] = []
        for _ in range(10):
            wait_until(
                lambda: supervisor.process is not None and supervisor.process.pid not in seen,
                timeout=10,
            )
            assert supervisor.process is not None
            seen.append(supervisor.process.pid)
            os.kill(seen[-1], signal.SIGKILL)
        wait_until(lambda: supervisor.restarts == 10, timeout=10)
    finally:
        supervisor.stop()
        done.set()
        reaper.join()
    assert len([r for r in caplog.records if "restarting" in r.getMessage()]) == 10


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    db_url: str

    def message_servers(self) -> list[int]:
        """The pids of the supervised ``habitat_http server`` children."""
        found = subprocess.run(
            ["pgrep", "-P", str(self.process.pid), "-f", "habitat_http server"],
            capture_output=True,
            text=True,
        ).stdout.split()
        return [int(pid) for pid in found if not _zombie(int(pid))]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def start_serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Serve:
    db_url = f"sqlite:///{tmp_path}/habitat.db"
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "habitat_http", "serve", "--bind", f"127.0.0.1:{port}", *args],
            cwd=ROOT,
            env={**os.environ, "HABITAT_DB": db_url, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Serve(process, f"http://127.0.0.1:{port}", log, db_url)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    s = start_serve(tmp_path, "--workers", "1", "--max-restart-delay", "0.2")
    yield s
    if s.process.poll() is None:
        s.process.send_signal(signal.SIGTERM)
        try:
            s.process.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(s.process.pid, signal.SIGKILL)
            s.process.wait()


@pytest.mark.slow
def test_a_killed_message_server_is_restarted_every_time(serve: Serve) -> None:
    wait_until(lambda: _answers(serve.url), timeout=30)
    wait_until(lambda: len(serve.message_servers()) == 1, timeout=20)
    killed: list[int] = []
    for _ in range(10):
        [pid] = serve.message_servers()
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        wait_until(
            lambda: [p for p in serve.message_servers() if p not in killed] != [], timeout=20
        )
        assert len(serve.message_servers()) == 1
    log = serve.log.read_text()
    assert log.count("restarting") == 10, log
    assert _answers(serve.url)


def status_output(db_url: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "habitat_http", "status", "--db", db_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout


def test_serve_and_scgi_use_the_db_option_over_habitat_db(tmp_path: Path) -> None:
    from .conftest import cli_messages, telem
    from .test_scgi import launch

    chosen = f"sqlite:///{tmp_path}/chosen.db"
    s = start_serve(tmp_path, "--workers", "1", "--db", chosen)  # HABITAT_DB: habitat.db
    try:
        wait_until(lambda: _answers(s.url), timeout=30)
        assert requests.post(s.url + "/message", json=telem(), timeout=10).status_code == 200
        # status exits 1 until the message server's first heartbeat: read its output.
        wait_until(lambda: status_output(chosen).count("lag 0 messages") == 2, timeout=30)
    finally:
        s.process.send_signal(signal.SIGTERM)
        s.process.wait(40)
    assert [m["type"] for m in cli_messages(chosen)] == ["RECEIVED_TELEM", "TELEM"]  # parsed
    scgi = launch(tmp_path, "--db", chosen)  # HABITAT_DB: habitat.db
    try:
        assert scgi.client.post_json("/message", telem(callsign="M0SCGI")).status == 200
    finally:
        scgi.stop()
    assert [m["callsign"] for m in cli_messages(chosen) if m["type"] != "TELEM"] == [
        "M0ABC",
        "M0SCGI",
    ]
    assert not (tmp_path / "habitat.db").exists()
