"""The archive's read queries for the tracker page (habitat_http.tracker): a
payload's latest positions, paged problems and the listeners heard, on SQLite and
on the real PostgreSQL; and the query plan of every tracker query on both backends
(EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL) names its index."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from habitat_http.archive import Archive, queries
from habitat_http.messages import LISTENER_INFO, LISTENER_TELEM, Message

from .test_archive_parsed import archive, b64, deliver, failed, parsed, received, store

__all__ = ["archive", "store"]  # fixtures, imported for pytest


def listener(callsign: str, kind: str, t: int, **data: Any) -> Message:
    return Message(callsign, kind, t, t + 1, data, None, t + 1.0)


def test_recent_positions_newest_first_with_their_receivers(store: Any, archive: Archive) -> None:
    strings = [b64(f"$$ALMA-2,{n},x*00".encode()) for n in range(4)]
    for n, raw in enumerate(strings):
        deliver(store, archive, received("M0AAA", 1000 + 10 * n, raw))
    deliver(store, archive, received("M0BBB", 1031, strings[3]))
    deliver(
        store,
        archive,
        *(
            parsed(2000 + n, raw, latitude=50.0 + n, altitude=100 * n)
            for n, raw in enumerate(strings[:3])
        ),
        parsed(2003, strings[3], latitude=53.0, altitude=250),
    )
    recent = archive.recent("ALMA-2", limit=2)
    assert [p["latitude"] for p in recent] == [53.0, 52.0]
    assert sorted(recent[0]["receivers"]) == ["M0AAA", "M0BBB"]
    assert recent[0]["receivers"]["M0BBB"]["time_created"] == 1031
    assert archive.recent("NOBODY") == []
    [summary] = archive.payloads_since(0)
    assert summary["max_altitude"] == 250 and summary["positions"] == 4
    assert archive.payloads_since(0, limit=1, offset=1) == []


def test_problems_are_paged_newest_first(store: Any, archive: Archive) -> None:
    strings = [b64(f"$$ALMA-2,{n},broken".encode()) for n in range(5)]
    for n, raw in enumerate(strings):
        deliver(store, archive, received("M0AAA", 1000 + n, raw), failed(2000 + n, raw))
    first = archive.problems("ALMA-2", limit=2)
    assert [p["estimated_time_created"] for p in first] == [1004, 1003]
    rest = archive.problems("ALMA-2", limit=10, after=first[-1]["_id"])
    assert [p["estimated_time_created"] for p in rest] == [1002, 1001, 1000]
    with pytest.raises(ValueError, match="no payload_telemetry document"):
        archive.problems("ALMA-2", after="nope")


def test_listeners_since_with_their_latest_documents_and_strings(
    store: Any, archive: Archive
) -> None:
    one, two = b64(b"$$ALMA-2,1,x*00"), b64(b"$$ALMA-2,2,x*00")
    deliver(
        store,
        archive,
        listener("M0AAA", LISTENER_INFO, 900, name="Old"),
        listener("M0AAA", LISTENER_INFO, 950, name="Anne", radio="FT-817"),
        listener("M0AAA", LISTENER_TELEM, 960, latitude=52.0, longitude=0.1, altitude=10),
        received("M0AAA", 1000, one),
        received("M0AAA", 1010, two),
        received("M0BBB", 1011, two),
        listener("M0CCC", LISTENER_TELEM, 1500, latitude=51.0, longitude=-1.0, altitude=5),
        listener("M0OLD", LISTENER_INFO, 100, name="long ago"),
    )
    listeners = archive.listeners_since(1000)
    assert [entry["callsign"] for entry in listeners] == ["M0AAA", "M0BBB", "M0CCC"]
    anne, bob, carl = listeners
    assert anne["strings"] == 2 and bob["strings"] == 1 and carl["strings"] == 0
    assert anne["information"]["data"] == {"name": "Anne", "radio": "FT-817"}
    assert anne["telemetry"]["data"]["latitude"] == 52.0
    assert bob["information"] is None and bob["telemetry"] is None
    assert carl["telemetry"]["time_created"] == 1500
    assert [e["callsign"] for e in archive.listeners_since(1000, limit=1, after="M0AAA")] == [
        "M0BBB"
    ]
    assert [e["callsign"] for e in archive.listeners_since(0)][-1] == "M0OLD"


def plan(db_url: str, sql: str, params: tuple[Any, ...]) -> str:
    """The backend's query plan as one line of text."""
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            return " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    import psycopg

    with psycopg.connect(db_url) as conn:
        conn.execute("SET enable_seqscan = off")  # tiny tables: ask for the indexed plan
        rows = conn.execute(("EXPLAIN " + sql.replace("?", "%s")).encode(), params)
        return " ".join(r[0] for r in rows)


TRACKER_QUERIES = [
    ("payloads", queries.PAYLOADS_SINCE, (1000, 10, 0), "payload_telemetry_time"),
    ("track", queries.TRACK, ("A", 0, 0, 0, "", 10), "payload_telemetry_payload"),
    ("recent", queries.RECENT, ("A", 10), "payload_telemetry_payload"),
    ("problems", queries.PROBLEMS, ("A", 2**62, 2**62, "", 10), "payload_telemetry_problems"),
    ("cursor", queries.CURSOR, ("x",), "payload_telemetry"),
    *(
        (f"active {table}", sql, (1000,), f"{table}_time")
        for table, sql in queries.LISTENERS_ACTIVE.items()
    ),
    *(
        (f"latest {table}", sql, ("M0AAA",), f"{table}_latest")
        for table, sql in queries.LATEST_LISTENER.items()
    ),
]


@pytest.mark.parametrize(
    ("sql", "params", "index"),
    [pytest.param(sql, params, index, id=name) for name, sql, params, index in TRACKER_QUERIES],
)
def test_every_tracker_query_uses_its_index(
    db_url: str, archive: Archive, sql: str, params: tuple[Any, ...], index: str
) -> None:
    text = plan(db_url, sql, params)
    assert index in text, text
    assert "SCAN payload_telemetry " not in text + " " and "Seq Scan" not in text


def test_listener_strings_scan_only_the_window(db_url: str, archive: Archive) -> None:
    dialect = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    text = plan(db_url, queries.LISTENER_STRINGS[dialect], (1000,))
    assert "payload_telemetry_time" in text, text
    assert "Seq Scan on payload_telemetry" not in text
