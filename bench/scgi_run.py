"""SCGI throughput: nginx -> flup serving habitat_http, against nginx -> flup serving
a hello-world app, in one run, with the same nginx, flup and wrk settings.

    python bench/scgi_run.py [--threads 16] [--connections 8] [--duration 10]

nginx uses the shipped deploy/nginx/habitat.conf with only the port and socket
changed. Needs nginx and wrk (Debian packages); both are installed with apt-get
when missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, ensure_wrk, start_nginx_scgi, write_strings
from bench.run import run_wrk


def start_scgi(cmd: list[str], sock: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env})
    for _ in range(200):
        if sock.exists():
            return proc
        time.sleep(0.05)
    proc.kill()
    sys.exit(f"{' '.join(cmd)} did not start")


def measure(
    cmd: list[str], env: dict[str, str], args: argparse.Namespace, strings: Path, wrk: str
) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="habitat-bench-"))
    work.chmod(0o755)  # nginx workers run as nobody and must reach the socket
    sock = work / "scgi.sock"
    scgi = start_scgi([*cmd, str(sock)], sock, env)
    nginx, url = start_nginx_scgi(work, sock)
    try:
        run_wrk(wrk, url, args, strings, 2)  # warm-up
        return run_wrk(wrk, url, args, strings, args.duration)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        scgi.send_signal(signal.SIGTERM)
        nginx.wait(30)
        scgi.wait(30)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    wrk = ensure_wrk()
    if not shutil.which("nginx"):
        subprocess.run([str(ROOT / "tests/install-servers")], check=True)

    with tempfile.TemporaryDirectory() as tmp:
        strings = write_strings(Path(tmp) / "strings.txt")
        db = Path(tmp) / "bench.db"
        threads = ["--threads", str(args.threads)]
        hello = measure(
            [sys.executable, "-m", "bench.scgi_serve", "bench.hello:app", *threads],
            {},
            args,
            strings,
            wrk,
        )
        habitat = measure(
            [
                sys.executable,
                "-m",
                "habitat_http",
                "scgi",
                "--prefix",
                "/habitat",
                "--mode",
                "0666",
                *threads,
                "--socket",
            ],
            {"HABITAT_DB": f"sqlite:///{db}"},
            args,
            strings,
            wrk,
        )
        with closing(sqlite3.connect(db)) as conn:
            stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]

    print(
        f"nginx -> flup SCGI ({args.threads} threads); wrk -t2 -c{args.connections} "
        f"-d{args.duration}s; synchronous=FULL"
    )
    print(
        f"hello-world WSGI app : {hello['rps']:9.0f} req/s  p99 {hello['p99_ms']:.2f} ms"
        f"  non-2xx {hello['non2xx']:.0f}"
    )
    print(
        f"habitat_http (SQLite): {habitat['rps']:9.0f} req/s  p99 {habitat['p99_ms']:.2f} ms"
        f"  non-2xx {habitat['non2xx']:.0f}  rows stored {stored} (incl. warm-up)"
    )
    print(f"ratio habitat_http / hello-world: {habitat['rps'] / hello['rps']:.2f}")


if __name__ == "__main__":
    main()
