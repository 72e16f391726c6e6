"""README.rst is valid reStructuredText, and CI runs the test command it documents."""

from __future__ import annotations

import io
import re

import docutils.core
import docutils.writers.null

from .conftest import ROOT

README = (ROOT / "README.rst").read_text(encoding="utf-8")


def test_readme_renders_without_warnings() -> None:
    warnings = io.StringIO()
    docutils.core.publish_string(
        README,
        # A Writer instance, not writer_name: that argument is deprecated in
        # docutils 0.22+ (a warning, so an error here) and a name alone fails before.
        writer=docutils.writers.null.Writer(),
        settings_overrides={"warning_stream": warnings, "report_level": 2, "halt_level": 5},
    )
    assert warnings.getvalue() == ""


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(
        r"^    ((?:tests/install-servers && )?python3 -m venv .*pip install .*)$",
        README,
        re.MULTILINE,
    )
    assert len(commands) == 2  # exactly two set-up commands: run, and test
    run, test = commands
    assert "habitat_http serve" in run and "pytest" in test
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci
    # Both install into a fresh virtual environment inside the clone, so nothing
    # the machine happens to have installed can stand in for a requirement.
    for command in (run, test):
        assert "python3 -m venv .venv && . .venv/bin/activate && " in command
    assert "rm -rf .venv" in ci
