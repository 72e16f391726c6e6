"""Group commit sizes of habitat_http on SQLite under wrk, at each concurrency.

Runs wsgi:app under the deployed gunicorn settings (bench/gunicorn_groups.conf.py
records each worker's group sizes when it exits) with the wrk load of bench/run.py,
one fresh server per concurrency, and prints how many put() calls each commit
carried: the mean and the distribution.

    python bench/groups.py [--connections 8 64] [--duration 10] [--synchronous FULL]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run
from bench.common import BENCH, ensure_wrk, write_strings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--synchronous", default="FULL")
    args = parser.parse_args()
    wrk = ensure_wrk()
    run.CONF = BENCH / "gunicorn_groups.conf.py"
    with tempfile.TemporaryDirectory() as tmp:
        strings = write_strings(Path(tmp) / "strings.txt")
        for conns in args.connections:
            groups = Path(tmp) / f"groups-{conns}.jsonl"
            env = {
                "HABITAT_DB": f"sqlite:///{tmp}/habitat-{conns}.db",
                "HABITAT_SQLITE_SYNCHRONOUS": args.synchronous,
                "BENCH_GROUPS_FILE": str(groups),
            }
            proc, url = run.start_gunicorn("wsgi:app", args, env)
            try:
                result = run.run_wrk(wrk, url, args, strings, args.duration, connections=conns)
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
            sizes: collections.Counter[int] = collections.Counter()
            for line in groups.read_text().splitlines():
                sizes.update({int(k): v for k, v in json.loads(line).items()})
            commits = sum(sizes.values())
            puts = sum(k * v for k, v in sizes.items())
            spread = ", ".join(f"{k}: {v}" for k, v in sorted(sizes.items()))
            print(
                f"wrk -c{conns}: {result['rps']:.0f} req/s, p99 {result['p99_ms']:.2f} ms;"
                f" {commits} commits of {puts} puts, mean group {puts / max(commits, 1):.2f}"
                f" (size: commits) {spread}"
            )


if __name__ == "__main__":
    main()
