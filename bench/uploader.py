"""Uploader throughput: sentences per second one uploader process sends through one
gateway (real gunicorn, loopback, SQLite with synchronous=FULL), on real telemetry.

One run measures, each on a fresh database, until every sentence is stored:
  (a) `habitat-http upload --spool FILE` reading the sentences from a file
      (each one committed to the SQLite spool before it is queued);
  (b) `habitat-http upload` without a spool (the queue in memory);
  (c) the Uploader library in one process, memory queue, from the first
      received_telem() to close();
  (d) the Uploader library draining a spool that holds all the sentences (filled
      beforehand, with the gateway away), as after an outage.
The process start-up of (a) and (b) is included.

    python bench/uploader.py [--sentences N] [--workers 2] [--worker-class gthread]
                             [--threads 8] [--max-batch 500] [--batch-interval 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import free_port, start_gunicorn
from habitat_http.client import Uploader

ROOT = Path(__file__).resolve().parent.parent


def stored(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])


def measure(
    args: argparse.Namespace,
    work: Path,
    name: str,
    run: Callable[[str, Path], None],
    prepare: Callable[[Path], None] = lambda case: None,
) -> float:
    """Seconds for run(url, workdir) against a fresh gateway; checks every sentence arrived."""
    case = work / name
    case.mkdir()
    prepare(case)
    db = case / "habitat.db"
    proc, url = start_gunicorn("wsgi:app", args, {"HABITAT_DB": f"sqlite:///{db}"})
    try:
        start = time.perf_counter()
        run(url, case)
        elapsed = time.perf_counter() - start
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
    count = stored(db)
    if count != args.sentences:
        sys.exit(f"{name}: {count} of {args.sentences} sentences stored")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=17_256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="gthread")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--max-batch", type=int, default=500)
    parser.add_argument("--batch-interval", type=float, default=2.0)
    args = parser.parse_args()
    with open(ROOT / "tests" / "data" / "ukhas_sentences.jsonl", encoding="utf-8") as f:
        real = [json.loads(line)["sentence"] for line in f]
    lines = [real[i % len(real)] for i in range(args.sentences)]
    settings = ("--max-batch", str(args.max_batch), "--batch-interval", str(args.batch_interval))

    with tempfile.TemporaryDirectory(prefix="habitat-bench-") as tmp:
        work = Path(tmp)
        source = work / "sentences.txt"
        source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")

        def command(*extra: str) -> Callable[[str, Path], None]:
            def run(url: str, case: Path) -> None:
                cmd = [sys.executable, "-m", "habitat_http", "upload", "--url", url]
                cmd += ["--callsign", "M0BENCH", *settings, *extra, str(source)]
                spool = [a.replace("SPOOL", str(case / "spool.db")) for a in cmd]
                subprocess.run(spool, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)

            return run

        def library(url: str, case: Path) -> None:
            uploader = Uploader(
                url, "M0BENCH", max_batch=args.max_batch, batch_interval=args.batch_interval
            )
            for line in lines:
                uploader.received_telem(line)
            if not uploader.close():
                sys.exit("library: not everything was uploaded")

        def fill_spool(case: Path) -> None:
            # Its retry warnings about the absent gateway are expected here.
            logging.getLogger("habitat_http.client").setLevel(logging.ERROR)
            offline = Uploader(f"http://127.0.0.1:{free_port()}", "M0BENCH", spool=case / "s.db")
            for line in lines:
                offline.received_telem(line)
            offline.close(timeout=0)
            logging.getLogger("habitat_http.client").setLevel(logging.NOTSET)

        def drain_spool(url: str, case: Path) -> None:
            with Uploader(url, "M0BENCH", spool=case / "s.db", max_batch=args.max_batch) as up:
                if not up.flush():
                    sys.exit("drain: not everything was uploaded")

        results = [
            (
                "habitat-http upload --spool",
                measure(args, work, "spool", command("--spool", "SPOOL")),
            ),
            ("habitat-http upload, memory queue", measure(args, work, "memory", command())),
            ("Uploader library, memory queue", measure(args, work, "library", library)),
            (
                "Uploader draining a full spool",
                measure(args, work, "drain", drain_spool, fill_spool),
            ),
        ]
    print(
        f"{args.sentences} real sentences, gunicorn {args.workers} {args.worker_class} workers"
        f" x {args.threads} threads, max_batch {args.max_batch}, synchronous=FULL"
    )
    for name, seconds in results:
        print(f"{name:36s} {args.sentences / seconds:10,.0f} sentences/s ({seconds:.2f} s)")


if __name__ == "__main__":
    main()
