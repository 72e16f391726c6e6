"""Helpers the benchmark scripts share: paths, a free port, wrk, the file of real
telemetry strings that wrk posts, and nginx in front of an SCGI socket."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.nginx import start_nginx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
#: Real UKHAS telemetry (see tests/data/SOURCES.md).
SENTENCES = ROOT / "tests/data/ukhas_sentences.jsonl"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_wrk() -> str:
    """The path of wrk, installed with apt-get when missing and running as root."""
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("wrk is needed: apt-get install wrk")
    return wrk


def write_strings(path: Path) -> Path:
    """Write every real sentence as base64 text, one a line, for the wrk scripts."""
    with open(SENTENCES, encoding="utf-8") as f, path.open("w") as out:
        for line in f:
            out.write(base64.b64encode(json.loads(line)["sentence"].encode()).decode() + "\n")
    return path


def start_nginx_scgi(work: Path, sock: Path) -> tuple[subprocess.Popen[bytes], str]:
    """nginx with the shipped deploy/nginx/habitat.conf, only its port and socket
    changed, through the tests' launcher; returns it and the gateway's base URL."""
    port = free_port()
    site = (ROOT / "deploy/nginx/habitat.conf").read_text()
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    site = site.replace("/run/habitat/scgi.sock", str(sock))
    proc = start_nginx(work, site, worker_connections=1024, access_log=False)
    time.sleep(0.5)
    return proc, f"http://127.0.0.1:{port}/habitat"
