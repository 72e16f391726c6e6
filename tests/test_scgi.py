"""The same app under flup's SCGI server on a Unix socket, driven by a client
written from the SCGI spec: every response path, socket handling, shutdown and
malformed requests."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, cli_messages, telem
from .scgi_client import SCGIClient, parse_response

pytestmark = pytest.mark.slow


@dataclass
class SCGIServer:
    process: subprocess.Popen[bytes]
    socket_path: str
    db_url: str
    log: Path

    @property
    def client(self) -> SCGIClient:
        return SCGIClient(self.socket_path)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> float:
        """Send ``sig`` and return the seconds until the process exited."""
        start = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return time.monotonic() - start

    def threads(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(
            next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:"))
        )


def launch(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    wait: bool = True,
    name: str = "scgi.sock",
) -> SCGIServer:
    sock = str(tmp_path / name)
    db = f"sqlite:///{tmp_path}/habitat.db"
    log = tmp_path / f"scgi-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "habitat_http", "scgi", "--socket", sock, *args],
            cwd=ROOT,
            env={**os.environ, "HABITAT_DB": db, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = SCGIServer(process, sock, db, log)
    if wait:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"SCGI server exited early:\n{log.read_text()}")
            try:
                server.client.request("GET", "/")
                return server
            except OSError:
                time.sleep(0.05)
        server.stop(signal.SIGKILL)
        raise RuntimeError(f"SCGI server did not answer:\n{log.read_text()}")
    return server


@pytest.fixture
def scgi_server(tmp_path: Path) -> Iterator[SCGIServer]:
    server = launch(tmp_path)
    yield server
    server.stop()


# --- every response path of the core protocol -------------------------------------


def test_info_page(scgi_server: SCGIServer) -> None:
    r = scgi_server.client.request("GET", "/")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert b"POST /message" in r.body
    head = scgi_server.client.request("HEAD", "/")
    assert head.status == 200 and head.body == b""


def test_404_405_400_415(scgi_server: SCGIServer) -> None:
    c = scgi_server.client
    missing = c.post_json("/nope", telem())
    assert missing.status == 404 and "actions" in missing.json()
    wrong = c.request("GET", "/message")
    assert wrong.status == 405 and wrong.headers["Allow"] == "POST"
    bad = c.post_json("/message", {**telem(), "callsign": "N0CALL"})
    assert bad.status == 400 and bad.json()["field"] == "callsign"
    media = c.request("POST", "/message", b"hello", "text/plain")
    assert media.status == 415
    assert cli_messages(scgi_server.db_url) == []


def test_unicode_listener_info_and_remote_addr(scgi_server: SCGIServer) -> None:
    info = {"name": "Zoë Ødegård — 日本 📡", "location": "Kraków"}
    message = {**telem(), "type": "LISTENER_INFO", "data": info}
    r = scgi_server.client.post_json("/message", message)
    assert r.status == 200, r.body
    [row] = cli_messages(scgi_server.db_url)
    assert row["id"] == r.json()["id"]
    assert row["data"] == info
    assert row["ip"] == "192.0.2.44"  # REMOTE_ADDR from the SCGI environment


def test_forwarded_for_is_ignored_even_with_trusted_proxies(tmp_path: Path) -> None:
    server = launch(tmp_path, env={"HABITAT_TRUSTED_PROXIES": "1"})
    try:
        r = server.client.post_json("/message", telem(), headers={"X-Forwarded-For": "203.0.113.9"})
        assert r.status == 200
        assert cli_messages(server.db_url)[0]["ip"] == "192.0.2.44"
    finally:
        server.stop()


def test_real_sentences_over_scgi(scgi_server: SCGIServer, sentences: list[dict[str, Any]]) -> None:
    import base64

    sample = sentences[::500]
    for s in sample:
        message = {**telem(), "data": {"string": base64.b64encode(s["sentence"].encode()).decode()}}
        assert scgi_server.client.post_json("/message", message).status == 200
    rows = cli_messages(scgi_server.db_url)
    assert [base64.b64decode(r["data"]["string"]).decode() for r in rows] == [
        s["sentence"] for s in sample
    ]


# --- mounting under a prefix ----------------------------------------------------------


def test_prefix_from_request_uri_nginx_style(tmp_path: Path) -> None:
    server = launch(tmp_path, "--prefix", "/habitat")
    try:
        c = server.client
        assert c.post_json("/habitat/message", telem()).status == 200
        # Outside the prefix the path is served from the root, as the URI says.
        assert c.post_json("/habitatx/message", telem()).status == 404
        assert c.post_json("/habitat/messagex", telem()).status == 404
        page = c.request("GET", "/habitat/")
        assert page.status == 200 and b"POST /habitat/message" in page.body
    finally:
        server.stop()


def test_prefix_with_apache_style_script_name(tmp_path: Path) -> None:
    # mod_proxy_scgi sends the whole path as SCRIPT_NAME and no PATH_INFO.
    server = launch(tmp_path, env={"HABITAT_SCGI_PREFIX": "/habitat"})
    try:
        client = SCGIClient(server.socket_path, extra={"SCRIPT_NAME": "/habitat/message"})
        r = client.post_json("/habitat/message", telem())
        assert r.status == 200, r.body
        assert len(cli_messages(server.db_url)) == 1
    finally:
        server.stop()


# --- socket, start and shutdown -----------------------------------------------------


def test_socket_mode_and_no_fork(scgi_server: SCGIServer) -> None:
    mode = stat.S_IMODE(os.stat(scgi_server.socket_path).st_mode)
    assert mode == 0o660
    children = subprocess.run(
        ["ps", "--ppid", str(scgi_server.process.pid), "-o", "pid="], capture_output=True, text=True
    ).stdout.split()
    assert children == []


def test_custom_mode(tmp_path: Path) -> None:
    server = launch(tmp_path, "--mode", "0600")
    try:
        assert stat.S_IMODE(os.stat(server.socket_path).st_mode) == 0o600
    finally:
        server.stop()


def test_quick_shutdown_when_idle_removes_the_socket(scgi_server: SCGIServer) -> None:
    took = scgi_server.stop(signal.SIGTERM)
    assert scgi_server.process.returncode == 0
    assert took < 2.0
    assert not os.path.exists(scgi_server.socket_path)


def test_sigint_also_shuts_down(scgi_server: SCGIServer) -> None:
    assert scgi_server.stop(signal.SIGINT) < 2.0
    assert not os.path.exists(scgi_server.socket_path)


def test_shutdown_with_a_stuck_client_within_the_timeout(tmp_path: Path) -> None:
    server = launch(tmp_path, env={"HABITAT_SCGI_TIMEOUT": "1.5"})
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.connect(server.socket_path)  # connects and sends nothing
    time.sleep(0.2)
    try:
        took = server.stop(signal.SIGTERM)
        assert took < 1.5 + 1.5
        assert server.process.returncode == 0
    finally:
        stuck.close()


def test_in_flight_request_finishes_during_shutdown(tmp_path: Path) -> None:
    server = launch(tmp_path, env={"HABITAT_SCGI_TIMEOUT": "3"})
    client = server.client
    body = json.dumps(telem()).encode()
    head = client.netstring(client.environ("POST", "/message", body, "application/json"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(server.socket_path)
        sock.sendall(head + body[:10])
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        sock.sendall(body[10:])
        response = parse_response(b"".join(iter(lambda: sock.recv(65536), b"")))
    assert response.status == 200
    server.process.wait(10)
    assert [r["id"] for r in cli_messages(server.db_url)] == [response.json()["id"]]


def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    stale = tmp_path / "scgi.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(stale))  # a socket file nobody listens on, as after a crash
    server = launch(tmp_path)
    try:
        assert server.client.request("GET", "/").status == 200
    finally:
        server.stop()


def test_live_server_is_not_replaced(scgi_server: SCGIServer, tmp_path: Path) -> None:
    second = launch(tmp_path, wait=False)
    assert second.process.wait(20) == 1
    assert "already listening" in second.log.read_text()
    assert scgi_server.client.request("GET", "/").status == 200


def test_a_regular_file_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "scgi.sock").write_text("precious")
    server = launch(tmp_path, wait=False)
    assert server.process.wait(20) == 1
    assert "not a socket" in server.log.read_text()
    assert (tmp_path / "scgi.sock").read_text() == "precious"


# --- malformed requests ----------------------------------------------------------------


MALFORMED = {
    "bad netstring length": b"12x:CONTENT_LENGTH\x000\x00,",
    "negative netstring length": b"-5:abc,",
    "missing CONTENT_LENGTH": SCGIClient.netstring([("SCGI", "1"), ("REQUEST_METHOD", "GET")]),
    "bad CONTENT_LENGTH": SCGIClient.netstring([("CONTENT_LENGTH", "ten"), ("SCGI", "1")]),
    "truncated header block": b"200:CONTENT_LENGTH\x000\x00SCGI\x001\x00",
    "odd header list": b"16:CONTENT_LENGTH\x000,",
    "missing trailer": b"20:CONTENT_LENGTH\x000\x00SCGI\x001\x00x",
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests_do_not_break_the_server(scgi_server: SCGIServer, data: bytes) -> None:
    before = scgi_server.threads()
    for _ in range(5):
        reply = scgi_server.client.raw(data)
        assert not reply.startswith(b"Status: 200")
    assert scgi_server.client.post_json("/message", telem()).status == 200
    assert scgi_server.threads() <= max(before, 6)
    assert scgi_server.process.poll() is None


def test_body_shorter_than_content_length(scgi_server: SCGIServer) -> None:
    c = scgi_server.client
    body = json.dumps(telem()).encode()
    env = c.environ("POST", "/message", body, "application/json")
    env[0] = ("CONTENT_LENGTH", str(len(body) + 100))
    reply = c.raw(c.netstring(env) + body)  # then half-close: the rest never comes
    assert not reply.startswith(b"Status: 200")
    assert cli_messages(scgi_server.db_url) == []
    assert c.post_json("/message", telem()).status == 200


def test_silent_client_is_dropped_after_the_timeout(tmp_path: Path) -> None:
    server = launch(tmp_path, "--threads", "2", env={"HABITAT_SCGI_TIMEOUT": "1"})
    try:
        stuck = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
        for s in stuck:
            s.connect(server.socket_path)
        time.sleep(1.8)  # both threads are free again once the timeout fires
        assert server.client.request("GET", "/").status == 200
        for s in stuck:
            s.close()
    finally:
        server.stop()


def test_trickling_client_is_dropped_at_the_connection_deadline(tmp_path: Path) -> None:
    # One byte every 0.4 s never trips a per-read timeout of 1 s; the deadline does.
    server = launch(tmp_path, "--threads", "1", env={"HABITAT_SCGI_TIMEOUT": "1"})
    try:
        client = server.client
        body = json.dumps(telem()).encode()
        data = client.netstring(client.environ("POST", "/message", body, "application/json"))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(server.socket_path)
            start = time.monotonic()
            dropped_after = None
            for byte in data:
                try:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.4)
                    if sock.recv(1, socket.MSG_DONTWAIT) == b"":
                        dropped_after = time.monotonic() - start
                        break
                except BlockingIOError:
                    continue
                except OSError:
                    dropped_after = time.monotonic() - start
                    break
        assert dropped_after is not None and dropped_after < 3
        assert server.client.request("GET", "/").status == 200  # the thread is free again
    finally:
        server.stop()


def unread_bytes(sock: socket.socket) -> int:
    """Bytes sent on a Unix stream socket that the peer has not read yet (Linux SIOCOUTQ)."""
    import fcntl
    import struct
    import termios

    raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    return int(struct.unpack("i", raw)[0])


def is_open(sock: socket.socket) -> bool:
    """The peer has not closed ``sock`` (nothing is ever sent to it here)."""
    try:
        return sock.recv(1, socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def take_the_only_thread(path: str, deadline: float) -> socket.socket:
    """A connection that the server's only thread has taken and is reading from.

    Known without timing: the thread has read the bytes sent (SIOCOUTQ is 0) and
    the connection is still open. A connection refused because the thread was
    still finishing an earlier one is closed unread; then try again.
    """
    while time.monotonic() < deadline:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        try:
            sock.sendall(b"70:")  # the start of a netstring; the thread waits for the rest
            while unread_bytes(sock) and time.monotonic() < deadline:
                time.sleep(0.01)
            if is_open(sock):
                return sock
        except OSError:
            pass
        sock.close()
    raise AssertionError("the server's thread never took a connection")


def test_refused_connections_are_closed_at_once(tmp_path: Path) -> None:
    # Deterministic, whatever the machine's speed: the only thread holds `busy`
    # and its timeout is far away, so the only way for `extra` to be closed while
    # `busy` stays open is to be refused. The 60 s bound only stops a hang.
    server = launch(tmp_path, "--threads", "1", env={"HABITAT_SCGI_TIMEOUT": "600"})
    try:
        with take_the_only_thread(server.socket_path, time.monotonic() + 60) as busy:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as extra:
                extra.settimeout(60)
                extra.connect(server.socket_path)
                try:
                    closed = extra.recv(1) == b""
                except ConnectionResetError:
                    closed = True
                assert closed
            assert is_open(busy)
    finally:
        server.stop()


def test_sighup_listens_again(scgi_server: SCGIServer) -> None:
    scgi_server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "listening again" not in scgi_server.log.read_text():
        assert time.monotonic() < deadline, scgi_server.log.read_text()
        time.sleep(0.05)
    assert scgi_server.process.poll() is None
    assert scgi_server.client.post_json("/message", telem()).status == 200


def test_non_ascii_paths_are_decoded_as_pep_3333_says(scgi_server: SCGIServer) -> None:
    r = scgi_server.client.request("GET", "/%C3%A9t%C3%A9")
    assert r.status == 404
    assert "/été" in r.json()["error"]  # werkzeug decodes the latin-1 PATH_INFO as UTF-8


def test_batches_gzip_and_retries_over_scgi(scgi_server: SCGIServer) -> None:
    import gzip

    items = [telem(f"$$SCGI,{n}*00") for n in range(20)]
    body = gzip.compress(json.dumps(items).encode())
    c = scgi_server.client
    first = c.request("POST", "/messages", body, "application/json", {"Content-Encoding": "gzip"})
    assert first.status == 200 and first.json()["accepted"] == 20
    again = c.request("POST", "/messages", body, "application/json", {"Content-Encoding": "gzip"})
    assert again.json()["duplicates"] == 20
    bad = c.request(
        "POST", "/message", b"\x1f\x8bnope", "application/json", {"Content-Encoding": "gzip"}
    )
    assert bad.status == 400
    assert len(cli_messages(scgi_server.db_url)) == 20


def test_a_body_that_stops_arriving_gets_408_not_500(tmp_path: Path) -> None:
    # The client sends half the body and then nothing: the connection deadline
    # passes while the app reads it. A timeout is not the client's wrong input.
    server = launch(tmp_path, env={"HABITAT_SCGI_TIMEOUT": "1"})
    try:
        client = server.client
        body = json.dumps(telem()).encode()
        head = client.netstring(client.environ("POST", "/message", body, "application/json"))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(server.socket_path)
            sock.sendall(head + body[:10])  # and keep the connection open
            response = parse_response(b"".join(iter(lambda: sock.recv(65536), b"")))
        assert response.status == 408, response.body
        assert set(response.json()) >= {"ok", "error", "field", "errors"}
        assert cli_messages(server.db_url) == []
        assert "Traceback" not in server.log.read_text()
    finally:
        server.stop()
