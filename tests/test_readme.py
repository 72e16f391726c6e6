"""README.rst is valid reStructuredText, and CI runs the test command it documents."""

from __future__ import annotations

import io
import re

import docutils.core

from .conftest import ROOT

README = (ROOT / "README.rst").read_text(encoding="utf-8")


def test_readme_renders_without_warnings() -> None:
    warnings = io.StringIO()
    docutils.core.publish_string(
        README,
        writer_name="null",
        settings_overrides={"warning_stream": warnings, "report_level": 2, "halt_level": 5},
    )
    assert warnings.getvalue() == ""


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(
        r"^    ((?:tests/install-servers && )?python3 -m pip install .*)$", README, re.MULTILINE
    )
    assert len(commands) == 2  # exactly two set-up commands: run, and test
    run, test = commands
    assert "habitat_http serve" in run and "pytest" in test
    assert test in (ROOT / ".ci" / "run").read_text()
