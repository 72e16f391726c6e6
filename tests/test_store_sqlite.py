"""The SQLite store: durability settings, migrations, concurrency and failures."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from habitat_http.config import Config
from habitat_http.messages import Message
from habitat_http.store import SchemaTooNew, StoreUnavailable, doorbell, open_store
from habitat_http.store.sqlite import SCHEMA_VERSION, SQLiteStore

from .conftest import IPClient, create_app, telem


def message(n: int = 0, data: dict[str, object] | None = None) -> Message:
    return Message(
        callsign=f"M{n}ABC",
        type="RECEIVED_TELEM",
        time_created=1_700_000_000 + n,
        time_uploaded=1_700_000_005 + n,
        data=data or {"string": "JCQ="},
        ip="192.0.2.1",
        time_received=1_700_000_005.5 + n,
    )


def test_round_trip(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "h.db"))
    data = {"name": "Zoë 📡", "nested": {"a": [1, 2.5, None]}}
    new_id = store.put(message(1, data)).id
    [back] = store.read_after(0)
    assert back.id == new_id
    assert back.data == data
    assert back.callsign == "M1ABC" and back.ip == "192.0.2.1"
    assert (back.time_created, back.time_uploaded, back.time_received) == (
        1_700_000_001,
        1_700_000_006,
        1_700_000_006.5,
    )
    store.close()


def test_wal_and_synchronous_full(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = SQLiteStore(str(path))
    store.put(message())
    conn = store._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # What was left of the last write's 5 s deadline (see test_deadline.py).
    assert 0 < conn.execute("PRAGMA busy_timeout").fetchone()[0] <= 5000
    store.close()


def test_synchronous_is_configurable(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/h.db", synchronous="NORMAL")
    store.put(message())
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 1  # type: ignore[attr-defined]
    store.close()


def test_read_after_pages_in_id_order(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "h.db"))
    ids = [store.put(message(n)).id for n in range(10)]
    assert [m.id for m in store.read_after(0)] == ids
    assert [m.id for m in store.read_after(ids[3], limit=4)] == ids[4:8]
    assert store.read_after(ids[-1]) == []
    store.close()


def test_opening_does_no_io(tmp_path: Path) -> None:
    SQLiteStore(str(tmp_path / "h.db"))
    assert list(tmp_path.iterdir()) == []


def test_schema_version_is_recorded_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    SQLiteStore(str(path)).initialize()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.commit()
    with pytest.raises(SchemaTooNew, match="upgrade habitat_http"):
        SQLiteStore(str(path)).initialize()


def _put_from_process(path: str, barrier: multiprocessing.synchronize.Barrier, n: int) -> None:
    store = SQLiteStore(path)
    barrier.wait()
    for i in range(20):
        store.put(message(n * 100 + i))
    store.close()


def test_many_processes_create_the_same_new_file_at_once(tmp_path: Path) -> None:
    # The gunicorn start-up race: every worker opens a brand-new database at once.
    ctx = multiprocessing.get_context("fork")
    for attempt in range(3):
        path = str(tmp_path / f"race{attempt}.db")
        barrier = ctx.Barrier(8)
        procs = [ctx.Process(target=_put_from_process, args=(path, barrier, n)) for n in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 8
        store = SQLiteStore(path)
        assert len(store.read_after(0)) == 160
        store.close()


def test_store_survives_fork(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "h.db"))
    store.put(message(1))
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=store.put, args=(message(2),))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert [m.callsign for m in store.read_after(0)] == ["M1ABC", "M2ABC"]
    store.close()


def test_locked_database_gives_504_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = SQLiteStore(str(path), timeout=0.2)
    client = IPClient(create_app(Config(), store, lambda: 1_700_000_000.0))
    assert client.post("/message", json=telem("$$A*00")).status_code == 200
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        r = client.post("/message", json=telem("$$B*00"))
        assert r.status_code == 504  # not committed within the deadline (issue 12)
        assert r.headers["Retry-After"] == "5"
        assert r.get_json()["ok"] is False
        other.execute("ROLLBACK")
    r = client.post("/message", json=telem("$$B*00"))  # the retry is stored now
    assert r.status_code == 200 and r.get_json()["duplicate"] is False
    assert [m.id for m in store.read_after(0)] == [1, 2]
    store.close()


def test_unopenable_database_gives_503(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "missing-dir" / "h.db"))
    with pytest.raises(StoreUnavailable):
        store.put(message())
    client = IPClient(create_app(Config(), store, lambda: 1_700_000_000.0))
    r = client.post("/message", json=telem())
    assert r.status_code == 503 and "Retry-After" in r.headers


def test_a_stalled_writer_in_another_process_gives_504_within_the_timeout(tmp_path: Path) -> None:
    import fcntl

    path = tmp_path / "h.db"
    store = SQLiteStore(str(path), timeout=0.3)
    store.put(message(1))
    client = IPClient(create_app(Config(), store, lambda: 1_700_000_000.0))
    with open(str(path) + ".lock", "ab") as other:
        fcntl.flock(other, fcntl.LOCK_EX)  # as if a writer process were stopped mid-commit
        r = client.post("/message", json=telem())
        assert r.status_code == 504
        fcntl.flock(other, fcntl.LOCK_UN)
    assert client.post("/message", json=telem()).status_code == 200
    assert len(store.read_after(0)) == 2
    store.close()


def test_fork_while_another_thread_holds_the_store_lock(tmp_path: Path) -> None:
    import threading

    store = SQLiteStore(str(tmp_path / "h.db"))
    store.put(message(1))
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with store._db_lock:
            held.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=store.put, args=(message(2),))
    child.start()
    child.join(30)
    release.set()
    thread.join()
    assert child.exitcode == 0  # the child got fresh locks, not the held one
    assert [m.callsign for m in store.read_after(0)] == ["M1ABC", "M2ABC"]
    store.close()


def keyed(callsign: str, key: str) -> Message:
    return dataclasses.replace(message(), callsign=callsign, dedup_key=key)


def test_a_group_of_retries_is_stored_once_with_one_statement_per_row(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "h.db"))
    first = store.put(keyed("A", "aa"))
    batch = [keyed("B", "bb"), keyed("A", "aa"), keyed("B", "bb"), keyed("C", "cc")]
    got = [(s.id, s.duplicate) for s in store.put_many(batch)]
    assert got == [
        (first.id + 1, False),
        (first.id, True),
        (first.id + 1, True),
        (first.id + 2, False),
    ]
    assert [m.callsign for m in store.read_after(0)] == ["A", "B", "C"]
    store.close()


def test_the_doorbell_stays_quiet_while_no_message_server_listens(tmp_path: Path) -> None:
    now = [100.0]
    bell = doorbell.Bell(str(tmp_path / "h.db"), clock=lambda: now[0])
    bell.ring()  # nobody listens: quiet from now on
    listener = doorbell.Listener(str(tmp_path / "h.db"))
    listener.wait(0.01)  # binds; the ring above is lost, as before
    bell.ring()  # quiet: not sent
    started = time.monotonic()
    listener.wait(0.2)
    assert time.monotonic() - started >= 0.15
    now[0] += doorbell.QUIET
    bell.ring()  # sent again
    started = time.monotonic()
    listener.wait(5)
    assert time.monotonic() - started < 4
    bell.close()
    listener.close()
