"""The archive sink's documents: merging receivers, versions, latest ids, idempotency."""

from __future__ import annotations

import base64
import hashlib
import statistics
from pathlib import Path
from typing import Any

import pytest

from habitat_http.archive.rules import estimate_time_created
from habitat_http.archive.sqlite import SQLiteArchive
from habitat_http.messages import LISTENER_INFO, LISTENER_TELEM, RECEIVED_TELEM, Message
from habitat_http.store.sqlite import SQLiteStore

RAW = base64.b64encode(b"$$ALMA-2,55,11:35:54,51.700709,4.662995,21,6,30,2934,08,ME*FD23").decode()


def msg(callsign: str, type_: str, t: int, data: dict[str, Any] | None = None) -> Message:
    default = {
        RECEIVED_TELEM: {"string": RAW},
        LISTENER_INFO: {"name": "x"},
        LISTENER_TELEM: {
            "latitude": 1.0,
            "longitude": 2.0,
            "altitude": 3,
            "time": {"hour": 1, "minute": 2, "second": 3},
        },
    }[type_]
    return Message(
        callsign, type_, t, t + 2, default if data is None else data, "192.0.2.9", t + 2.5
    )


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = SQLiteStore(str(tmp_path / "h.db"))
    yield s
    s.close()


def stored(store: SQLiteStore, messages: list[Message]) -> list[Message]:
    store.put_many(messages)
    return store.read_after(0)


def docs(archive: SQLiteArchive, kind: str) -> list[dict[str, Any]]:
    return list(archive.documents(kind))


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([100], 100),
        ([100, 104], 102),  # both exactly one deviation away: kept
        ([10, 11, 12, 90], 11),  # the late outlier is dropped
        ([1000, 1001, 1002, 1003, 1004, 1500], 1002),
    ],
)
def test_estimate_time_created(times: list[int], expected: int) -> None:
    mean, sd = statistics.fmean(times), statistics.pstdev(times)
    kept = [t for t in times if abs(t - mean) <= sd]
    assert round(statistics.fmean(kept)) == expected  # the rule, computed independently
    assert estimate_time_created(times) == expected


def test_receivers_are_merged_into_one_document(store: SQLiteStore) -> None:
    archive = SQLiteArchive(store)
    times = {"M0AAA": 1000, "M0BBB": 1001, "M0CCC": 1003, "M0DDD": 1002, "M0EEE": 1090}
    batch = stored(store, [msg(cs, RECEIVED_TELEM, t) for cs, t in times.items()])
    archive.apply(batch)
    [doc] = docs(archive, "payload_telemetry")
    assert doc["_id"] == hashlib.sha256(RAW.encode()).hexdigest()
    assert doc["data"] == {"_raw": RAW}
    assert set(doc["receivers"]) == set(times)
    assert doc["receivers"]["M0AAA"]["time_created"] == 1000
    assert doc["receivers"]["M0AAA"]["time_uploaded"] == 1002
    assert doc["estimated_time_created"] == estimate_time_created(list(times.values()))
    assert doc["estimated_time_created"] == 1002  # 1090 is an outlier


def test_frequency_is_kept_when_given(store: SQLiteStore) -> None:
    archive = SQLiteArchive(store)
    archive.apply(
        stored(
            store,
            [
                msg("A", RECEIVED_TELEM, 5, {"string": RAW, "frequency": 434e6}),
                msg("B", RECEIVED_TELEM, 5),
            ],
        )
    )
    [doc] = docs(archive, "payload_telemetry")
    assert doc["receivers"]["A"]["frequency"] == 434e6
    assert "frequency" not in doc["receivers"]["B"]


def test_listener_information_versions_only_on_change(store: SQLiteStore) -> None:
    archive = SQLiteArchive(store)
    archive.apply(
        stored(
            store,
            [
                msg("A", LISTENER_INFO, 100, {"name": "Ann", "radio": "FT-817"}),
                msg("A", LISTENER_INFO, 200, {"radio": "FT-817", "name": "Ann"}),  # same data
                msg("B", LISTENER_INFO, 250, {"name": "Bob"}),
                msg("A", LISTENER_INFO, 300, {"name": "Ann", "radio": "IC-7300"}),  # changed
                msg("A", LISTENER_INFO, 400, {"name": "Ann", "radio": "IC-7300"}),  # same again
                msg("A", LISTENER_INFO, 500, {"name": "Ann", "radio": "FT-817"}),  # back: changed
            ],
        )
    )
    versions = [
        (d["callsign"], d["time_created"], d["data"].get("radio"))
        for d in docs(archive, "listener_information")
    ]
    assert versions == [
        ("A", 100, "FT-817"),
        ("B", 250, None),
        ("A", 300, "IC-7300"),
        ("A", 500, "FT-817"),
    ]


def test_listener_telemetry_one_document_per_position(store: SQLiteStore) -> None:
    archive = SQLiteArchive(store)
    positions = [
        msg(
            "A",
            LISTENER_TELEM,
            100 + i,
            {"latitude": 52.0 + i / 100, "longitude": 0.1, "altitude": 10, "time": "12:00:00"},
        )
        for i in range(3)
    ]
    archive.apply(stored(store, positions))
    assert [d["data"]["latitude"] for d in docs(archive, "listener_telemetry")] == [
        52.0,
        52.01,
        52.02,
    ]


def test_latest_listener_documents_at_or_before_time_created(store: SQLiteStore) -> None:
    archive = SQLiteArchive(store)
    batch = stored(
        store,
        [
            msg("A", LISTENER_INFO, 100, {"name": "v1"}),
            msg("A", LISTENER_TELEM, 150),
            msg("A", LISTENER_INFO, 300, {"name": "v2"}),  # after the string below was heard
            msg("A", RECEIVED_TELEM, 200),
            msg("B", RECEIVED_TELEM, 201),  # B has no listener documents
        ],
    )
    archive.apply(batch)
    info = {d["data"]["name"]: d["_id"] for d in docs(archive, "listener_information")}
    [telem_doc] = docs(archive, "listener_telemetry")
    [doc] = docs(archive, "payload_telemetry")
    assert doc["receivers"]["A"]["latest_listener_information"] == info["v1"]
    assert doc["receivers"]["A"]["latest_listener_telemetry"] == telem_doc["_id"]
    assert doc["receivers"]["B"]["latest_listener_information"] is None
    assert doc["receivers"]["B"]["latest_listener_telemetry"] is None


def test_applying_twice_gives_the_same_documents(store: SQLiteStore) -> None:
    archive = SQLiteArchive(store)
    batch = stored(
        store,
        [
            msg("A", LISTENER_INFO, 90),
            msg("A", LISTENER_TELEM, 95),
            msg("A", RECEIVED_TELEM, 100),
            msg("B", RECEIVED_TELEM, 104),
            msg("A", LISTENER_INFO, 120, {"name": "new"}),
        ],
    )
    archive.apply(batch)
    first = {
        k: docs(archive, k)
        for k in ("payload_telemetry", "listener_information", "listener_telemetry")
    }
    archive.apply(batch)  # redelivered in full
    archive.apply(batch[2:])  # or from the middle, after a crash
    again = {k: docs(archive, k) for k in first}
    assert again == first
    assert len(first["listener_information"]) == 2


def test_a_second_report_by_the_same_receiver_keeps_the_first(store: SQLiteStore) -> None:
    archive = SQLiteArchive(store)
    archive.apply(stored(store, [msg("A", RECEIVED_TELEM, 100), msg("A", RECEIVED_TELEM, 130)]))
    [doc] = docs(archive, "payload_telemetry")
    assert doc["receivers"]["A"]["time_created"] == 100
