"""Slow clients (slowloris) against the shipped production layout for HTTP.

200 connections send a request a byte at a time, half of them trickling the
header and half a body after a complete header, over loopback and for a bounded
time. Behind nginx (deploy/nginx/habitat-http.conf), which reads whole requests
before passing them on, a normal client's POST /message is still answered at
once. gunicorn exposed directly is starved by the same attack: that is why the
layout exists, and the control test shows it (issue 9, section 4).
"""

from __future__ import annotations

import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

from .conftest import cli_messages, start_gunicorn, telem
from .http_layout import http_layout, post_json

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 200
# Issue 9's requirement: a normal client's POST is answered within 1 s while the
# slow clients are connected (measured behind nginx: a few milliseconds).
ANSWER_WITHIN = 1.0
CLIENT_SOURCE = "127.0.0.2"  # the normal client, told apart from nginx's 127.0.0.1


class SlowClients:
    """``count`` loopback connections to ``port`` that each send one byte every
    ``interval`` seconds, until the context exits or ``limit`` seconds pass.

    Even connections trickle the header; odd ones send a whole header announcing
    a 1000-byte body, then trickle the body. Neither ends within ``limit``.
    """

    HEADER = (
        b"POST /message HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )

    def __init__(
        self, port: int, count: int = SLOW_CLIENTS, interval: float = 0.25, limit: float = 30
    ) -> None:
        self.port = port
        self.count = count
        self.interval = interval
        self.limit = limit
        self.sockets: list[socket.socket] = []
        self.pending: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> SlowClients:
        for i in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            if i % 2:
                sock.sendall(self.HEADER)
                self.pending.append(b"[" + b" " * 998 + b"]")
            else:
                self.pending.append(self.HEADER)
            sock.setblocking(False)
            self.sockets.append(sock)
        self.thread.start()
        return self

    def _trickle(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self.stop.wait(self.interval) and time.monotonic() < deadline:
            for i, sock in enumerate(self.sockets):
                data = self.pending[i]
                if not data:
                    continue
                try:
                    sock.send(data[:1])
                    self.pending[i] = data[1:]
                except OSError:
                    self.pending[i] = b""  # closed by the server: this one stops

    def still_open(self) -> int:
        """How many connections the server has neither closed nor answered."""
        alive = 0
        for sock in self.sockets:
            try:
                sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return alive

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop.set()
        self.thread.join(10)
        for sock in self.sockets:
            sock.close()


@pytest.fixture(autouse=True)
def enough_file_descriptors() -> Iterator[None]:
    """Raise the soft RLIMIT_NOFILE for the slow sockets (and the servers we start)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * SLOW_CLIENTS + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.fail(f"RLIMIT_NOFILE hard limit {hard} < {wanted}: raise it (ulimit -Hn)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def message(i: int) -> dict[str, object]:
    return telem(sentence=f"$$habitat,{i},12:45:06,-35.1032,138.8568,4285,3.6,hab*5681\n")


def test_nginx_in_front_answers_a_normal_client_during_200_slow_clients(
    tmp_path: Path,
) -> None:
    # worker_connections: the slow clients, plus two per proxied request, plus margin.
    with (
        http_layout(tmp_path, worker_connections=4 * SLOW_CLIENTS) as layout,
        SlowClients(layout.port) as attack,
    ):
        time.sleep(4 * attack.interval)  # every slow client has sent bytes since
        timings = []
        ids = []
        for i in range(5):
            start = time.monotonic()
            status, body = post_json(
                layout.port, "/message", message(i), source=CLIENT_SOURCE, timeout=5
            )
            timings.append(time.monotonic() - start)
            assert status == 200, body
            ids.append(body["id"])
        # The attack was on the whole time: nginx has cut off no slow client.
        assert attack.still_open() == SLOW_CLIENTS
    assert max(timings) < ANSWER_WITHIN, timings
    # Stored, with the normal client's own address (X-Forwarded-For from nginx).
    rows = cli_messages(layout.db_url)
    assert [r["id"] for r in rows] == ids
    assert {r["ip"] for r in rows} == {CLIENT_SOURCE}


def test_gunicorn_alone_is_starved_by_200_slow_clients(tmp_path: Path) -> None:
    # The control: the same attack straight at gunicorn -c deploy/gunicorn.conf.py.
    # Every thread of a worker blocks reading a trickled request, and a normal
    # client that this worker accepted waits for as long as the attack lasts.
    # One worker, so that the normal client surely lands on a starved one: with
    # two, about half of the normal requests did (README.rst, Deployment).
    server = start_gunicorn(
        tmp_path,
        {"HABITAT_DB": f"sqlite:///{tmp_path}/habitat.db"},
        "-c",
        "deploy/gunicorn.conf.py",
        "--workers",
        "1",
    )
    port = int(server.url.rsplit(":", 1)[1])
    try:
        with SlowClients(port) as attack:
            time.sleep(4 * attack.interval)
            with pytest.raises(TimeoutError):
                post_json(port, "/message", message(0), timeout=3 * ANSWER_WITHIN)
            assert attack.still_open() == SLOW_CLIENTS
        # Once the slow clients are gone, gunicorn answers again.
        status, body = post_json(port, "/message", message(1))
        assert status == 200, body
    finally:
        server.stop()
