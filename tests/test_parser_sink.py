"""The parser sink and the payload_configuration documents, on SQLite and on the
real PostgreSQL (the ``db_url`` fixture): one TELEM per distinct string, parse
failures recorded on the document, configurations reloaded when added."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from habitat_http.archive import open_archive
from habitat_http.config import ServerConfig
from habitat_http.message_server import MessageServer, load_sinks
from habitat_http.messages import RECEIVED_TELEM, TELEM, Message, dedup_key
from habitat_http.parser.config import ConfigurationError
from habitat_http.parser.documents import ConfigurationDocuments, DocumentConflict
from habitat_http.parser.sink import ParserSink
from habitat_http.sinks import SinkContext
from habitat_http.store import START, CheckpointStore, open_store

from .conftest import DATA, FakeClock

AMSTG = json.loads((DATA / "payload_configurations" / "AMSTG.json").read_text())
GOOD = b"$$AMSTG,27,08:33:27,525776815,-19651728,139,6,3,6*B707"
BAD_CHECKSUM = b"$$AMSTG,28,08:33:47,525776987,-19651566,138,6,3,6*5DF0"
NO_LOCK = b"$$AMSTG,29,08:34:07,0,0,0,0,0,0*9AF7"


def b64(sentence: bytes) -> str:
    return base64.b64encode(sentence).decode()


def received(callsign: str, sentence: bytes, t: int = 1000) -> Message:
    data = {"string": b64(sentence)}
    key = dedup_key(callsign, RECEIVED_TELEM, t, data)
    return Message(callsign, RECEIVED_TELEM, t, t + 1, data, None, t + 1.0, dedup_key=key)


@pytest.fixture
def store(db_url: str) -> Iterator[CheckpointStore]:
    s = open_store(db_url)
    s.initialize()
    yield s
    s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def sink(store: CheckpointStore, clock: FakeClock) -> ParserSink:
    s = ParserSink(SinkContext("parser", "unused", {}, store), clock)
    s.setup()
    return s


def deliverable(store: CheckpointStore, type_: str) -> list[Any]:
    return [m for _, m in store.deliverable(START, 10_000) if m.type == type_]


def telems(store: CheckpointStore) -> list[Any]:
    return deliverable(store, TELEM)


def test_documents_are_validated_stored_once_and_never_replaced(
    store: CheckpointStore,
) -> None:
    docs = ConfigurationDocuments(store)
    assert docs.documents() == [] and docs.version() == (0, 0.0)  # reads create nothing
    bad = {**AMSTG, "sentences": [{**AMSTG["sentences"][0], "checksum": "md5"}]}
    with pytest.raises(ConfigurationError) as error:
        docs.add(bad, 10.0)
    assert error.value.path == "sentences.0.checksum"
    first = docs.add(AMSTG, 10.0)
    assert first.new and len(first.id) == 32
    assert docs.add(AMSTG, 11.0) == (first.id, False)
    assert docs.version() == (1, 10.0)
    with pytest.raises(DocumentConflict, match=first.id):
        docs.add({**AMSTG, "_id": first.id, "name": "changed"}, 12.0)
    [stored] = docs.documents()
    assert stored == {**AMSTG, "_id": first.id}
    assert docs.configurations()[0].key == first.id


def test_one_telem_per_string_whoever_heard_it_and_however_often(
    store: CheckpointStore, sink: ParserSink, clock: FakeClock
) -> None:
    doc_id = ConfigurationDocuments(store).add(AMSTG, 5.0).id
    store.put_many(
        [received("M0AAA", GOOD), received("M0BBB", GOOD, 1001), received("M0AAA", NO_LOCK)]
    )
    batch = deliverable(store, RECEIVED_TELEM)
    sink.messages(batch)  # (the sink reloads: the document was added after setup)
    clock.now += 60
    sink.messages(batch)  # redelivered after a crash
    sink.messages(batch[1:2])  # the second receiver's report alone, later
    good, no_lock = telems(store)
    assert good.callsign == "AMSTG" and good.time_created == 1000
    assert good.data["latitude"] == 52.5776815 and good.data["longitude"] == -1.9651728
    assert good.data["payload"] == "AMSTG" and good.data["_protocol"] == "UKHAS"
    assert good.data["_sentence"] == GOOD.decode()
    assert good.data["_raw"] == b64(GOOD)
    assert good.data["_parsed"] == {
        "payload_configuration": doc_id,
        "configuration_sentence_index": 0,
        "time_parsed": 1_700_000_000.0,
    }
    assert "_fix_invalid" not in good.data
    assert no_lock.data["_fix_invalid"] is True


def test_a_newer_configuration_gives_a_new_telem(
    store: CheckpointStore, sink: ParserSink, clock: FakeClock
) -> None:
    store.put(received("M0AAA", GOOD))
    sink.messages(deliverable(store, RECEIVED_TELEM))
    [default] = telems(store)  # integer coordinates do not fit the default mode
    assert default.data["_parse_error"]["attempts"][0]["default"] is True
    clock.now += 10
    doc_id = ConfigurationDocuments(store).add(AMSTG, clock.now).id
    sink.messages(deliverable(store, RECEIVED_TELEM))
    _, configured = telems(store)
    assert configured.data["_parsed"]["payload_configuration"] == doc_id
    archive = open_archive(store)
    archive.apply([m for _, m in store.deliverable(START, 100)])
    [doc] = list(archive.documents("payload_telemetry"))
    assert doc["data"]["_parsed"]["payload_configuration"] == doc_id
    assert doc["data"]["latitude"] == 52.5776815 and "_parse_error" not in doc["data"]
    assert set(doc["receivers"]) == {"M0AAA"}


def test_a_string_that_does_not_parse_is_recorded_and_counted(
    store: CheckpointStore, sink: ParserSink
) -> None:
    doc_id = ConfigurationDocuments(store).add(AMSTG, 5.0).id
    store.put_many([received("M0AAA", GOOD), received("M0AAA", BAD_CHECKSUM, 1020)])
    sink.messages(deliverable(store, RECEIVED_TELEM))
    _, failure = telems(store)
    error = failure.data["_parse_error"]
    assert error["callsign"] == "AMSTG" and error["time_parsed"] == 1_700_000_000.0
    assert error["attempts"] == [
        {"configuration": doc_id, "sentence_index": 0, "reason": error["attempts"][0]["reason"]}
    ]
    assert "checksum" in error["reason"] and doc_id in error["reason"]
    assert failure.data["_raw"] == b64(BAD_CHECKSUM) and "_parsed" not in failure.data
    archive = open_archive(store)
    archive.apply([m for _, m in store.deliverable(START, 100)])
    [problem] = archive.problems("AMSTG")
    assert problem["_parse_error"] == error and problem["sentence"] == BAD_CHECKSUM.decode()
    [heard] = archive.payloads_since(0)
    assert (heard["payload"], heard["strings"], heard["parse_failures"]) == ("AMSTG", 2, 1)


def test_garbage_gets_a_parse_error_with_a_guessed_callsign(
    store: CheckpointStore, sink: ParserSink
) -> None:
    store.put_many([received("M0AAA", b"$$WHO?,1,2"), received("M0AAA", b"\xff\xfe")])
    sink.messages(deliverable(store, RECEIVED_TELEM))
    who, binary = telems(store)
    assert who.data["_parse_error"]["callsign"] == "WHO" and who.callsign == "WHO"
    assert binary.data["_parse_error"]["callsign"] is None and binary.callsign == ""
    assert binary.data["_parse_error"]["reason"] == "the sentence is not ASCII text"


def test_without_default_mode_an_unconfigured_payload_is_a_failure(
    store: CheckpointStore, clock: FakeClock
) -> None:
    sink = ParserSink(SinkContext("parser", "unused", {"default_mode": False}, store), clock)
    sink.setup()
    store.put(received("M0AAA", GOOD))
    sink.messages(deliverable(store, RECEIVED_TELEM))
    [failure] = telems(store)
    assert "no payload_configuration has callsign 'AMSTG'" in failure.data["_parse_error"]["reason"]
    with pytest.raises(ValueError, match="default_mode"):
        ParserSink(SinkContext("parser", "unused", {"default_mode": "yes"}, store))


def test_the_default_message_server_parses_and_archives(
    db_url: str, store: CheckpointStore
) -> None:
    ConfigurationDocuments(store).add(AMSTG, 5.0)
    store.put_many([received("M0AAA", GOOD), received("M0BBB", GOOD, 1002)])
    sinks = load_sinks(ServerConfig(), db_url, store)
    assert [name for name, _ in sinks] == ["archive", "parser"]
    server = MessageServer(store, sinks, ServerConfig(), FakeClock())
    server.start()
    while server.step():
        pass
    [doc] = list(open_archive(store).documents("payload_telemetry"))
    assert set(doc["receivers"]) == {"M0AAA", "M0BBB"}
    assert (doc["data"]["latitude"], doc["data"]["altitude"]) == (52.5776815, 139)
    [point] = open_archive(store).track("AMSTG")
    assert (point["latitude"], point["longitude"], point["altitude"]) == (
        52.5776815,
        -1.9651728,
        139,
    )
