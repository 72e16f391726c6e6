"""Invariants of the shipped deployment files."""

from __future__ import annotations

import re
import runpy

from .conftest import ROOT

DEPLOY = ROOT / "deploy"


def unit_seconds(name: str, key: str) -> float:
    text = (DEPLOY / "systemd" / name).read_text()
    match = re.search(rf"^{key}=(\d+)$", text, re.MULTILINE)
    assert match, f"{key} missing from {name}"
    return float(match.group(1))


def test_gunicorn_settings() -> None:
    settings = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert settings["worker_class"] == "gthread"  # safe without a buffering proxy
    assert settings["accesslog"] == "-"
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
