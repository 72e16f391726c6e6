"""What the access log line and the metrics cost: the gateway with both on against
the same gateway with both off (HABITAT_ACCESS_LOG=off, HABITAT_METRICS=off),
in one run, on single messages and on batches.

Each setting runs under ``gunicorn -c deploy/gunicorn.conf.py`` (its worker count
and threads), on its own SQLite file with synchronous=FULL, with the same wrk
load of real, unique telemetry (bench/post.lua, bench/batch.lua). The two
settings alternate ``--rounds`` times so that the machine's drift hits both, and
the ratio on/off is reported per round and as the median.

    python bench/ops_cost.py [--rounds 3] [--duration 8] [--connections 8]
                             [--batch 100] [--workers 2]

The access log goes to /dev/null, as a file or a pipe to a log shipper would
take it, so its formatting and writing are counted but no terminal is.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ensure_wrk, free_port, write_strings

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SETTINGS = {
    "on": {"HABITAT_ACCESS_LOG": "on", "HABITAT_METRICS": "on"},
    "off": {"HABITAT_ACCESS_LOG": "off", "HABITAT_METRICS": "off"},
}


def start(work: Path, setting: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """gunicorn with the deploy config and ``setting`` on a fresh database."""
    port = free_port()
    env = {
        **os.environ,
        **SETTINGS[setting],
        "HABITAT_DB": f"sqlite:///{work}/{setting}-{port}.db",
        "PROMETHEUS_MULTIPROC_DIR": str(work / f"metrics-{port}"),
    }
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py",
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/health", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("gunicorn did not start")


def wrk(binary: str, url: str, args: argparse.Namespace, strings: Path, batch: bool) -> float:
    """wrk's requests per second (times the batch size for batches): messages/s."""
    script, path = ("batch.lua", "/messages") if batch else ("post.lua", "/message")
    out = subprocess.run(
        [
            binary, "-t", "2", "-c", str(args.connections), "-d", f"{args.duration}s",
            "-s", str(BENCH / script), url + path,
        ],
        env={**os.environ, "BENCH_STRINGS": str(strings), "BENCH_BATCH": str(args.batch)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # fmt: skip
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        sys.exit(f"some requests failed:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rps * (args.batch if batch else 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100, help="messages per batch")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    binary = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="habitat-ops-bench-") as tmp:
        work = Path(tmp)
        strings = write_strings(work / "strings.txt")
        for batch in (False, True):
            kind = f"batches of {args.batch}" if batch else "single messages"
            ratios = []
            for round_no in range(1, args.rounds + 1):
                rates = {}
                for setting in ("on", "off"):
                    proc, url = start(work, setting, args.workers)
                    try:
                        wrk(binary, url, argparse.Namespace(**{**vars(args), "duration": 2}),
                            strings, batch)  # fmt: skip
                        rates[setting] = wrk(binary, url, args, strings, batch)
                    finally:
                        os.killpg(proc.pid, signal.SIGTERM)
                        proc.wait(30)
                ratios.append(rates["on"] / rates["off"])
                print(
                    f"{kind}, round {round_no}: on {rates['on']:,.0f} messages/s,"
                    f" off {rates['off']:,.0f} messages/s, ratio on/off {ratios[-1]:.3f}",
                    flush=True,
                )
            print(
                f"{kind}: median ratio on/off {statistics.median(ratios):.3f}"
                f" (range {min(ratios):.3f}-{max(ratios):.3f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
