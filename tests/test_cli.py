"""The ``habitat-http messages`` command."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
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
    assert "--db must be" in result.output


def test_console_script_is_installed() -> None:
    # Installed beside the interpreter that runs the tests (the venv's bin/),
    # whether or not that directory is on PATH.
    exe = shutil.which("habitat-http", path=str(Path(sys.executable).parent))
    assert exe is not None
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "messages" in out


# --- commands that only read -------------------------------------------------------

READERS = (["status"], ["messages"], ["archive", "payload_telemetry"])


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_readers_create_no_database_file(tmp_path: Path, command: list[str]) -> None:
    url = f"sqlite:///{tmp_path}/missing.db"
    result = CliRunner().invoke(main, [*command, "--db", url])
    assert result.exit_code != 0
    assert "no habitat database" in result.output
    assert "--db" in result.output
    assert list(tmp_path.iterdir()) == []  # no file, no .lock


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_readers_create_no_schema_in_a_file_that_is_not_a_habitat_database(
    tmp_path: Path, command: list[str]
) -> None:
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    result = CliRunner().invoke(main, [*command], env={"HABITAT_DB": f"sqlite:///{other}"})
    assert result.exit_code != 0
    assert "no habitat database" in result.output and "HABITAT_DB" in result.output
    with closing(sqlite3.connect(other)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"notes"}
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert not (tmp_path / "other.db.lock").exists()


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_readers_create_no_tables_in_a_postgresql_database(pg_url: str, command: list[str]) -> None:
    import psycopg

    from .conftest import PG_ADMIN_URL

    name = f"{pg_url.rsplit('/', 1)[1]}_empty"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{pg_url.rsplit('/', 1)[0]}/{name}"
    try:
        result = CliRunner().invoke(main, [*command, "--db", url])
        assert result.exit_code != 0
        assert "no habitat database" in result.output
        with psycopg.connect(url) as conn:
            assert conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ).fetchone() == (0,)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_bad_db_option_is_named_as_the_option(tmp_path: Path) -> None:
    for command in (*READERS, ["init-db"], ["server"]):
        result = CliRunner().invoke(main, [*command, "--db", "mysql://nope"])
        assert result.exit_code != 0
        assert "--db must be" in result.output, (command, result.output)
        assert "HABITAT_DB" not in result.output


def test_readers_still_read_an_existing_database(tmp_path: Path) -> None:
    fill(tmp_path / "h.db", 1)
    before = sorted(p.name for p in tmp_path.iterdir())
    url = f"sqlite:///{tmp_path}/h.db"
    for command in READERS:
        result = CliRunner().invoke(main, [*command, "--db", url])
        # status exits 1 because no message server ever ran here; it still read.
        healthy = result.exit_code == 0 or "no message server is alive" in result.output
        assert healthy and "no habitat database" not in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        n for n in before if not n.endswith(("-wal", "-shm"))
    ]


def test_scgi_and_serve_name_a_bad_db_option_as_the_option(tmp_path: Path) -> None:
    # They open their store through the same settings as every other command.
    result = CliRunner().invoke(
        main, ["scgi", "--socket", str(tmp_path / "s.sock"), "--db", "mysql://nope"]
    )
    assert result.exit_code != 0
    assert "--db must be" in result.output and "HABITAT_DB" not in result.output
    started = subprocess.run(
        [sys.executable, "-m", "habitat_http", "serve", "--db", "mysql://nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "--db must be" in started.stderr and "HABITAT_DB" not in started.stderr


def test_the_message_server_loads_neither_gunicorn_nor_the_app(tmp_path: Path) -> None:
    # `habitat-http server`, run until SIGTERM, then the modules it had loaded:
    # the delivery loop's process carries neither the HTTP server nor the WSGI app.
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('gunicorn', 'werkzeug') or m == 'habitat_http.app')))\n"
        "from habitat_http.cli import main\n"
        "main(['server', '--db', sys.argv[1]])\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, f"sqlite:///{tmp_path}/h.db"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:  # its log: started once a sink starts
            if "starts after" in line:
                break
        process.terminate()
        out, _ = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0
    assert out.strip() == "[]"


def test_a_command_of_another_module_gets_the_settings_and_db_option() -> None:
    # As a module's command added with main.add_command would (habitat_http/cli_context.py).
    import click

    from habitat_http.cli_context import Settings, db_option, pass_settings

    @click.command()
    @db_option
    @pass_settings
    def where(settings: Settings) -> None:
        with settings.errors():
            click.echo(f"{settings.config.db_source} {settings.config.db_url}")

    group = click.Group(commands={"where": where})
    runner = CliRunner()
    assert runner.invoke(group, ["where", "--db", "sqlite:///a.db"]).output == "--db sqlite:///a.db\n"
    result = runner.invoke(where, [], env={"HABITAT_DB": "sqlite:///b.db"})
    assert result.output == "HABITAT_DB sqlite:///b.db\n"
    result = runner.invoke(where, [], env={"HABITAT_DB_TIMEOUT": "-1"})
    assert result.exit_code == 1
    assert result.output.startswith("Error: HABITAT_DB_TIMEOUT must be a positive number")
