"""One contract for both backends: the Store, the checkpoints and the archive,
run against SQLite and against the real PostgreSQL (the ``db_url`` fixture)."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from habitat_http.archive import open_archive
from habitat_http.messages import (
    LISTENER_INFO,
    LISTENER_TELEM,
    RECEIVED_TELEM,
    Message,
    dedup_key,
)
from habitat_http.store import (
    START,
    CheckpointStore,
    Position,
    SchemaTooNew,
    open_store,
)

RAW = base64.b64encode(b"$$ALMA-2,57,11:36:19,51.700711,4.662976,14,6,31,2933,08,A*A602").decode()


def msg(
    callsign: str, type_: str = RECEIVED_TELEM, t: int = 1000, data: Any = None, keyed: bool = True
) -> Message:
    data = (
        data
        or {
            RECEIVED_TELEM: {"string": RAW},
            LISTENER_INFO: {"name": "Zoë"},
            LISTENER_TELEM: {
                "latitude": 51.5,
                "longitude": -0.1,
                "altitude": 12,
                "time": {"hour": 1, "minute": 2, "second": 3},
            },
        }[type_]
    )
    key = dedup_key(callsign, type_, t, data) if keyed else None
    return Message(callsign, type_, t, t + 2, data, "192.0.2.5", t + 2.25, dedup_key=key)


@pytest.fixture
def store(db_url: str) -> Iterator[CheckpointStore]:
    s = open_store(db_url)
    yield s
    s.close()


def test_put_and_read_back(store: CheckpointStore) -> None:
    data = {"name": "Zoë 📡", "radio": "FT-817"}
    first = store.put(msg("M0AAA", LISTENER_INFO, data=data))
    second = store.put(msg("M0BBB"))
    assert not first.duplicate and second.id > first.id
    a, b = store.read_after(0)
    assert (a.id, a.callsign, a.type, a.data, a.ip) == (
        first.id,
        "M0AAA",
        LISTENER_INFO,
        data,
        "192.0.2.5",
    )
    assert (a.time_created, a.time_uploaded, a.time_received) == (1000, 1002, 1002.25)
    assert b.data == {"string": RAW}
    assert store.read_after(a.id) == [b]
    assert store.read_after(0, limit=1) == [a]


def test_retries_are_stored_once(store: CheckpointStore) -> None:
    results = store.put_many(
        [msg("A"), msg("B"), msg("A"), msg("C", keyed=False), msg("C", keyed=False)]
    )
    assert [r.duplicate for r in results] == [False, False, True, False, False]
    assert results[2].id == results[0].id
    again = store.put(msg("B"))
    assert again.duplicate and again.id == results[1].id
    assert len(store.read_after(0)) == 4


def test_concurrent_retries_are_stored_once(store: CheckpointStore) -> None:
    results: list[Any] = []
    barrier = threading.Barrier(6)

    def retry() -> None:
        barrier.wait()
        results.append(store.put_many([msg(f"M{n}") for n in range(20)]))

    threads = [threading.Thread(target=retry) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.read_after(0)) == 20
    assert len({tuple(r.id for r in rs) for rs in results}) == 1
    assert sum(not r.duplicate for rs in results for r in rs) == 20


def test_deliverable_is_in_growing_positions(store: CheckpointStore) -> None:
    ids = [r.id for r in store.put_many([msg(f"M{n}") for n in range(5)])]
    ids.append(store.put(msg("LATE")).id)
    batch = store.deliverable(START, 100)
    assert [m.id for _, m in batch] == ids
    positions = [p for p, _ in batch]
    assert positions == sorted(positions) and len(set(positions)) == 6
    assert store.deliverable(positions[2], 100) == batch[3:]
    assert store.deliverable(positions[-1], 100) == []


def test_checkpoints_never_move_back(store: CheckpointStore) -> None:
    store.put_many([msg(f"M{n}") for n in range(4)])
    positions = [p for p, _ in store.deliverable(START, 10)]
    store.save_checkpoint("archive", positions[2], 1000.0)
    store.save_checkpoint("archive", positions[0], 1001.0)  # a slower second server
    [cp] = store.checkpoints().values()
    assert cp.position == positions[2] and cp.failures == 0
    assert store.backlog(cp.position) == (1, 1002.25)
    store.record_failure("archive", "TimeoutError: slow", 1002.0)
    store.record_failure("archive", "TimeoutError: slower", 1003.0)
    cp = store.checkpoints()["archive"]
    assert (cp.position, cp.failures, cp.last_error) == (positions[2], 2, "TimeoutError: slower")
    store.save_checkpoint("archive", positions[3], 1004.0)
    cp = store.checkpoints()["archive"]
    assert (cp.failures, cp.last_error, cp.position) == (0, None, positions[3])
    assert store.backlog(cp.position) == (0, None)


def test_a_newer_schema_is_refused(db_url: str) -> None:
    store = open_store(db_url)
    store.initialize()
    if db_url.startswith("sqlite"):
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as conn:
            conn.execute("PRAGMA user_version = 99")
            conn.commit()
    else:
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("UPDATE habitat_schema SET version = 99")
    try:
        with pytest.raises(SchemaTooNew, match="upgrade habitat_http"):
            open_store(db_url).initialize()
    finally:
        if not db_url.startswith("sqlite"):
            import psycopg

            from habitat_http.store.postgres import SCHEMA_VERSION

            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute("UPDATE habitat_schema SET version = %s", (SCHEMA_VERSION,))
        store.close()


# --- the archive ------------------------------------------------------------------


def archive_all(db_url: str, store: CheckpointStore) -> dict[str, list[dict[str, Any]]]:
    archive = open_archive(open_store(db_url))
    archive.apply([m for _, m in store.deliverable(START, 10_000)])
    docs = {
        kind: list(archive.documents(kind))
        for kind in ("payload_telemetry", "listener_information", "listener_telemetry")
    }
    archive.close()
    return docs


def test_archive_merges_versions_and_links(db_url: str, store: CheckpointStore) -> None:
    store.put_many(
        [
            msg("A", LISTENER_INFO, 900, {"name": "Ann"}),
            msg("A", LISTENER_INFO, 950, {"name": "Ann"}),  # unchanged: no new version
            msg("A", LISTENER_TELEM, 960),
            msg("A", RECEIVED_TELEM, 1000),
            msg("B", RECEIVED_TELEM, 1004),
            msg("C", RECEIVED_TELEM, 1002),
            msg("A", LISTENER_INFO, 1100, {"name": "Ann", "radio": "new"}),
        ]
    )
    docs = archive_all(db_url, store)
    [payload] = docs["payload_telemetry"]
    assert set(payload["receivers"]) == {"A", "B", "C"}
    assert payload["estimated_time_created"] == 1002
    assert payload["data"] == {"_raw": RAW}
    infos = docs["listener_information"]
    assert [d["data"] for d in infos] == [{"name": "Ann"}, {"name": "Ann", "radio": "new"}]
    assert payload["receivers"]["A"]["latest_listener_information"] == infos[0]["_id"]
    assert (
        payload["receivers"]["A"]["latest_listener_telemetry"]
        == docs["listener_telemetry"][0]["_id"]
    )
    assert payload["receivers"]["B"]["latest_listener_information"] is None


def test_archive_is_idempotent(db_url: str, store: CheckpointStore) -> None:
    store.put_many(
        [
            msg("A", LISTENER_INFO, 900),
            msg("A", RECEIVED_TELEM, 1000),
            msg("B", RECEIVED_TELEM, 1001),
            msg("A", LISTENER_TELEM, 1005),
        ]
    )
    first = archive_all(db_url, store)
    assert archive_all(db_url, store) == first


def test_concurrent_merges_lose_no_receiver(db_url: str, store: CheckpointStore) -> None:
    # Eight servers, in effect, merge reports of the same strings at once.
    strings = [base64.b64encode(f"$$CONC,{n}*00".encode()).decode() for n in range(5)]
    store.put_many(
        [msg(f"R{r}", t=1000 + r, data={"string": s}) for r in range(8) for s in strings]
    )
    batch = [m for _, m in store.deliverable(START, 1000)]
    by_receiver = [[m for m in batch if m.callsign == f"R{r}"] for r in range(8)]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def merge(part: list[Message]) -> None:
        archive = open_archive(open_store(db_url))
        barrier.wait()
        try:
            archive.apply(part)
        except BaseException as exc:  # noqa: BLE001  reported below
            errors.append(exc)
        finally:
            archive.close()

    threads = [threading.Thread(target=merge, args=(part,)) for part in by_receiver]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    archive = open_archive(open_store(db_url))
    docs = list(archive.documents("payload_telemetry"))
    archive.close()
    assert len(docs) == 5
    assert all(set(d["receivers"]) == {f"R{r}" for r in range(8)} for d in docs)


def test_positions_are_gap_free_under_concurrent_writers(
    db_url: str, store: CheckpointStore
) -> None:
    # Writers commit while a reader pages; the reader must see every message once.
    seen: list[int] = []
    stop = threading.Event()

    def writer(w: int) -> None:
        s = open_store(db_url)
        for n in range(40):
            s.put_many([msg(f"W{w}N{n}"), msg(f"W{w}N{n}X")])
        s.close()

    def reader() -> None:
        position = START
        while True:
            done = stop.is_set()
            batch = store.deliverable(position, 7)
            seen.extend(m.id for _, m in batch if m.id is not None)
            if batch:
                position = batch[-1][0]
            elif done:
                return

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    read = threading.Thread(target=reader)
    read.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    read.join(60)
    assert sorted(seen) == sorted(m.id for m in store.read_after(0))
    assert len(seen) == len(set(seen)) == 320


def test_position_is_a_pair() -> None:
    assert Position(1, 5) < Position(2, 1) and Position(0, 1) > START


def test_a_late_commit_with_a_lower_id_is_not_skipped(pg_url: str) -> None:
    # The case `id > last_seen` gets wrong: id 1 commits after id 2 has been read.
    import psycopg

    from .conftest import pg_reset

    pg_reset(pg_url)
    store = open_store(pg_url)
    slow = psycopg.connect(pg_url)
    try:
        slow.execute(
            "INSERT INTO messages (callsign, type, time_created, time_uploaded, data,"
            " time_received) VALUES ('SLOW', 'RECEIVED_TELEM', 1, 1, '{}', 1)"
        )  # id 1, its transaction still open
        fast = store.put(msg("FAST"))  # id 2, committed
        assert fast.id == 2
        assert store.deliverable(START, 10) == []  # nothing may be passed over yet
        slow.commit()
        delivered = [m.callsign for _, m in store.deliverable(START, 10)]
        assert delivered == ["SLOW", "FAST"]
    finally:
        slow.close()
        store.close()


def test_delivery_reads_the_position_index_without_sorting(pg_url: str) -> None:
    # With the order taken from the (tx, id) index, a backlog of any size costs a
    # short index scan per batch, not a sort of everything after the checkpoint.
    import psycopg

    from .conftest import pg_reset

    pg_reset(pg_url)
    store = open_store(pg_url)
    store.put_many([msg(f"M{n}") for n in range(50)])
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("ANALYZE messages")
        store_sql = (
            "EXPLAIN SELECT m.tx::text::bigint AS position_tx, m.id FROM messages m"
            " WHERE (m.tx, m.id) > ('0'::text::xid8, 0)"
            " AND m.tx < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY m.tx, m.id LIMIT 10"
        )
        plan = "\n".join(row[0] for row in conn.execute(store_sql))
    import inspect

    from habitat_http.store import postgres

    assert "ORDER BY m.tx, m.id" in inspect.getsource(postgres.PostgresStore.deliverable)
    assert "Sort" not in plan and "messages_position" in plan
    store.close()


def test_archive_replays_identically_when_commits_interleave(pg_url: str) -> None:
    # Delivery order is (tx, id): a batch transaction holding ids 2 and 4 comes
    # before another transaction's id 3. Replaying must change nothing.
    import psycopg
    from psycopg.types.json import Jsonb

    from .conftest import pg_reset

    pg_reset(pg_url)
    insert = (
        "INSERT INTO messages (callsign, type, time_created, time_uploaded, data,"
        " time_received) VALUES (%s, %s, %s, %s, %s, 0) RETURNING id"
    )
    with psycopg.connect(pg_url, autocommit=True) as first:
        first.execute(insert, ("A", LISTENER_INFO, 100, 100, Jsonb({"name": "old"})))  # id 1
    one, two = psycopg.connect(pg_url), psycopg.connect(pg_url)
    try:
        one.execute(insert, ("A", RECEIVED_TELEM, 200, 200, Jsonb({"string": RAW})))  # id 2
        two.execute(insert, ("B", LISTENER_INFO, 250, 250, Jsonb({"name": "bee"})))  # id 3
        one.execute(insert, ("A", LISTENER_INFO, 300, 300, Jsonb({"name": "new"})))  # id 4
        one.commit()
        two.commit()
    finally:
        one.close()
        two.close()
    store = open_store(pg_url)
    order = [m.id for _, m in store.deliverable(START, 10)]
    assert order == [1, 2, 4, 3]
    first_pass = archive_all(pg_url, store)
    assert archive_all(pg_url, store) == first_pass  # redelivered whole
    versions = [(d["callsign"], d["data"]["name"]) for d in first_pass["listener_information"]]
    assert sorted(versions) == [("A", "new"), ("A", "old"), ("B", "bee")]
    store.close()


def test_overlapping_retries_in_opposite_orders_do_not_deadlock(store: CheckpointStore) -> None:
    errors: list[BaseException] = []
    for round_ in range(5):
        batch = [msg(f"R{round_}N{n}") for n in range(100)]
        barrier = threading.Barrier(2)

        def put(items: list[Message], barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                store.put_many(items)
            except BaseException as exc:  # noqa: BLE001  reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=put, args=(batch,)),
            threading.Thread(target=put, args=(batch[::-1],)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert len(store.read_after(0)) == 500
