"""docs/architecture.rst renders cleanly, its module map matches the package, and
the code cites it rather than a document the repository does not have."""

from __future__ import annotations

import io
import re

import docutils.core
import docutils.writers.null

from .conftest import ROOT

ARCHITECTURE = (ROOT / "docs" / "architecture.rst").read_text(encoding="utf-8")


def test_architecture_renders_without_warnings() -> None:
    warnings = io.StringIO()
    docutils.core.publish_string(
        ARCHITECTURE,
        writer=docutils.writers.null.Writer(),
        settings_overrides={"warning_stream": warnings, "report_level": 2, "halt_level": 5},
    )
    assert warnings.getvalue() == ""


def test_the_module_map_lists_every_module_and_only_those() -> None:
    section = ARCHITECTURE.split("Module map\n----------\n", 1)[1].split("\nGuarantees\n", 1)[0]
    listed = re.findall(r"^- ``(habitat_http/[\w/]+\.py)``", section, re.MULTILINE)
    assert len(listed) == len(set(listed)), "a module is listed twice"
    tree = {str(p.relative_to(ROOT)) for p in (ROOT / "habitat_http").rglob("*.py")}
    assert set(listed) == tree, (
        f"not in the map: {sorted(tree - set(listed))}; not in the tree: "
        f"{sorted(set(listed) - tree)}"
    )


def test_every_cited_section_exists_and_no_missing_file_is_cited() -> None:
    sources = "\n".join(p.read_text() for p in (ROOT / "habitat_http").rglob("*.py"))
    assert "DESIGN.md" not in sources
    titles = set(re.findall(r"^(.+)\n-+\n", ARCHITECTURE, re.MULTILINE))
    cited = set(re.findall(r'docs/architecture\.rst,?\s+\(?"([^"]+)"', sources))
    assert cited and cited <= titles, cited - titles


def test_no_archive_code_outside_the_archive_package() -> None:
    # Document types and archive tables are named in code (SQL or a string literal)
    # only inside habitat_http/archive/ (cli.py uses the package's constant); prose
    # and method names such as Uploader.listener_telemetry may use the words.
    outside = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "habitat_http").rglob("*.py")
        if "archive" not in p.relative_to(ROOT).parts
        and re.search(
            r"(FROM|INTO|UPDATE|TABLE)\s+(payload_telemetry|listener_information|listener_telemetry)"
            r"|[\"'](payload_telemetry|listener_information|listener_telemetry)[\"']",
            p.read_text(),
        )
    ]
    assert outside == []
