"""Gateway throughput against three baselines, all under the same gunicorn, in one run.

Every server runs under bench/gunicorn.conf.py (the deployed gunicorn settings of
deploy/gunicorn.conf.py: gthread workers, the gateway's access line on stdout,
which goes to /dev/null here, and multiprocess metrics) and gets
the same wrk load: real telemetry strings from tests/data/ukhas_sentences.jsonl, a
different message for every request (bench/post.lua). At each wrk concurrency
(--connections, default 8 and 64) it measures:

  hello          bench/hello.py: a hello-world WSGI app that reads the body and
                 answers 200 (the server's ceiling);
  durable-hello  bench/durable_hello.py: reads the body, appends it to a file and
                 fdatasyncs (the floor of one durable write per request);
  naive          bench/naive.py: werkzeug Request + get_json + one SQLite INSERT and
                 COMMIT per request, WAL, synchronous=FULL (what a user would write);
  habitat_http   wsgi:app as deployed, SQLite, synchronous=FULL (--synchronous);
  no-op store    diagnostic: habitat_http with bench/nullstore.py, which stores
                 nothing (the request path alone; never deploy it);

and prints req/s, p50 and p99, and habitat_http's ratios to hello, durable-hello and
naive. Then it posts batches of --batch real sentences to POST /messages
(messages/s stored), and reads the largest worker RSS of habitat_http after at
least --rss-messages single messages and after the batches.

    python bench/run.py [--connections 8 64] [--duration 10] [--batch 100]
                        [--workers N] [--threads N] [--pg postgresql://...]

Needs wrk (Debian package "wrk"); it is installed with apt-get when missing and
the script runs as root.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BENCH, ROOT, ensure_wrk, free_port, write_strings

CONF = BENCH / "gunicorn.conf.py"


def start_gunicorn(
    app: str, args: argparse.Namespace, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(CONF), "--bind", f"127.0.0.1:{port}"]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if getattr(args, "worker_class", None):
        cmd += ["--worker-class", args.worker_class]
    proc = subprocess.Popen(  # the access lines go nowhere, for every server alike
        [*cmd, app],
        cwd=ROOT,
        env={**os.environ, **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/", timeout=1).read()
            return proc, url
        except urllib.error.HTTPError:  # an answer, if not a 200: it is up
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"{app} did not start")


_SCALE = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency(out: str, percent: str) -> float:
    found = re.search(rf"\b{percent}%\s+([\d.]+)(us|ms|s)\b", out)
    return float(found.group(1)) * _SCALE[found.group(2)] if found else math.nan


def run_wrk(
    wrk: str,
    url: str,
    args: argparse.Namespace,
    strings: Path,
    seconds: int,
    script: str = "post.lua",
    path: str = "/message",
    connections: int | None = None,
) -> dict[str, float]:
    """One wrk run; req/s, requests, non-2xx answers, p50 and p99 in ms."""
    conns = connections if connections is not None else args.connections
    if isinstance(conns, list):
        conns = conns[0]
    out = subprocess.run(
        [
            wrk,
            "-t",
            "2",
            "-c",
            str(conns),
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
    return {
        "rps": rps,
        "requests": total,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "p50_ms": _latency(out, "50"),
        "p99_ms": _latency(out, "99"),
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


@dataclass
class Server:
    """One server's results: by wrk concurrency, and its RSS after the runs."""

    name: str
    runs: dict[int, dict[str, float]] = field(default_factory=dict)
    messages: int = 0
    rss_mb: float = math.nan


def measure(
    wrk: str,
    name: str,
    app: str,
    args: argparse.Namespace,
    env: dict[str, str],
    strings: Path,
    *,
    batches: bool = False,
    connections: list[int] | None = None,
    rss_after: int = 0,
) -> Server:
    """Start ``app``, warm it up, run wrk at each concurrency, then (with
    ``rss_after``) keep posting until that many messages went in, and read the RSS."""
    proc, url = start_gunicorn(app, args, env)
    script, path = ("batch.lua", "/messages") if batches else ("post.lua", "/message")
    per_request = args.batch if batches else 1
    server = Server(name)
    try:
        run_wrk(wrk, url, args, strings, 2, script, path, connections=8)  # warm-up
        for conns in connections or args.connections:
            result = run_wrk(wrk, url, args, strings, args.duration, script, path, conns)
            server.runs[conns] = result
            server.messages += int(result["requests"]) * per_request
        while rss_after and server.messages < rss_after:
            result = run_wrk(wrk, url, args, strings, 5, script, path, connections=8)
            server.messages += int(result["requests"]) * per_request
        server.rss_mb = worker_rss_mb(proc.pid)
        return server
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


