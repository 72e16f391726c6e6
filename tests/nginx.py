"""Run Debian's nginx as a test's own process, with one site config from deploy/."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def write_conf(
    work: Path,
    site: str,
    *,
    user: str = "nobody nogroup",
    worker_connections: int = 64,
    access_log: bool = True,
) -> Path:
    """Write a minimal nginx.conf in ``work`` that includes ``site``; return its path.

    Temp files, the pid and the logs stay in ``work``. When the tests run as root
    the workers run as ``user`` (nginx's ``user`` directive: "name [group]";
    nobody by default, so the SCGI socket must be reachable by anyone), and
    ``work`` must then be reachable by that user for bodies buffered to disk.
    ``worker_connections`` bounds the connections of the one worker, client and
    upstream ones together. The benchmarks turn the access log off.
    """
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy("/etc/nginx/scgi_params", work / "scgi_params")
    (work / "habitat.conf").write_text(site)
    user = f"user {user};" if os.geteuid() == 0 else ""
    log = f"{work}/access.log" if access_log else "off"
    temps = " ".join(
        f"{kind}_temp_path {work}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = work / "nginx.conf"
    conf.write_text(
        f"{user} worker_processes 1; pid {work}/nginx.pid; error_log {work}/error.log warn;"
        f" events {{ worker_connections {worker_connections}; }}"
        f" http {{ access_log {log}; {temps} include {work}/habitat.conf; }}\n"
    )
    return conf


def nginx_command(work: Path, conf: Path, *args: str) -> list[str]:
    """nginx's command line with ``work`` as its prefix and ``conf`` as its config."""
    return [NGINX, "-p", str(work), "-c", str(conf), "-e", str(work / "error.log"), *args]


def start_nginx(
    work: Path,
    site: str,
    *,
    user: str = "nobody nogroup",
    worker_connections: int = 64,
    access_log: bool = True,
) -> subprocess.Popen[bytes]:
    """Start nginx in the foreground with ``site`` (see write_conf for the options)."""
    conf = write_conf(
        work, site, user=user, worker_connections=worker_connections, access_log=access_log
    )
    return subprocess.Popen(
        nginx_command(work, conf, "-g", "daemon off;"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
