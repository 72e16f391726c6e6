"""Invariants of the shipped deployment files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, free_port
from .http_layout import http_layout, nginx_site, reachable_dir, request, wait_for_port
from .nginx import nginx_command, start_nginx, write_conf
from .test_scgi import launch

DEPLOY = ROOT / "deploy"


def unit_seconds(name: str, key: str) -> float:
    text = (DEPLOY / "systemd" / name).read_text()
    match = re.search(rf"^{key}=(\d+)$", text, re.MULTILINE)
    assert match, f"{key} missing from {name}"
    return float(match.group(1))


def gunicorn_settings(tmp_path: Path) -> dict[str, Any]:
    """deploy/gunicorn.conf.py's settings, read in a child process: the file sets
    PROMETHEUS_MULTIPROC_DIR, which must not leak into this one."""
    code = (
        "import json, runpy, sys; s = runpy.run_path(sys.argv[1]);"
        " print(json.dumps({k: v for k, v in s.items() if not k.startswith('_')},"
        " default=lambda v: getattr(v, '__qualname__', repr(v))))"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    out = subprocess.run(
        [sys.executable, "-c", code, str(DEPLOY / "gunicorn.conf.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    settings: dict[str, Any] = json.loads(out)
    return settings


def test_gunicorn_settings(tmp_path: Path) -> None:
    settings = gunicorn_settings(tmp_path)
    # Threads share SQLite commits. Neither gthread nor sync survives slow clients
    # alone: nginx in front does (tests/test_slow_clients.py).
    assert settings["worker_class"] == "gthread"
    assert settings["bind"] == ["127.0.0.1:8000"]  # loopback: nginx faces the clients
    # One access line per request: the gateway's JSON line, not gunicorn's as well.
    assert settings["accesslog"] is None
    # Workers' metrics add up (prometheus_client's multiprocess mode).
    assert settings["child_exit"] == "child_exit"
    assert settings["graceful_timeout"] < settings["timeout"]
    # systemd must not kill workers in the middle of a graceful drain.
    assert unit_seconds("habitat-gunicorn.service", "TimeoutStopSec") > settings["graceful_timeout"]


def test_gunicorn_is_socket_activated() -> None:
    service = (DEPLOY / "systemd" / "habitat-gunicorn.service").read_text()
    assert "Requires=habitat-gunicorn.socket" in service
    assert "ListenStream=" in (DEPLOY / "systemd" / "habitat-gunicorn.socket").read_text()


def test_scgi_unit_outlives_the_connection_timeout() -> None:
    text = (DEPLOY / "systemd" / "habitat-scgi.service").read_text()
    timeout = float(re.search(r"HABITAT_SCGI_TIMEOUT=(\d+)", text).group(1))  # type: ignore[union-attr]
    assert unit_seconds("habitat-scgi.service", "TimeoutStopSec") > timeout
    assert "--mode 0660" in text and "scgi --socket /run/habitat/scgi.sock" in text


def test_front_servers_point_at_the_units_socket() -> None:
    for conf in ("nginx/habitat.conf", "apache/habitat.conf"):
        assert "/run/habitat/scgi.sock" in (DEPLOY / conf).read_text()
    assert "ProxySCGIInternalRedirect Off" in (DEPLOY / "apache/habitat.conf").read_text()


# --- Through the real front servers --------------------------------------------------

JUST_OVER_BATCH_LIMIT = 1024 * 1024 + 1  # HABITAT_MAX_BATCH_BODY's default, plus one byte


def over_long_batch(size: int) -> bytes:
    """A /messages body of ``size`` bytes: an empty JSON list padded with spaces."""
    return b"[" + b" " * (size - 2) + b"]"


def check_json_413(port: int, path: str, size: int) -> None:
    status, headers, body = request(
        port, "POST", path, over_long_batch(size), {"Content-Type": "application/json"}
    )
    # The gateway's answer, not nginx's HTML page: JSON that says what to change.
    assert status == 413, body[:200]
    assert headers["Content-Type"].startswith("application/json"), body[:200]
    assert json.loads(body)["ok"] is False


def test_every_nginx_config_lets_the_gateway_refuse_over_long_bodies() -> None:
    limit = 1024 * 1024  # HABITAT_MAX_BATCH_BODY's default
    for conf in sorted((DEPLOY / "nginx").glob("*.conf")):
        match = re.search(r"client_max_body_size (\d+)([km]?);", conf.read_text())
        assert match, f"{conf.name} sets no client_max_body_size"
        size = int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2)]
        assert size > limit, conf.name


def test_every_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    for conf in sorted((DEPLOY / "nginx").glob("*.conf")):
        work = tmp_path / conf.stem
        site = nginx_site(conf.name, free_port())
        checked = subprocess.run(
            nginx_command(work, write_conf(work, site), "-t"), capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stderr


@pytest.mark.slow
def test_over_long_batch_gets_the_gateways_json_413_through_nginx_and_gunicorn(
    tmp_path: Path,
) -> None:
    with http_layout(tmp_path) as layout:
        check_json_413(layout.port, "/messages", JUST_OVER_BATCH_LIMIT)
        check_json_413(layout.port, "/message", JUST_OVER_BATCH_LIMIT)


@pytest.mark.slow
def test_over_long_batch_gets_the_gateways_json_413_through_nginx_and_scgi() -> None:
    with nginx_scgi() as port:
        check_json_413(port, "/habitat/messages", JUST_OVER_BATCH_LIMIT)
        check_json_413(port, "/habitat/message", JUST_OVER_BATCH_LIMIT)


@contextmanager
def nginx_scgi() -> Iterator[int]:
    """nginx (deploy/nginx/habitat.conf) in front of ``habitat-http scgi``; yield its port."""
    with reachable_dir("habitat-scgi-") as sockets, reachable_dir("habitat-nginx-") as work:
        scgi = launch(sockets, "--prefix", "/habitat", "--mode", "0666")
        try:
            port = free_port()
            site = nginx_site("habitat.conf", port, {"/run/habitat/scgi.sock": scgi.socket_path})
            process = start_nginx(work, site)
            try:
                wait_for_port(port, process, work / "error.log")
                yield port
            finally:
                process.send_signal(signal.SIGQUIT)
                process.wait(15)
        finally:
            scgi.stop()


@pytest.mark.slow
def test_any_body_nginx_lets_through_gets_a_4xx(tmp_path: Path) -> None:
    sizes = (1024 * 1024 + 4096, 1536 * 1024, 2 * 1024 * 1024)  # up to client_max_body_size
    with http_layout(tmp_path) as layout, nginx_scgi() as scgi_port:
        for port, path in ((layout.port, "/messages"), (scgi_port, "/habitat/messages")):
            for size in sizes:
                for _ in range(5):
                    check_json_413(port, path, size)


def test_metrics_are_served_only_on_the_local_listener(tmp_path: Path) -> None:
    with http_layout(tmp_path) as layout:
        status, _, _ = request(layout.port, "POST", "/message", b"{}", {"Content-Type": "x"})
        assert status == 415  # the public site reaches the gateway
        public, _, _ = request(layout.port, "GET", "/metrics")
        assert public == 404
        local, headers, body = request(layout.local_port, "GET", "/metrics")
        assert local == 200 and headers["Content-Type"].startswith("text/plain")
        assert b'habitat_requests_total{endpoint="message",status="415"} 1.0' in body
        ready, _, _ = request(layout.local_port, "GET", "/ready")
        assert ready in (200, 503)  # the gateway's answer, whatever the database says
        assert request(layout.local_port, "POST", "/message", b"{}")[0] == 404
