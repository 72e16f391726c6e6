"""The archive's own migrations: a new database, one made before the archive had
them (from tests/data, made by that version of habitat_http), and a newer one."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from habitat_http.archive import open_archive
from habitat_http.archive.migrations import MIGRATIONS
from habitat_http.messages import RECEIVED_TELEM, Message
from habitat_http.store import START, CheckpointStore, SchemaTooNew, open_store

from .conftest import throwaway_pg_database

DATA = Path(__file__).parent / "data"
#: The string every receiver in the old databases reported (see tests/data/SOURCES.md).
RAW = "JCRBTE1BLTIsNTUsMTE6MzU6NTQsNTEuNzAwNzA5LDQuNjYyOTk1LDIxLDYsMzAsMjkzNCwwOCxNRSpGRDIz"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with nothing in it, not even the store's tables."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/habitat.db"
    else:
        with throwaway_pg_database() as url:
            yield url


def run_sql(url: str, script: str) -> list[Any]:
    """Run ``script`` on the database; the rows of its last statement."""
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            if ";" in script.strip().rstrip(";"):
                conn.executescript(script)
                return []
            rows = conn.execute(script).fetchall()
            conn.commit()
            return rows
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(script.encode())
        return cur.fetchall() if cur.description else []


def archive_version(url: str) -> list[Any]:
    return run_sql(url, "SELECT version FROM schema_versions WHERE component = 'archive'")


def test_a_new_database_gets_the_archive_tables_from_the_archive(empty_url: str) -> None:
    store = open_store(empty_url)
    store.initialize()  # the store's own tables only
    with pytest.raises(Exception, match="payload_telemetry"):
        run_sql(empty_url, "SELECT count(*) FROM payload_telemetry")
    open_archive(store).initialize()
    assert run_sql(empty_url, "SELECT count(*) FROM payload_telemetry") == [(0,)]
    assert archive_version(empty_url) == [(len(MIGRATIONS[store.dialect]),)]
    store.close()


def test_a_database_made_before_the_split_keeps_its_archive(empty_url: str) -> None:
    dialect = "sqlite" if empty_url.startswith("sqlite") else "postgresql"
    run_sql(empty_url, (DATA / f"before-archive-split.{dialect}.sql").read_text())
    store = open_store(empty_url)
    store.initialize()
    archive = open_archive(store)
    # Read before any migration (a read-only command): version 1 columns only.
    [unmigrated] = list(open_archive(store).documents("payload_telemetry"))
    assert unmigrated["data"] == {"_raw": RAW}
    assert open_archive(store).track("ALMA-2") == []
    # Its tables exist, but no version says so: without the detection this would
    # try to create them again and fail.
    archive.initialize()
    assert archive_version(empty_url) == [(len(MIGRATIONS[dialect]),)]
    [before] = list(archive.documents("payload_telemetry"))
    assert before == unmigrated
    assert set(before["receivers"]) == {"M0AAA", "M0BBB"}
    assert before["receivers"]["M0AAA"]["latest_listener_information"] is not None

    # The old documents go on merging with new messages.
    store.put(
        Message("M0CCC", RECEIVED_TELEM, 1_700_000_011, 1_700_000_013, {"string": RAW}, None, 1.0)
    )
    archive.apply(new_messages(store))
    [after] = list(archive.documents("payload_telemetry"))
    assert set(after["receivers"]) == {"M0AAA", "M0BBB", "M0CCC"}
    assert after["receivers"]["M0AAA"] == before["receivers"]["M0AAA"]
    assert after["estimated_time_created"] == 1_700_000_011
    assert len(list(archive.documents("listener_information"))) == 1
    archive.initialize()  # again: nothing to do
    assert archive_version(empty_url) == [(len(MIGRATIONS[dialect]),)]
    store.close()


def new_messages(store: CheckpointStore) -> list[Any]:
    return [m for _, m in store.deliverable(START, 100) if m.callsign == "M0CCC"]


def test_a_newer_archive_schema_is_refused(empty_url: str) -> None:
    store = open_store(empty_url)
    open_archive(store).initialize()
    run_sql(empty_url, "UPDATE schema_versions SET version = 99 WHERE component = 'archive'")
    with pytest.raises(SchemaTooNew, match="archive"):
        open_archive(store).initialize()
    store.close()


def test_reading_documents_creates_nothing(empty_url: str) -> None:
    store = open_store(empty_url)
    archive = open_archive(store)
    assert list(archive.documents("payload_telemetry")) == []
    with pytest.raises(Exception, match="schema_versions"):
        run_sql(empty_url, "SELECT count(*) FROM schema_versions")
    with pytest.raises(ValueError, match="unknown document type"):
        list(archive.documents("payload_configuration"))
    store.close()
