"""The parser benchmark still runs (on a small input); its figures go in the report."""

from __future__ import annotations

import re
import subprocess
import sys

from .conftest import ROOT


def test_parser_benchmark_runs_and_parses_every_configured_sentence() -> None:
    out = subprocess.run(
        [sys.executable, "bench/parser.py", "--sentences", "300", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "35 payload_configurations validated" in out
    configured = r"configured: +[\d,]+ sentences/s  \([\d,]+ per CPU second; 300/300 parsed\)"
    assert re.search(configured, out), out
    assert re.search(r"default mode: +[\d,]+ sentences/s", out), out
