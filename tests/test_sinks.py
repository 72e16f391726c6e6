"""Loading sinks by dotted path and by entry point, and refusing bad ones."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from habitat_http.archive.sink import ArchiveSink
from habitat_http.sinks import SinkContext, SinkLoadError, load

from . import sink_examples


def ctx(name: str = "s", **options: object) -> SinkContext:
    return SinkContext(name, "sqlite:///unused.db", options)


@pytest.mark.parametrize(
    "spec", ["tests.sink_examples:RecordingSink", "tests.sink_examples.RecordingSink"]
)
def test_dotted_paths(spec: str) -> None:
    sink = load(spec, ctx("dotted"))
    assert isinstance(sink, sink_examples.RecordingSink)
    assert sink_examples.MADE["dotted"] is sink


def test_archive_by_entry_point() -> None:
    assert isinstance(load("archive", ctx()), ArchiveSink)


def test_third_party_entry_point(tmp_path: Path) -> None:
    # A separately installed distribution that offers a sink in our group.
    (tmp_path / "othersinks.py").write_text(
        textwrap.dedent("""
        class Printer:
            types = frozenset({"LISTENER_INFO"})
            def __init__(self, context):
                self.name = context.name
            def setup(self): pass
            def message(self, msg): print(msg.callsign)
            def flush(self): pass
            def shutdown(self): pass
    """)
    )
    dist = tmp_path / "othersinks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: othersinks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[habitat_http.sinks]\nprinter = othersinks:Printer\n")
    code = (
        "from habitat_http.sinks import load, SinkContext; "
        "s = load('printer', SinkContext('p', 'sqlite:///x.db')); "
        "print(type(s).__module__, type(s).__name__, s.name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["othersinks", "Printer", "p"]


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("tests.sink_examples:NoTypes", "'types' must be a set"),
        ("tests.sink_examples:NoDelivery", "neither message(msg) nor messages(batch)"),
        ("tests.sink_examples:NoDelivery", "no shutdown() method"),
        ("tests.sink_examples:UnknownType", "unknown message types ['PARSED']"),
        ("tests.sink_examples:Explodes", "failed to start: no such downstream"),
        ("tests.sink_examples:Missing", "has no 'Missing'"),
        ("no_such_module_anywhere:Sink", "cannot import 'no_such_module_anywhere'"),
        ("nodots", "neither an entry point"),
    ],
)
def test_bad_sinks_are_refused_clearly(spec: str, says: str) -> None:
    with pytest.raises(SinkLoadError) as info:
        load(spec, ctx())
    assert says in str(info.value)
    assert spec in str(info.value)


def test_the_archive_sink_works_through_the_servers_store(tmp_path: Path) -> None:
    from habitat_http.config import ServerConfig, SinkSpec
    from habitat_http.message_server import load_sinks
    from habitat_http.messages import RECEIVED_TELEM, Message
    from habitat_http.store import START
    from habitat_http.store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "h.db"), timeout=0.5)  # the server's settings
    config = ServerConfig(sinks=(SinkSpec("archive", "archive"),))
    [(_, sink)] = load_sinks(config, f"sqlite:///{tmp_path}/other.db", store)
    sink.setup()
    assert isinstance(sink, ArchiveSink) and sink.archive is not None
    assert sink.archive.store is store  # type: ignore[attr-defined]
    store.put(Message("M0A", RECEIVED_TELEM, 1000, 1001, {"string": "JCRYLDE="}, None, 1.0))
    sink.messages([m for _, m in store.deliverable(START, 10)])
    [doc] = sink.archive.documents("payload_telemetry")
    assert set(doc["receivers"]) == {"M0A"}
    assert not (tmp_path / "other.db").exists()  # no second store from db_url
    sink.shutdown()
    store.close()


def test_the_archive_sink_needs_a_store() -> None:
    sink = load("archive", ctx())
    with pytest.raises(RuntimeError, match="store"):
        sink.setup()
