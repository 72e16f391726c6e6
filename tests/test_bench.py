"""The benchmarks still run (on a small input); their figures live in README.rst."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_archive_benchmark_runs() -> None:
    out = subprocess.run(
        [sys.executable, "bench/archive.py", "--sentences", "200"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "archive sink" in out and "messages/s" in out and "ratio archive / null sink" in out
    assert "parser sink" in out and "ratio parser / null sink" in out


def test_http_and_scgi_benchmarks_import_and_explain_themselves() -> None:
    for script in ("bench/run.py", "bench/scgi_run.py"):
        out = subprocess.run(
            [sys.executable, script, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert "hello-world" in out
