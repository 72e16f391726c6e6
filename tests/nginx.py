"""Run Debian's nginx as a test's own process, with one site config from deploy/."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def start_nginx(
    work: Path, site: str, *, worker_connections: int = 64, access_log: bool = True
) -> subprocess.Popen[bytes]:
    """Write a minimal nginx.conf in ``work`` that includes ``site`` and start nginx.

    Temp files, the pid and the logs stay in ``work``; workers run as nobody when
    the tests run as root (so the SCGI socket must be reachable by anyone). The
    benchmarks ask for more connections and no access log.
    """
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy("/etc/nginx/scgi_params", work / "scgi_params")
    (work / "habitat.conf").write_text(site)
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    log = f"{work}/access.log" if access_log else "off"
    temps = " ".join(
        f"{kind}_temp_path {work}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (work / "nginx.conf").write_text(
        f"{user} worker_processes 1; pid {work}/nginx.pid; error_log {work}/error.log warn;"
        f" events {{ worker_connections {worker_connections}; }}"
        f" http {{ access_log {log}; {temps} include {work}/habitat.conf; }}\n"
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
