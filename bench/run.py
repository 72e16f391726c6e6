"""Gateway throughput against a hello-world WSGI app, both under the same gunicorn.

One run measures, with the same gunicorn settings and the same wrk load:
  (a) bench/hello.py, a WSGI app that reads the body and answers small JSON;
  (b) habitat_http storing every message in SQLite (synchronous=FULL by default);
  (c) for diagnosis, habitat_http with bench/nullstore.py, which stores nothing:
      the ceiling of the request path without storage;
  (d) habitat_http storing batches of POST /messages;
  (e) habitat_http on PostgreSQL (a throwaway database on --pg), single and batched;
and prints the throughputs and their ratios to (a). Every message wrk posts is a real
telemetry string from tests/data/ukhas_sentences.jsonl.

    python bench/run.py [--workers 2] [--worker-class gthread] [--threads 8]
                        [--connections 8] [--duration 10]

Needs wrk (Debian package "wrk"); it is installed with apt-get when missing and
the script runs as root.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BENCH, ROOT, ensure_wrk, free_port, write_strings


def start_gunicorn(
    app: str, args: argparse.Namespace, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"{app} did not start")


def run_wrk(
    wrk: str,
    url: str,
    args: argparse.Namespace,
    strings: Path,
    seconds: int,
    script: str = "post.lua",
    path: str = "/message",
) -> dict[str, float]:
    out = subprocess.run(
        [
            wrk,
            "-t",
            "2",
            "-c",
            str(args.connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(BENCH / script),
            url + path,
        ],
        env={
            **os.environ,
            "BENCH_STRINGS": str(strings),
            "BENCH_BATCH": str(getattr(args, "batch", 1)),
        },
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "rps": rps,
        "requests": total,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
    }


def worker_rss_mb(master: int) -> float:
    """The largest resident set of the master's worker processes, in MB."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    sizes = []
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        sizes.append(kb / 1024)
    return max(sizes)


def measure(
    wrk: str,
    app: str,
    args: argparse.Namespace,
    env: dict[str, str],
    strings: Path,
    batches: bool = False,
) -> dict[str, float]:
    proc, url = start_gunicorn(app, args, env)
    script, path = ("batch.lua", "/messages") if batches else ("post.lua", "/message")
    try:
        run_wrk(wrk, url, args, strings, 2, script, path)  # warm-up
        result = run_wrk(wrk, url, args, strings, args.duration, script, path)
        result["rss_mb"] = worker_rss_mb(proc.pid)
        return result
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


@contextlib.contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """A new database on the PostgreSQL at ``server_url``, dropped afterwards."""
    import uuid

    import psycopg

    name = f"habitat_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="gthread")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--synchronous", default="FULL")
    parser.add_argument(
        "--batch", type=int, default=100, help="messages per POST /messages in the batch run"
    )
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server for the PostgreSQL runs (a throwaway database is created "
        "there); 'none' to skip them",
    )
    args = parser.parse_args()
    wrk = ensure_wrk()

    with tempfile.TemporaryDirectory() as tmp:
        strings = write_strings(Path(tmp) / "strings.txt")
        db = Path(tmp) / "bench.db"
        hello = measure(wrk, "bench.hello:app", args, {}, strings)
        habitat = measure(
            wrk,
            "wsgi:app",
            args,
            {"HABITAT_DB": f"sqlite:///{db}", "HABITAT_SQLITE_SYNCHRONOUS": args.synchronous},
            strings,
        )
        null = measure(wrk, "bench.nullstore:app", args, {}, strings)
        batch_db = Path(tmp) / "batch.db"
        batched = measure(
            wrk,
            "wsgi:app",
            args,
            {"HABITAT_DB": f"sqlite:///{batch_db}", "HABITAT_SQLITE_SYNCHRONOUS": args.synchronous},
            strings,
            batches=True,
        )
        with closing(sqlite3.connect(db)) as conn:
            stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        pg = pg_batched = None
        if args.pg != "none":
            with throwaway_database(args.pg) as pg_url:
                pg = measure(wrk, "wsgi:app", args, {"HABITAT_DB": pg_url}, strings)
                pg_batched = measure(
                    wrk, "wsgi:app", args, {"HABITAT_DB": pg_url}, strings, batches=True
                )

    settings = (
        f"gunicorn --workers {args.workers} --worker-class {args.worker_class} "
        f"--threads {args.threads}; wrk -t2 -c{args.connections} -d{args.duration}s; "
        f"synchronous={args.synchronous}"
    )
    print(settings)
    print(f"hello-world WSGI app : {hello['rps']:9.0f} req/s  p99 {hello['p99_ms']:.2f} ms")
    print(
        f"habitat_http (SQLite): {habitat['rps']:9.0f} req/s  p99 {habitat['p99_ms']:.2f} ms"
        f"  non-2xx {habitat['non2xx']:.0f}  rows stored {stored} (incl. warm-up)"
    )
    print(f"habitat_http, no store: {null['rps']:9.0f} req/s  p99 {null['p99_ms']:.2f} ms")
    print(
        f"habitat_http POST /messages x{args.batch}: {batched['rps'] * args.batch:9.0f} "
        f"messages/s  p99 {batched['p99_ms']:.2f} ms per batch"
    )
    print(
        f"worker RSS after the runs: single {habitat['rss_mb']:.0f} MB "
        f"({habitat['requests']:.0f} messages), batch {batched['rss_mb']:.0f} MB "
        f"({batched['requests'] * args.batch:.0f} messages)"
    )
    if pg is not None and pg_batched is not None:
        print(
            f"habitat_http (PostgreSQL): {pg['rps']:9.0f} req/s  p99 {pg['p99_ms']:.2f} ms"
            f"  non-2xx {pg['non2xx']:.0f}"
        )
        print(
            f"habitat_http (PostgreSQL) POST /messages x{args.batch}: "
            f"{pg_batched['rps'] * args.batch:9.0f} messages/s"
        )
        print(
            f"ratio PostgreSQL / hello-world: {pg['rps'] / hello['rps']:.2f}; "
            f"PostgreSQL / SQLite: {pg['rps'] / habitat['rps']:.2f}"
        )
    print(f"ratio habitat_http / hello-world: {habitat['rps'] / hello['rps']:.2f}")
    print(f"ratio habitat_http without storage / hello-world: {null['rps'] / hello['rps']:.2f}")


if __name__ == "__main__":
    main()