def _row(server: Server, conns: int) -> str:
    r = server.runs[conns]
    bad = f"  non-2xx {r['non2xx']:.0f}" if r["non2xx"] else ""
    return (
        f"  {server.name:<22} {r['rps']:9.0f} req/s  p50 {r['p50_ms']:6.2f} ms"
        f"  p99 {r['p99_ms']:6.2f} ms{bad}"
    )


def report(servers: dict[str, Server], batched: Server, args: argparse.Namespace) -> None:
    hab = servers["habitat_http"]
    for conns in args.connections:
        print(f"wrk -t2 -c{conns} -d{args.duration}s, POST /message, every message new:")
        for server in servers.values():
            print(_row(server, conns))
        rps = hab.runs[conns]["rps"]
        ratios = ", ".join(
            f"{rps / servers[b].runs[conns]['rps']:.2f} x {b}"
            for b in ("hello", "durable-hello", "naive")
        )
        print(f"  habitat_http = {ratios}")
        if "no-op store" in servers:
            null = servers["no-op store"].runs[conns]["rps"]
            print(f"  no-op store = {null / servers['hello'].runs[conns]['rps']:.2f} x hello")
    for conns, r in batched.runs.items():
        print(
            f"POST /messages x{args.batch}, wrk -c{conns}: {r['rps'] * args.batch:9.0f} messages/s"
            f"  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms per batch"
            + (f"  non-2xx {r['non2xx']:.0f}" if r["non2xx"] else "")
        )
    print(
        f"habitat_http worker RSS: {hab.rss_mb:.0f} MB after {hab.messages} single messages,"
        f" {batched.rss_mb:.0f} MB after {batched.messages} batched messages"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=0, help="default: as deployed")
    parser.add_argument("--threads", type=int, default=0, help="default: as deployed")
    parser.add_argument("--worker-class", default="", help="default: as deployed (gthread)")
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--synchronous", default="FULL")
    parser.add_argument(
        "--batch", type=int, default=100, help="messages per POST /messages in the batch run"
    )
    parser.add_argument("--rss-messages", type=int, default=100_000)
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        help="measure only these servers (hello durable-hello naive habitat_http no-op)",
    )
    parser.add_argument(
        "--pg",
        default="none",
        help="a PostgreSQL server URL to also measure habitat_http on (a throwaway "
        "database is created there); default none",
    )
    args = parser.parse_args()
    wrk = ensure_wrk()

    with tempfile.TemporaryDirectory() as tmp:
        strings = write_strings(Path(tmp) / "strings.txt")
        naive_db = Path(tmp) / "naive.db"
        from bench.naive import create

        create(str(naive_db))
        habitat_env = {
            "HABITAT_DB": f"sqlite:///{tmp}/habitat.db",
            "HABITAT_SQLITE_SYNCHRONOUS": args.synchronous,
        }
        plan = [
            ("hello", "bench.hello:app", {}),
            ("durable-hello", "bench.durable_hello:app", {"BENCH_DURABLE_FILE": f"{tmp}/d.log"}),
            ("naive", "bench.naive:app", {"BENCH_NAIVE_DB": str(naive_db)}),
            ("habitat_http", "wsgi:app", habitat_env),
            ("no-op store", "bench.nullstore:app", {}),
        ]
        servers = {
            name: measure(
                wrk,
                name,
                app,
                args,
                env,
                strings,
                rss_after=args.rss_messages if name == "habitat_http" else 0,
            )
            for name, app, env in plan
            if not args.only or name.split()[0] in args.only
        }
        batched = measure(
            wrk,
            "habitat_http batches",
            "wsgi:app",
            args,
            {**habitat_env, "HABITAT_DB": f"sqlite:///{tmp}/batch.db"},
            strings,
            batches=True,
            connections=[8],
        )
        if "habitat_http" in servers:
            with closing(sqlite3.connect(f"{tmp}/habitat.db")) as conn:
                stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        pg = None
        if args.pg != "none":
            with throwaway_database(args.pg) as pg_url:
                pg = measure(
                    wrk,
                    "habitat_http PostgreSQL",
                    "wsgi:app",
                    args,
                    {"HABITAT_DB": pg_url},
                    strings,
                )

    print(
        f"gunicorn -c bench/gunicorn.conf.py (deployed settings)"
        f"{f' --workers {args.workers}' if args.workers else ''}"
        f"{f' --threads {args.threads}' if args.threads else ''}; "
        f"synchronous={args.synchronous}"
    )
    if {"hello", "durable-hello", "naive", "habitat_http"} <= servers.keys():
        report(servers, batched, args)
        print(f"rows stored by habitat_http: {stored} (warm-up included)")
    else:
        for conns in args.connections:
            for server in servers.values():
                print(f"-c{conns}" + _row(server, conns))
    if pg is not None:
        for conns in args.connections:
            print(f"-c{conns}" + _row(pg, conns))


if __name__ == "__main__":
    main()
