"""The message server: type filtering, checkpoints, retries with backoff, restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from habitat_http.config import ServerConfig, SinkSpec
from habitat_http.message_server import MessageServer, load_sinks, status
from habitat_http.messages import LISTENER_INFO, RECEIVED_TELEM, Message
from habitat_http.store import Stored
from habitat_http.store.sqlite import SQLiteStore

from . import sink_examples
from .conftest import FakeClock


def message(n: int, type_: str = RECEIVED_TELEM) -> Message:
    data = {"string": "JCRYLDE="} if type_ == RECEIVED_TELEM else {"name": f"station {n}"}
    return Message(
        f"M{n}", type_, 1_700_000_000 + n, 1_700_000_001 + n, data, "192.0.2.1", 1_700_000_001.5 + n
    )


def ids_of(results: list[Stored]) -> list[int]:
    return [r.id for r in results]


def setup(
    tmp_path: Path, *specs: SinkSpec, clock: FakeClock | None = None, batch_size: int = 500
) -> tuple[SQLiteStore, MessageServer, FakeClock]:
    url = f"sqlite:///{tmp_path}/h.db"
    store = SQLiteStore(f"{tmp_path}/h.db")
    clock = clock or FakeClock()
    config = ServerConfig(sinks=specs, batch_size=batch_size, retry_initial=1.0, retry_max=8.0)
    server = MessageServer(store, load_sinks(config, url), config, clock)
    return store, server, clock


def drain(server: MessageServer, clock: FakeClock, steps: int = 50) -> None:
    for _ in range(steps):
        if not server.step():
            clock.now += 0.5


def test_each_sink_gets_only_its_types_in_id_order(tmp_path: Path) -> None:
    store, server, clock = setup(
        tmp_path,
        SinkSpec("info", "tests.sink_examples:RecordingSink", {"types": [LISTENER_INFO]}),
        SinkSpec("telem", "tests.sink_examples:RecordingSink", {"types": [RECEIVED_TELEM]}),
    )
    types = [RECEIVED_TELEM, LISTENER_INFO] * 10
    ids = ids_of(store.put_many([message(n, t) for n, t in enumerate(types)]))
    server.start()
    drain(server, clock)
    info, telem = sink_examples.MADE["info"], sink_examples.MADE["telem"]
    assert info.received == [i for i, t in zip(ids, types, strict=True) if t == LISTENER_INFO]
    assert telem.received == [i for i, t in zip(ids, types, strict=True) if t == RECEIVED_TELEM]
    assert {r["sink"]: r["checkpoint"] for r in status(store, clock.now)} == {
        "info": ids[-1],
        "telem": ids[-1],
    }
    store.close()


def test_failing_sink_is_retried_with_backoff_and_does_not_hold_others_back(
    tmp_path: Path,
) -> None:
    store, server, clock = setup(
        tmp_path,
        SinkSpec("flaky", "tests.sink_examples:FlakySink", {"failures": 3}),
        SinkSpec("steady", "tests.sink_examples:RecordingSink"),
        batch_size=10,
    )
    ids = ids_of(store.put_many([message(n) for n in range(25)]))
    server.start()
    flaky, steady = sink_examples.MADE["flaky"], sink_examples.MADE["steady"]
    server.step()
    server.step()
    server.step()
    assert steady.received == ids  # three batches while flaky keeps failing
    assert flaky.received == []
    [row] = [r for r in status(store, clock.now) if r["sink"] == "flaky"]
    assert row["checkpoint"] == 0 and row["lag_messages"] == 25 and row["failures"] == 1
    assert "ConnectionError: downstream is unavailable" in row["last_error"]
    # Backoff: no retry before 1 s, then 2 s, then 4 s after each failure.
    attempts_at: list[float] = []
    while flaky.received != ids and clock.now < 1_700_000_100:
        before = flaky.attempts
        server.step()
        if flaky.attempts > before:
            attempts_at.append(clock.now)
        clock.now += 0.25
    assert flaky.received == ids  # every message, exactly once, in order
    assert flaky.attempts == 3 + 3  # 3 refusals, then 3 batches
    gaps = [b - a for a, b in zip([1_700_000_000.0, *attempts_at], attempts_at, strict=False)]
    assert gaps[0] >= 1.0 and gaps[1] >= 2.0 and gaps[2] >= 4.0
    [row] = [r for r in status(store, clock.now) if r["sink"] == "flaky"]
    assert row["lag_messages"] == 0 and row["last_error"] is None and row["failures"] == 0
    store.close()


def test_one_at_a_time_sink_keeps_its_place_before_the_failed_message(tmp_path: Path) -> None:
    store, server, clock = setup(
        tmp_path, SinkSpec("one", "tests.sink_examples:OneAtATimeSink", {"fail_on": 6})
    )
    ids = ids_of(store.put_many([message(n) for n in range(10)]))
    server.start()
    server.step()
    one = sink_examples.MADE["one"]
    assert one.received == ids[:5]
    assert store.checkpoints()["one"].position.id == 5
    drain(server, clock)
    assert one.received == ids  # 6 retried after backoff, nothing twice
    store.close()


def test_restart_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    spec = SinkSpec("rec", "tests.sink_examples:RecordingSink")
    store, server, clock = setup(tmp_path, spec)
    first = ids_of(store.put_many([message(n) for n in range(5)]))
    server.start()
    drain(server, clock)
    store.close()
    store2, server2, clock2 = setup(tmp_path, spec)  # a new process, in effect
    second = ids_of(store2.put_many([message(n) for n in range(5, 8)]))
    server2.start()
    drain(server2, clock2)
    assert sink_examples.MADE["rec"].received == second
    assert first[-1] < second[0]
    store2.close()


def test_new_messages_are_noticed_within_a_second_without_spinning(tmp_path: Path) -> None:
    spec = SinkSpec("live", "tests.sink_examples:RecordingSink")
    url = f"sqlite:///{tmp_path}/h.db"
    store = SQLiteStore(f"{tmp_path}/h.db")
    server = MessageServer(store, load_sinks(ServerConfig(sinks=(spec,)), url))
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,))
    cpu_before = time.process_time()
    thread.start()
    time.sleep(1.0)  # idle
    writer = SQLiteStore(f"{tmp_path}/h.db")
    [new_id] = ids_of(writer.put_many([message(1)]))
    posted = time.monotonic()
    live = sink_examples.MADE["live"]
    while new_id not in live.received and time.monotonic() - posted < 5:
        time.sleep(0.01)
    noticed = time.monotonic() - posted
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert new_id in live.received and noticed < 1.0
    assert live.events[-2:] == ["flush", "shutdown"]
    # Idle for over a second: a busy loop would have burned about that much CPU.
    assert time.process_time() - cpu_before < 0.5
    writer.close()
    store.close()


def test_a_commit_wakes_the_idle_server_before_its_next_poll(db_url: str) -> None:
    from habitat_http.store import open_store

    spec = SinkSpec(f"woken-{db_url[:6]}", "tests.sink_examples:RecordingSink")
    store = open_store(db_url)
    config = ServerConfig(sinks=(spec,), poll_interval=30.0)  # polling alone would be late
    server = MessageServer(store, load_sinks(config, db_url), config)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,))
    thread.start()
    time.sleep(1.0)  # the server is idle, waiting
    writer = open_store(db_url)
    [stored] = writer.put_many([message(7)])
    posted = time.monotonic()
    sink = sink_examples.MADE[spec.name]
    while stored.id not in sink.received and time.monotonic() - posted < 10:
        time.sleep(0.01)
    noticed = time.monotonic() - posted
    stop.set()
    writer.put_many([message(8)])  # wakes it once more, to see the stop
    thread.join(40)
    writer.close()
    store.close()
    assert stored.id in sink.received and noticed < 1.0


def test_the_server_beats_and_status_flags_it_down_when_the_beat_is_stale(
    db_url: str,
) -> None:
    from habitat_http.message_server import servers
    from habitat_http.store import open_store

    store = open_store(db_url)
    store.initialize()
    if db_url.startswith("postgresql"):  # the session's database: other tests' servers beat
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("DELETE FROM server_heartbeats")
    clock = FakeClock()
    config = ServerConfig(sinks=(SinkSpec("archive", "archive"),), poll_interval=0.01)
    server = MessageServer(store, load_sinks(config, db_url, store), config, clock)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not servers(store, clock.now) and time.monotonic() < deadline:
            time.sleep(0.01)
        [alive] = servers(store, clock.now)
        assert alive["alive"] and alive["last_beat"] == clock.now
        clock.now += 3
        deadline = time.monotonic() + 10
        while servers(store, clock.now)[0]["last_beat"] != clock.now:
            assert time.monotonic() < deadline, "the server stopped beating"
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
    beat = clock.now
    clock.now += 10.5  # nobody beats any more: it has been silent past the limit
    [down] = servers(store, clock.now)
    assert not down["alive"] and down["last_beat"] == beat
    assert down["seconds_since_beat"] == 10.5
    rows = status(store, clock.now)
    assert rows and all(not r["server_alive"] for r in rows)
    store.close()
