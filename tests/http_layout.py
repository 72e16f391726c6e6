"""The shipped production layout for HTTP, run for real on free loopback ports:
nginx with deploy/nginx/habitat-http.conf in front of ``gunicorn -c
deploy/gunicorn.conf.py``, configured as deploy/systemd/habitat-gunicorn.service
configures it (its Environment=, e.g. HABITAT_TRUSTED_PROXIES=1)."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .conftest import ROOT, Server, free_port, start_gunicorn
from .nginx import start_nginx
from .units import read_unit


@contextmanager
def reachable_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory that nginx's unprivileged workers can traverse.

    pytest's tmp_path lies under a 0700 directory, so a worker running as nobody
    or www-data could not write the temp file of a large request body there.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until ``process`` accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text() if log.exists() else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen in time")


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    source: str = "127.0.0.1",
    timeout: float = 10,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request to 127.0.0.1:``port``: (status, headers, body)."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0)
    )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def post_json(port: int, path: str, message: Any, **kwargs: Any) -> tuple[int, Any]:
    """POST ``message`` as JSON; the answer's JSON, or its raw bytes if it is not JSON."""
    status, _, body = request(
        port,
        "POST",
        path,
        json.dumps(message).encode(),
        {"Content-Type": "application/json"},
        **kwargs,
    )
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


@dataclass
class Layout:
    """nginx on ``port`` in front of ``gunicorn``, storing into ``db_url``."""

    port: int
    nginx: subprocess.Popen[bytes]
    workdir: Path
    gunicorn: Server
    db_url: str
    local_port: int  # the local-only listener for /metrics, /health and /ready


def nginx_site(name: str, port: int, replace: dict[str, str] | None = None) -> str:
    """The shipped site deploy/nginx/``name`` on 127.0.0.1:``port``, with ``replace`` done."""
    site = (ROOT / "deploy/nginx" / name).read_text()
    assert "listen 80;" in site
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    replace = dict(replace or {})
    # The local-only metrics listener gets a free port too, unless one is given.
    replace.setdefault("listen 127.0.0.1:9180;", f"listen 127.0.0.1:{free_port()};")
    for old, new in replace.items():
        if old == "listen 127.0.0.1:9180;" and old not in site:
            continue  # a site without the local listener
        assert old in site, old
        site = site.replace(old, new)
    return site


@contextmanager
def http_layout(tmp_path: Path, *, worker_connections: int = 64) -> Iterator[Layout]:
    """Start gunicorn (deploy/gunicorn.conf.py) and nginx (habitat-http.conf)."""
    db_url = f"sqlite:///{tmp_path}/habitat.db"
    env = {**read_unit("habitat-gunicorn.service").environment(), "HABITAT_DB": db_url}
    server = start_gunicorn(tmp_path, env, "-c", "deploy/gunicorn.conf.py")
    upstream = server.url.removeprefix("http://")
    port, local_port = free_port(), free_port()
    site = nginx_site(
        "habitat-http.conf",
        port,
        {"127.0.0.1:8000": upstream, "listen 127.0.0.1:9180;": f"listen 127.0.0.1:{local_port};"},
    )
    try:
        with reachable_dir("habitat-nginx-") as work:
            process = start_nginx(work, site, worker_connections=worker_connections)
            try:
                wait_for_port(port, process, work / "error.log")
                yield Layout(port, process, work, server, db_url, local_port)
            finally:
                process.send_signal(signal.SIGQUIT)
                process.wait(15)
    finally:
        server.stop()
