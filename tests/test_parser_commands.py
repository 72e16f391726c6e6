"""``habitat-http payloads add|list|show``, ``parse`` and ``reparse``, through click's
runner on a SQLite file (and ``payloads add`` once on PostgreSQL)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from habitat_http.archive import open_archive
from habitat_http.cli import main
from habitat_http.messages import RECEIVED_TELEM, TELEM, Message
from habitat_http.store import START, open_store

from .conftest import DATA

CONFIGS = DATA / "payload_configurations"
AMSTG = CONFIGS / "AMSTG.json"
GOOD = "$$AMSTG,27,08:33:27,525776815,-19651728,139,6,3,6*B707"
BAD = "$$AMSTG,27,08:33:27,525776815,-19651728,139,6,3,6*B700"


def run(db: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"HABITAT_DB": db})


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/h.db"
    assert run(url, "init-db").exit_code == 0
    return url


def write(path: Path, document: dict[str, Any]) -> str:
    path.write_text(json.dumps(document))
    return str(path)


def test_add_refuses_every_bad_file_naming_file_and_path(db: str, tmp_path: Path) -> None:
    document = json.loads(AMSTG.read_text())
    document["sentences"][0]["fields"][2]["name"] = "payload"
    bad = write(tmp_path / "bad.json", document)
    notjson = tmp_path / "notjson.json"
    notjson.write_text("{")
    result = run(db, "payloads", "add", str(AMSTG), bad, str(notjson))
    assert result.exit_code == 1
    assert f"{bad}: sentences.0.fields.2.name: " in result.output
    assert f"{notjson}: cannot read it as JSON" in result.output
    assert "nothing was stored" in result.output
    assert run(db, "payloads", "list").output == ""


def test_add_list_and_show(db: str, tmp_path: Path) -> None:
    added = run(db, "payloads", "add", str(CONFIGS))
    assert added.exit_code == 0, added.output
    assert added.output.count(": added as ") == 35
    again = run(db, "payloads", "add", str(AMSTG))
    assert "already stored" in again.output and again.exit_code == 0
    listing = run(db, "payloads", "list").output.splitlines()
    assert len(listing) == 35 and any(line.endswith("callsigns: AMSTG") for line in listing)
    shown = json.loads(run(db, "payloads", "show", "AMSTG").output)
    assert shown["name"] == "AMSTG" and len(shown["_id"]) == 32
    newer = json.loads(AMSTG.read_text())
    newer.update(name="AMSTG v2", time_created="2016-01-01T00:00:00+00:00")
    run(db, "payloads", "add", write(tmp_path / "v2.json", newer))
    assert json.loads(run(db, "payloads", "show", "AMSTG").output)["name"] == "AMSTG v2"
    missing = run(db, "payloads", "show", "NOPE")
    assert missing.exit_code == 1 and "no payload_configuration has callsign 'NOPE'" in (
        missing.output
    )
    as_json = run(db, "payloads", "list", "--json").output.splitlines()
    assert {json.loads(line)["name"] for line in as_json} >= {"AMSTG", "AMSTG v2"}


def test_add_on_postgresql(pg_url: str) -> None:
    from .conftest import pg_reset

    pg_reset(pg_url)
    assert run(pg_url, "payloads", "add", str(AMSTG)).exit_code == 0
    assert "callsigns: AMSTG" in run(pg_url, "payloads", "list").output
    assert "already stored" in run(pg_url, "payloads", "add", str(AMSTG)).output


def test_parse_with_files_prints_fields_or_the_exact_reason(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/none.db"  # not used: --payloads
    ok = run(db, "parse", "--payloads", str(AMSTG), GOOD)
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.output)
    assert (data["latitude"], data["longitude"], data["altitude"]) == (52.5776815, -1.9651728, 139)
    assert data["_parsed"] == {"payload_configuration": "AMSTG", "configuration_sentence_index": 0}
    failed = run(db, "parse", "--payloads", str(CONFIGS), GOOD, BAD)
    assert failed.exit_code == 1
    assert (
        f"cannot parse {BAD!r}: payload_configuration 'AMSTG' sentence 0: the crc16-ccitt"
        " checksum is B707, the sentence says B700" in failed.output
    )
    strict = run(db, "parse", "--payloads", str(AMSTG), "--no-default", "$$X,1,12:00:00*00")
    assert strict.exit_code == 1 and "no payload_configuration has callsign 'X'" in strict.output


def test_parse_uses_the_database_documents(db: str) -> None:
    default = run(db, "parse", "$$NEW,1,12:00:00,51.5,-0.1,100*6A6D")
    assert json.loads(default.output)["_used_default_config"] is True
    assert run(db, "parse", GOOD).exit_code == 1  # integer coordinates: not the default layout
    run(db, "payloads", "add", str(AMSTG))
    parsed = run(db, "parse", GOOD)
    assert parsed.exit_code == 0 and json.loads(parsed.output)["latitude"] == 52.5776815


def test_reparse_parses_archived_strings_again_once(db: str) -> None:
    store = open_store(db)
    for n, sentence in enumerate((GOOD, BAD, "$$OTHER,1*00")):
        data = {"string": base64.b64encode(sentence.encode()).decode()}
        store.put(Message("M0AAA", RECEIVED_TELEM, 1000 + n, 1001 + n, data, None, 1.0))
    archive = open_archive(store)
    archive.apply([m for _, m in store.deliverable(START, 100)])  # archived, never parsed
    run(db, "payloads", "add", str(AMSTG))
    first = run(db, "reparse", "--callsign", "AMSTG")
    assert first.exit_code == 0, first.output
    assert first.output.strip() == (
        "AMSTG: 2 strings parsed again, 1 did not parse; 2 new TELEM messages"
        " (0 were already stored)"
    )
    second = run(db, "reparse", "--callsign", "AMSTG")
    assert "0 new TELEM messages (2 were already stored)" in second.output
    archive.apply([m for _, m in store.deliverable(START, 100)])
    assert [p["latitude"] for p in archive.track("AMSTG")] == [52.5776815]
    assert [p["sentence"] for p in archive.problems("AMSTG")] == [BAD]
    assert sum(m.type == TELEM for _, m in store.deliverable(START, 100)) == 2
    store.close()


@pytest.mark.parametrize(
    "command", [["payloads", "list"], ["payloads", "show", "X"], ["parse", GOOD]]
)
def test_readers_create_no_database(tmp_path: Path, command: list[str]) -> None:
    result = run(f"sqlite:///{tmp_path}/missing.db", *command)
    assert result.exit_code == 1 and "no habitat database" in result.output
    assert list(tmp_path.iterdir()) == []
