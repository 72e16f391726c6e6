"""The shipped systemd units (deploy/systemd/): checked by systemd itself, consistent
with each other and with the nginx configs, and run for real: the SCGI gateway
with its unit's Group=, behind nginx running as that group's user, and the
message server archiving what the gateway stored.

Tests run as root and the unit's user (habitat) does not exist here, so the
processes keep our user id and take the unit's group: the socket file's group,
which decides whether the front server may connect, comes from the group alone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, free_port, telem
from .http_layout import nginx_site, post_json, reachable_dir, wait_for_port
from .nginx import start_nginx
from .units import UNITS, gid_of, read_unit, run_unit

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
HABITAT_HTTP = Path(sys.executable).with_name("habitat-http")
DB_UNITS = ("habitat-server.service", "habitat-gunicorn.service", "habitat-scgi.service")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    # verify needs the ExecStart= binaries to exist: point them at this venv's.
    for unit in UNITS.iterdir():
        text = unit.read_text().replace("/usr/local/bin/habitat-http", str(HABITAT_HTTP))
        (tmp_path / unit.name).write_text(text)
    checked = subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
    )
    assert (checked.returncode, checked.stderr) == (0, "")


def test_a_message_server_unit_runs_beside_each_gateway_unit() -> None:
    server = read_unit("habitat-server.service")
    assert server.one("ExecStart").split()[1:] == ["server"]
    assert server.one("Restart") == "always"  # a dead server is always started again
    for name in ("habitat-gunicorn.service", "habitat-scgi.service"):
        gateway = read_unit(name)
        assert "habitat-server.service" in gateway.one("Wants", "Unit").split()
        assert "habitat-server.service" in gateway.one("After", "Unit").split()


def test_every_unit_uses_one_database_and_one_owner_for_it() -> None:
    units = [read_unit(name) for name in DB_UNITS]
    assert len({u.environment()["HABITAT_DB"] for u in units}) == 1
    assert len({u.one("User") for u in units}) == 1
    # systemd re-owns a StateDirectory= to the unit's User:Group, so every unit
    # declaring it has the same ones, and the database stays out of the
    # front server's group.
    owners = {(u.one("User"), u.one("Group")) for u in units if u.all("StateDirectory")}
    assert len(owners) == 1
    scgi = read_unit("habitat-scgi.service")
    assert scgi.all("StateDirectory") == []
    assert (scgi.one("User"), scgi.one("Group")) not in owners


def test_gunicorn_unit_is_the_upstream_of_the_http_nginx_config() -> None:
    listen = read_unit("habitat-gunicorn.socket").one("ListenStream", "Socket")
    assert listen.startswith("127.0.0.1:")  # never exposed: nginx faces the clients
    assert f"server {listen};" in (ROOT / "deploy/nginx/habitat-http.conf").read_text()
    # nginx replaces X-Forwarded-For with the client's address: one trusted hop.
    assert read_unit("habitat-gunicorn.service").environment()["HABITAT_TRUSTED_PROXIES"] == "1"


@contextmanager
def scgi_behind_nginx(gid: int, front_user: str, lib: Path) -> Iterator[tuple[int, Path]]:
    """habitat-scgi.service's command with group ``gid``, behind nginx
    (deploy/nginx/habitat.conf) whose workers run as ``front_user``.
    Yields nginx's port and the socket file."""
    unit = read_unit("habitat-scgi.service")
    with reachable_dir("habitat-run-") as run, reachable_dir("habitat-nginx-") as work:
        moves = {"/run/habitat": run, "/var/lib/habitat": lib}
        process = run_unit(unit, moves, gid, work / "scgi.log")
        try:
            sock = run / "scgi.sock"
            deadline = time.monotonic() + 20
            while not sock.exists():
                assert process.poll() is None, (work / "scgi.log").read_text()
                assert time.monotonic() < deadline, "the SCGI socket did not appear"
                time.sleep(0.05)
            port = free_port()
            site = nginx_site("habitat.conf", port, {"/run/habitat/scgi.sock": str(sock)})
            nginx = start_nginx(work, site, user=front_user)
            try:
                wait_for_port(port, nginx, work / "error.log")
                yield port, sock
            finally:
                nginx.send_signal(signal.SIGQUIT)
                nginx.wait(15)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(15)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run processes as other groups")
def test_scgi_units_group_lets_the_front_server_connect_and_the_server_archives() -> None:
    scgi = read_unit("habitat-scgi.service")
    group = scgi.one("Group")
    gid = gid_of(group)
    # Debian's nginx runs its workers as www-data:www-data.
    with reachable_dir("habitat-lib-") as lib:
        with scgi_behind_nginx(gid, "www-data", lib) as (port, sock):
            st = sock.stat()
            assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (gid, 0o660)
            status, body = post_json(port, "/habitat/message", telem())
            assert status == 200, body

        # The control: the same socket in another group, and nginx cannot connect.
        with scgi_behind_nginx(gid_of("nogroup"), "www-data", lib) as (port, _):
            status, _ = post_json(port, "/habitat/message", telem(callsign="M0DEF"))
            assert status == 502

        # habitat-server.service delivers what the gateway stored to the archive.
        server = read_unit("habitat-server.service")
        db_url = server.environment()["HABITAT_DB"].replace("/var/lib/habitat", str(lib))
        try:
            server_gid = gid_of(server.one("Group"))
        except AssertionError:
            server_gid = gid_of("nogroup")  # no habitat group on this machine
        process = run_unit(server, {"/var/lib/habitat": lib}, server_gid, lib / "server.log")
        try:
            docs = archived(db_url)
            deadline = time.monotonic() + 20
            while not docs and time.monotonic() < deadline:
                assert process.poll() is None, (lib / "server.log").read_text()
                time.sleep(0.2)
                docs = archived(db_url)
            assert [list(doc["receivers"]) for doc in docs] == [["M0ABC"]]
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0, (lib / "server.log").read_text()


def archived(db_url: str) -> list[dict[str, Any]]:
    """The payload_telemetry documents, from the real ``habitat-http archive``."""
    out = subprocess.run(
        [sys.executable, "-m", "habitat_http", "archive", "payload_telemetry", "--db", db_url],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]
