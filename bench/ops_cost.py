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

First, because wrk's figures on a shared 2-core machine move by more than the
cost being measured, it measures the CPU time per request in one process (the
WSGI app called directly, with bench/nullstore.py's store that keeps nothing,
metrics in multiprocess mode as deployed): on against off, alternating, with
the median of ``--rounds`` rounds.
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


def cpu_per_request(setting: str, requests: int) -> float:
    """CPU seconds per POST /message of the app alone, with ``setting``."""
    import io
    import json

    from bench.nullstore import NullStore
    from habitat_http.app import create_app
    from habitat_http.config import Config

    flags = {name: value == "on" for name, value in SETTINGS[setting].items()}
    config = Config(metrics=flags["HABITAT_METRICS"], access_log=flags["HABITAT_ACCESS_LOG"],
                    prometheus_multiproc_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"])  # fmt: skip
    app = create_app(config, NullStore())
    body = json.dumps(
        {"callsign": "M0ABC", "type": "RECEIVED_TELEM", "time_created": 1700000000,
         "time_uploaded": 1700000001, "data": {"string": "JCRBTE1BLTIsNTUqMDA="}}
    ).encode()  # fmt: skip
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/message", "SERVER_NAME": "bench",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "192.0.2.1",
    }  # fmt: skip

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        assert status.startswith("200"), status

    start = time.process_time()
    for _ in range(requests):
        b"".join(app({**environ, "wsgi.input": io.BytesIO(body)}, start_response))
    return (time.process_time() - start) / requests


def cpu_child(rounds: int, requests: int) -> None:
    """Run in a child process with PROMETHEUS_MULTIPROC_DIR set before any import
    of prometheus_client, as gunicorn's deployed workers are."""
    from habitat_http.ops.accesslog import BufferedLines, access_logger

    handler = access_logger().handlers[0]
    assert isinstance(handler, BufferedLines)
    handler.stream = open(os.devnull, "w")  # noqa: SIM115  for the process's life
    costs: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(rounds):
        for setting in ("on", "off"):
            costs[setting].append(cpu_per_request(setting, requests))
    on, off = statistics.median(costs["on"]), statistics.median(costs["off"])
    print(
        f"CPU per request in one process (no storage): on {on * 1e6:.1f} µs,"
        f" off {off * 1e6:.1f} µs: logging and metrics cost {(on - off) * 1e6:.1f} µs"
        f" (medians of {rounds} rounds of {requests} requests)",
        flush=True,
    )


def main() -> None:
    if sys.argv[1:2] == ["--cpu-child"]:
        cpu_child(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100, help="messages per batch")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=20000, help="per CPU round")
    args = parser.parse_args()
    binary = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="habitat-ops-bench-") as tmp:
        work = Path(tmp)
        subprocess.run(
            [sys.executable, __file__, "--cpu-child", str(args.rounds), str(args.requests)],
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": tmp},
            check=True,
        )
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
