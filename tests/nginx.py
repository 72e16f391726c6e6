"""Run Debian's nginx as a test's own process, with one site config from deploy/."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def start_nginx(
    work: Path, site: str, *, user: str = "nobody nogroup", worker_connections: int = 64
) -> subprocess.Popen[bytes]:
    """Write a minimal nginx.conf in ``work`` that includes ``site`` and start nginx.

    Temp files, the pid and the logs stay in ``work``. When the tests run as root
    the workers run as ``user`` (nginx's ``user`` directive: "name [group]";
    nobody by default, so the SCGI socket must be reachable by anyone), and
    ``work`` must then be reachable by that user for bodies buffered to disk.
    ``worker_connections`` bounds the connections of the one worker, client and
    upstream ones together.
    """
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy("/etc/nginx/scgi_params", work / "scgi_params")
    (work / "habitat.conf").write_text(site)
    user = f"user {user};" if os.geteuid() == 0 else ""
    temps = " ".join(
        f"{kind}_temp_path {work}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (work / "nginx.conf").write_text(
        f"{user} worker_processes 1; pid {work}/nginx.pid; error_log {work}/error.log warn;"
        f" events {{ worker_connections {worker_connections}; }}"
        f" http {{ access_log {work}/access.log; {temps} include {work}/habitat.conf; }}\n"
    )
    return subprocess.Popen(
        [
            NGINX,
            "-p",
            str(work),
            "-c",
            str(work / "nginx.conf"),
            "-e",
            str(work / "error.log"),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
