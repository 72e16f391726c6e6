"""The archive merges the parser's TELEM messages into payload_telemetry documents,
and answers a tracker's queries; on SQLite and on the real PostgreSQL (the
``db_url`` fixture of the contract suite)."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from habitat_http.archive import Archive, open_archive, queries
from habitat_http.archive.rules import payload_id
from habitat_http.messages import RECEIVED_TELEM, TELEM, Message
from habitat_http.store import START, CheckpointStore, open_store

SENTENCE = b"$$ALMA-2,57,11:36:19,51.700711,4.662976,14,6,31,2933,08,A*A602"
RAW = base64.b64encode(SENTENCE).decode()


def b64(sentence: bytes) -> str:
    return base64.b64encode(sentence).decode()


def key(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def received(callsign: str, t: int, raw: str = RAW) -> Message:
    return Message(callsign, RECEIVED_TELEM, t, t + 1, {"string": raw}, None, t + 1.0)


def parsed(
    t: float, raw: str = RAW, payload: str = "ALMA-2", config: str = "c1", **fields: Any
) -> Message:
    """A TELEM as the parser sink makes it for a success."""
    data = {
        "payload": payload,
        "sentence_id": 57,
        "latitude": 51.700711,
        "longitude": 4.662976,
        "altitude": 14,
        **fields,
        "_sentence": base64.b64decode(raw).decode(),
        "_protocol": "UKHAS",
        "_raw": raw,
        "_parsed": {
            "payload_configuration": config,
            "configuration_sentence_index": 0,
            "time_parsed": t,
        },
    }
    return Message(payload, TELEM, 1000, int(t), data, None, t, dedup_key=key("ok", t, raw, config))


def failed(t: float, raw: str = RAW, payload: str | None = "ALMA-2") -> Message:
    """A TELEM as the parser sink makes it for a string that did not parse."""
    error = {
        "callsign": payload,
        "reason": "payload_configuration 'c1' sentence 0: the checksum is wrong",
        "attempts": [{"configuration": "c1", "sentence_index": 0, "reason": "bad checksum"}],
        "time_parsed": t,
    }
    data = {"_raw": raw, "_parse_error": error}
    return Message(payload or "", TELEM, 1000, int(t), data, None, t, dedup_key=key("no", t, raw))


@pytest.fixture
def store(db_url: str) -> Iterator[CheckpointStore]:
    s = open_store(db_url)
    yield s
    s.close()


@pytest.fixture
def archive(store: CheckpointStore) -> Iterator[Archive]:
    a = open_archive(store)
    a.initialize()
    yield a


def deliver(store: CheckpointStore, archive: Archive, *messages: Message) -> None:
    """Store ``messages`` and merge everything not yet merged (re-merging is harmless)."""
    store.put_many(list(messages))
    archive.apply([m for _, m in store.deliverable(START, 10_000)])


def the_document(archive: Archive) -> dict[str, Any]:
    [doc] = list(archive.documents("payload_telemetry"))
    return doc


def test_parsed_fields_go_beside_raw_and_receivers(
    store: CheckpointStore, archive: Archive
) -> None:
    deliver(store, archive, received("M0AAA", 1000), received("M0BBB", 1002))
    deliver(store, archive, parsed(2000.5))
    doc = the_document(archive)
    assert doc["_id"] == payload_id(RAW)
    assert set(doc["receivers"]) == {"M0AAA", "M0BBB"}
    assert doc["estimated_time_created"] == 1001
    assert doc["data"]["_raw"] == RAW
    assert doc["data"]["latitude"] == 51.700711
    assert doc["data"]["_parsed"]["payload_configuration"] == "c1"
    assert doc["data"]["_sentence"] == SENTENCE.decode()


def test_a_telem_before_its_receivers_makes_the_document(
    store: CheckpointStore, archive: Archive
) -> None:
    deliver(store, archive, parsed(2000))
    doc = the_document(archive)
    assert doc["receivers"] == {} and doc["estimated_time_created"] == 1000
    assert doc["data"]["payload"] == "ALMA-2"
    deliver(store, archive, received("M0AAA", 1010), received("M0BBB", 1012))
    doc = the_document(archive)
    assert set(doc["receivers"]) == {"M0AAA", "M0BBB"}
    assert doc["estimated_time_created"] == 1011
    assert doc["data"]["altitude"] == 14


def test_a_success_replaces_a_parse_error_and_not_the_reverse(
    db_url: str, store: CheckpointStore, archive: Archive
) -> None:
    deliver(store, archive, received("M0AAA", 1000), failed(1500))
    doc = the_document(archive)
    assert doc["data"]["_parse_error"]["reason"].endswith("the checksum is wrong")
    assert "latitude" not in doc["data"]
    assert archive.problems("ALMA-2")[0]["_parse_error"] == doc["data"]["_parse_error"]
    deliver(store, archive, parsed(1600))
    doc = the_document(archive)
    assert "_parse_error" not in doc["data"] and doc["data"]["latitude"] == 51.700711
    assert archive.problems("ALMA-2") == []
    deliver(store, archive, failed(1700))  # a later failure does not hide the position
    assert the_document(archive) == doc


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1)])
def test_the_kept_parse_does_not_depend_on_arrival_order(
    db_url: str, order: tuple[int, ...]
) -> None:
    messages = [
        received("M0AAA", 1000),
        failed(1500),
        parsed(1600, config="old"),
        parsed(1700, config="new"),
    ]
    store = open_store(db_url)
    archive = open_archive(store)
    for i in order:
        deliver(store, archive, messages[i])
    doc = the_document(archive)
    store.close()
    assert doc["data"]["_parsed"]["payload_configuration"] == "new"
    assert set(doc["receivers"]) == {"M0AAA"} and doc["estimated_time_created"] == 1000


def test_merging_a_telem_again_changes_nothing(store: CheckpointStore, archive: Archive) -> None:
    deliver(store, archive, received("M0AAA", 1000), parsed(1600), failed(1700))
    first = the_document(archive)
    batch = [m for _, m in store.deliverable(START, 100)]
    archive.apply(batch)
    archive.apply(list(reversed(batch)))
    assert the_document(archive) == first


def test_queries_for_a_tracker(store: CheckpointStore, archive: Archive) -> None:
    strings = [b64(f"$$ALMA-2,{n},x*00".encode()) for n in range(5)]
    other = b64(b"$$OTHER,1,x*00")
    for n, raw in enumerate(strings):
        deliver(store, archive, received("M0AAA", 1000 + 10 * n, raw))
    deliver(
        store,
        archive,
        *(parsed(2000 + n, raw, latitude=50.0 + n) for n, raw in enumerate(strings[:3])),
        parsed(2003, strings[3], _fix_invalid=True),  # kept, but not a position
        failed(2004, strings[4]),
        received("M0BBB", 5000, other),
        parsed(2005, other, payload="OTHER"),
    )
    assert archive.payloads_since(1000) == [
        {
            "payload": "OTHER",
            "strings": 1,
            "parse_failures": 0,
            "first_heard": 5000,
            "last_heard": 5000,
            "max_altitude": 14,
            "positions": 1,
        },
        {
            "payload": "ALMA-2",
            "strings": 5,
            "parse_failures": 1,
            "first_heard": 1000,
            "last_heard": 1040,
            "max_altitude": 14,
            "positions": 3,
        },
    ]
    assert [p["payload"] for p in archive.payloads_since(1041)] == ["OTHER"]
    track = archive.track("ALMA-2")
    assert [(p["estimated_time_created"], p["latitude"]) for p in track] == [
        (1000, 50.0),
        (1010, 51.0),
        (1020, 52.0),
    ]
    assert track[0]["longitude"] == 4.662976 and track[0]["altitude"] == 14
    assert track[0]["data"]["sentence_id"] == 57 and "_raw" not in track[0]["data"]
    assert archive.track("ALMA-2", since=1010) == track[1:]
    page = archive.track("ALMA-2", limit=1)
    assert page == track[:1]
    assert archive.track("ALMA-2", limit=5, after=page[0]["_id"]) == track[1:]
    with pytest.raises(ValueError, match="no payload_telemetry document"):
        archive.track("ALMA-2", after="nope")
    [problem] = archive.problems("ALMA-2")
    assert problem["_raw"] == strings[4] and problem["sentence"] == "$$ALMA-2,4,x*00"
    assert problem["receivers"] == ["M0AAA"]
    assert problem["_parse_error"]["attempts"][0]["configuration"] == "c1"
    assert archive.problems("OTHER") == []


def test_strings_of_a_payload_include_those_never_parsed(
    store: CheckpointStore, archive: Archive
) -> None:
    seen, unseen, elsewhere = (b64(s) for s in (b"$$ALMA-2,1*00", b"$$$ALMA-2,2*00", b"$$X,3*00"))
    deliver(
        store,
        archive,
        received("M0AAA", 1000, seen),
        received("M0AAA", 1010, unseen),
        received("M0AAA", 1020, elsewhere),
        failed(2000, seen),
    )
    assert sorted(archive.strings_of("ALMA-2")) == sorted([(seen, 1000), (unseen, 1010)])
    assert list(archive.strings_of("X")) == [(elsewhere, 1020)]


@pytest.mark.parametrize(
    ("sql", "params", "index"),
    [
        (queries.PAYLOADS_SINCE, (1000, 10, 0), "payload_telemetry_time"),
        (queries.TRACK, ("A", 0, 0, 0, "", 10), "payload_telemetry_payload"),
        (queries.PROBLEMS, ("A", 2**62, 2**62, "", 10), "payload_telemetry_problems"),
    ],
)
def test_tracker_queries_use_their_index(
    db_url: str, archive: Archive, sql: str, params: tuple[Any, ...], index: str
) -> None:
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    else:
        import psycopg

        with psycopg.connect(db_url) as conn:
            conn.execute("SET enable_seqscan = off")  # an empty table: ask for the plan
            rows = conn.execute(("EXPLAIN " + sql.replace("?", "%s")).encode(), params)
            plan = " ".join(r[0] for r in rows)
    assert index in plan
