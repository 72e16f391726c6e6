"""The ``habitat-http messages`` command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from habitat_http.cli import main
from habitat_http.messages import Message
from habitat_http.store.sqlite import SQLiteStore

from .conftest import cli_messages


def fill(path: Path, n: int) -> list[int]:
    store = SQLiteStore(str(path))
    ids = [
        store.put(
            Message(
                f"M{i}",
                "LISTENER_INFO",
                100 + i,
                200 + i,
                {"name": f"Zoë {i}"},
                "192.0.2.1",
                200.5 + i,
            )
        ).id
        for i in range(n)
    ]
    store.close()
    return ids


def test_messages_prints_json_lines_in_id_order(tmp_path: Path) -> None:
    ids = fill(tmp_path / "h.db", 3)
    rows = cli_messages(f"sqlite:///{tmp_path}/h.db")
    assert [r["id"] for r in rows] == ids
    assert rows[0] == {
        "id": ids[0],
        "callsign": "M0",
        "type": "LISTENER_INFO",
        "time_created": 100,
        "time_uploaded": 200,
        "ip": "192.0.2.1",
        "data": {"name": "Zoë 0"},
    }
    assert list(rows[0]) == [
        "id",
        "callsign",
        "type",
        "time_created",
        "time_uploaded",
        "ip",
        "data",
    ]


def test_after_and_limit_page_across_batches(tmp_path: Path) -> None:
    ids = fill(tmp_path / "h.db", 2500)
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "messages",
            "--db",
            f"sqlite:///{tmp_path}/h.db",
            "--after",
            str(ids[10]),
            "--limit",
            "1500",
        ],
    )
    assert result.exit_code == 0, result.output
    got = [json.loads(line)["id"] for line in result.output.splitlines()]
    assert got == ids[11:1511]
    everything = runner.invoke(main, ["messages", "--db", f"sqlite:///{tmp_path}/h.db"])
    assert len(everything.output.splitlines()) == 2500


def test_db_from_environment(tmp_path: Path) -> None:
    fill(tmp_path / "h.db", 1)
    result = CliRunner().invoke(
        main, ["messages"], env={"HABITAT_DB": f"sqlite:///{tmp_path}/h.db"}
    )
    assert result.exit_code == 0 and json.loads(result.output)["callsign"] == "M0"


def test_bad_url_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["messages", "--db", "mysql://nope"])
    assert result.exit_code != 0
    assert "HABITAT_DB must be" in result.output


def test_console_script_is_installed() -> None:
    # Installed beside the interpreter that runs the tests (the venv's bin/),
    # whether or not that directory is on PATH.
    exe = shutil.which("habitat-http", path=str(Path(sys.executable).parent))
    assert exe is not None
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "messages" in out
