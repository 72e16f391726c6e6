"""UKHAS parser throughput on one core, in sentences per second, on real telemetry.

Every flight sentence in tests/data (17,212 from 35 flights) is parsed with the
flights' payload_configurations from tests/data/payload_configurations/, as
bytes, in a loop on one core (this process); and again in the default mode with
no configuration. Building the parser (validating and compiling the documents)
is timed apart. Each figure is the best of --repeat passes over the sentences,
by the wall clock and by the process's CPU time.

    python bench/parser.py [--sentences N] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from habitat_http.parser import Parser, build_parser, load_configuration

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests/data"


def load_sentences(limit: int | None) -> list[bytes]:
    """The flight sentences of tests/data/habitat_parsed.jsonl as bytes, in file order."""
    with open(DATA / "habitat_parsed.jsonl", encoding="utf-8") as f:
        out = [json.loads(line)["sentence"].encode("ascii") for line in f]
    return out[:limit] if limit else out


def rate(parser: Parser, sentences: list[bytes], repeat: int) -> tuple[float, float, int]:
    """Best sentences per second over *repeat* passes, by the wall clock and by this
    process's CPU time (which other processes on a shared machine do not inflate),
    and how many sentences parsed."""
    wall = cpu = float("inf")
    parsed = 0
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        parsed = sum(parser.parse(s).ok for s in sentences)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return len(sentences) / wall, len(sentences) / cpu, parsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sentences", type=int, default=None, help="use only the first N")
    ap.add_argument("--repeat", type=int, default=5, help="passes; the best is reported")
    args = ap.parse_args()

    sentences = load_sentences(args.sentences)
    start = time.perf_counter()
    documents = [
        load_configuration(json.loads(p.read_text(encoding="utf-8")))
        for p in sorted((DATA / "payload_configurations").glob("*.json"))
    ]
    parser = build_parser(documents)
    built = time.perf_counter() - start
    print(f"{len(documents)} payload_configurations validated and compiled in {built * 1e3:.1f} ms")

    for label, each in (("configured:  ", parser), ("default mode:", build_parser([]))):
        per_s, per_cpu_s, parsed = rate(each, sentences, args.repeat)
        print(
            f"{label} {per_s:10,.0f} sentences/s  ({per_cpu_s:,.0f} per CPU second;"
            f" {parsed}/{len(sentences)} parsed)"
        )


if __name__ == "__main__":
    main()
