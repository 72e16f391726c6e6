"""End to end: HTTP client -> real nginx or Apache 2.4 -> SCGI -> flup -> the gateway.

The front servers are Debian's nginx and apache2 (``tests/install-servers``
installs them), run as the test's own processes with configs in temporary
directories and on free loopback ports. Their site configs are the shipped ones
from deploy/, with only the port and socket path changed.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, cli_messages, free_port, telem
from .nginx import NGINX, start_nginx
from .test_scgi import SCGIServer, launch

pytestmark = pytest.mark.slow

APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
APACHE_MODULES = Path("/usr/lib/apache2/modules")
CLIENT_SOURCE = "127.0.0.2"  # a loopback address other than the front server's own


@dataclass
class Front:
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    scgi: SCGIServer

    def post(
        self, path: str, message: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=10, source_address=(CLIENT_SOURCE, 0)
        )
        try:
            conn.request(
                "POST",
                path,
                body=json.dumps(message),
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            response = conn.getresponse()
            body = response.read()
            return response.status, json.loads(body) if body.startswith(b"{") else body
        finally:
            conn.close()

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"front server exited:\n{log.read_text() if log.exists() else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("front server did not listen in time")


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # The front server's workers run as an unprivileged user: they must be able to
    # reach the socket, so it lives in a world-traversable directory, mode 0666.
    path = Path(tempfile.mkdtemp(prefix="habitat-scgi-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_scgi(socket_dir: Path) -> SCGIServer:
    return launch(socket_dir, "--prefix", "/habitat", "--mode", "0666")


@contextlib.contextmanager
def running_nginx(tmp_path: Path, site: str, scgi: SCGIServer) -> Iterator[Front]:
    """nginx with ``site`` (port 80 and the socket path replaced) in front of ``scgi``."""
    if not os.path.exists(NGINX):
        pytest.fail("nginx is not installed: run tests/install-servers")
    port = free_port()
    work = tmp_path / "nginx"
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    site = site.replace("listen 127.0.0.1:9180;", f"listen 127.0.0.1:{free_port()};")
    site = site.replace("/run/habitat/scgi.sock", scgi.socket_path)
    process = start_nginx(work, site)
    log = work / "error.log"
    try:
        wait_for_port(port, process, log)
        yield Front(port, process, work, scgi)
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(15)
        scgi.stop()


@pytest.fixture
def nginx(tmp_path: Path, socket_dir: Path) -> Iterator[Front]:
    site = (ROOT / "deploy/nginx/habitat.conf").read_text()
    with running_nginx(tmp_path, site, start_scgi(socket_dir)) as front:
        yield front


@pytest.fixture
def apache(tmp_path: Path, socket_dir: Path) -> Iterator[Front]:
    if not os.path.exists(APACHE):
        pytest.fail("apache2 is not installed: run tests/install-servers")
    scgi = start_scgi(socket_dir)
    port = free_port()
    work = tmp_path / "apache"
    work.mkdir()
    site = (ROOT / "deploy/apache/habitat.conf").read_text()
    site = site.replace("<VirtualHost *:80>", f"<VirtualHost 127.0.0.1:{port}>")
    site = site.replace("/run/habitat/scgi.sock", scgi.socket_path)
    (work / "habitat.conf").write_text(site)
    user = "User nobody\nGroup nogroup" if os.geteuid() == 0 else ""
    modules = "\n".join(
        f"LoadModule {name}_module {APACHE_MODULES}/mod_{name}.so"
        for name in ("mpm_event", "authz_core", "proxy", "proxy_scgi")
    )
    (work / "apache2.conf").write_text(f"""
ServerRoot "{work}"
DefaultRuntimeDir "{work}"
PidFile "{work}/apache2.pid"
Mutex file:{work} default
ServerName localhost
Listen 127.0.0.1:{port}
ErrorLog "{work}/error.log"
LogLevel warn
{user}
{modules}
Include "{work}/habitat.conf"
""")
    log = work / "error.log"
    process = subprocess.Popen(
        [APACHE, "-f", str(work / "apache2.conf"), "-DFOREGROUND"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env={**os.environ, "APACHE_RUN_DIR": str(work)},
    )
    try:
        wait_for_port(port, process, log)
        yield Front(port, process, work, scgi)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(15)
        scgi.stop()


def check_front(front: Front) -> None:
    # Posted over HTTP, stored with the client's real address, under the /habitat prefix.
    status, body = front.post(
        "/habitat/message", telem(), headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert status == 200, body
    info = {**telem(), "type": "LISTENER_INFO", "data": {"name": "Zoë 📡 Kraków"}}
    status, body2 = front.post("/habitat/message", info)
    assert status == 200, body2
    rows = cli_messages(front.scgi.db_url)
    assert [r["id"] for r in rows] == [body["id"], body2["id"]]
    assert {r["ip"] for r in rows} == {CLIENT_SOURCE}
    assert rows[1]["data"] == {"name": "Zoë 📡 Kraków"}
    # The other response paths come back through the front server unchanged.
    status, bad = front.post("/habitat/message", {**telem(), "callsign": "MYCALL"})
    assert status == 400 and bad["field"] == "callsign"
    status, page = front.get("/habitat/")
    assert status == 200 and b"POST /habitat/message" in page
    status, _ = front.get("/habitat/message")
    assert status == 405
    status, missing = front.get("/habitat/nothing-here")
    assert status == 404 and b"actions" in missing


def test_through_nginx(nginx: Front) -> None:
    check_front(nginx)


def test_through_apache(apache: Front) -> None:
    check_front(apache)


def curl_chunked(front: Front, path: str, body: bytes) -> tuple[int, Any]:
    """POST ``body`` with curl as ``Transfer-Encoding: chunked`` (no Content-Length)."""
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "20",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: application/json",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "@-",
            f"http://127.0.0.1:{front.port}{path}",
        ],
        input=body,
        capture_output=True,
        check=True,
    ).stdout
    answer, _, status = out.rpartition(b"\n")
    return int(status), json.loads(answer)


def test_chunked_bodies_through_nginx_are_read_whole(nginx: Front) -> None:
    # nginx de-chunks and sends CONTENT_LENGTH, but passes HTTP_TRANSFER_ENCODING too.
    status, one = curl_chunked(nginx, "/habitat/message", json.dumps(telem()).encode())
    assert status == 200, one
    items = [telem(f"$$CHUNKED,{n}*00") for n in range(3)]
    status, many = curl_chunked(nginx, "/habitat/messages", json.dumps(items).encode())
    assert status == 200 and many["accepted"] == 3, many
    ids = [one["id"], *(r["id"] for r in many["results"])]
    assert [r["id"] for r in cli_messages(nginx.scgi.db_url)] == ids


def test_script_name_from_nginx_is_the_mount_point_without_prefix(
    tmp_path: Path, socket_dir: Path
) -> None:
    # The conventional nginx mount, in front of `habitat-http scgi` without --prefix.
    site = """
server {
    listen 80;
    location /habitat/ {
        include scgi_params;
        scgi_param SCRIPT_NAME /habitat;
        scgi_pass unix:/run/habitat/scgi.sock;
    }
}
"""
    scgi = launch(socket_dir, "--mode", "0666")
    with running_nginx(tmp_path, site, scgi) as front:
        status, body = front.post("/habitat/message", telem())
        assert status == 200, body
        status, page = front.get("/habitat/")
        assert status == 200 and b"POST /habitat/message" in page
        status, missing = front.get("/habitat/nothing-here")
        assert status == 404 and b"/nothing-here" in missing
        assert [r["id"] for r in cli_messages(scgi.db_url)] == [body["id"]]
