"""The code base stays clean: ruff on everything, mypy --strict on the package."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_ruff() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--output-format",
            "concise",
            "habitat_http",
            "tests",
            "bench",
            "deploy",
            "wsgi.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
