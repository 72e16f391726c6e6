"""The uploader client against a real gateway: gunicorn serving habitat_http on a
temporary SQLite database, fed real telemetry from tests/data (issue 14).

``tests/flaky_gateway.py`` wraps the gateway to count requests and to answer 503
or lose answers on purpose.
"""

from __future__ import annotations

import base64
import itertools
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from habitat_http.client import Backoff, SQLiteSpool, Uploader, sentence_of

from .conftest import ROOT, Server, cli_messages, free_port

pytestmark = pytest.mark.slow

Start = Callable[..., Server]


@pytest.fixture(scope="module")
def lines(sentences: list[dict[str, Any]]) -> list[bytes]:
    """5,000 distinct real sentences."""
    out = [s["sentence"].encode("utf-8") for s in sentences[:5000]]
    assert len(set(out)) == 5000
    return out


def db_env(tmp_path: Path) -> dict[str, str]:
    return {"HABITAT_DB": f"sqlite:///{tmp_path}/habitat.db"}


def stored(tmp_path: Path) -> list[dict[str, Any]]:
    """What `habitat-http messages` prints for the test's database; nothing when the
    gateway never created one (it creates it with its first write)."""
    if not (tmp_path / "habitat.db").exists():
        return []
    return cli_messages(f"sqlite:///{tmp_path}/habitat.db")


def stored_sentences(tmp_path: Path) -> list[bytes]:
    return [
        base64.b64decode(m["data"]["string"])
        for m in stored(tmp_path)
        if m["type"] == "RECEIVED_TELEM"
    ]


def count(db: Path, table: str) -> int:
    """Rows in a table of a live SQLite file, or 0 before it exists."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def upload_command(url: str, *args: str, callsign: str = "M0TEST") -> list[str]:
    return [
        sys.executable,
        "-m",
        "habitat_http",
        "upload",
        "--url",
        url,
        "--callsign",
        callsign,
        *args,
    ]


_started: list[subprocess.Popen[bytes]] = []


def start_upload(url: str, *args: str, callsign: str = "M0TEST") -> subprocess.Popen[bytes]:
    """`habitat-http upload` reading from a pipe; killed after the test if still running."""
    proc = subprocess.Popen(
        upload_command(url, *args, callsign=callsign),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _started.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _stop_uploads() -> Iterator[None]:
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def feed(stdin: IO[bytes], lines: list[bytes], per_second: int = 1000) -> None:
    """Write lines at a decoder-like pace, 50 at a time."""
    for i in range(0, len(lines), 50):
        stdin.write(b"".join(line + b"\n" for line in lines[i : i + 50]))
        stdin.flush()
        time.sleep(50 / per_second)


def requests_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def flaky(gunicorn: Start, tmp_path: Path, **env: str) -> tuple[Server, Path]:
    """tests/flaky_gateway.py in one gunicorn worker, and the file it logs requests to."""
    log = tmp_path / "requests.jsonl"
    server = gunicorn(
        {**db_env(tmp_path), "FLAKY_LOG": str(log), **env},
        "--workers",
        "1",
        app="tests.flaky_gateway:app",
    )
    return server, log


def test_replay_of_5000_real_sentences_reads_back_byte_identical(
    gunicorn: Start, tmp_path: Path, lines: list[bytes]
) -> None:
    server = gunicorn(db_env(tmp_path), "--workers", "2")
    source = tmp_path / "sentences.txt"
    source.write_bytes(b"".join(line + b"\n" for line in lines))
    result = subprocess.run(
        upload_command(
            server.url,
            "--spool",
            str(tmp_path / "spool.db"),
            "--frequency",
            "434075000",
            "--listener-info",
            'name="Test station" radio=FT-817',
            "--position",
            "51.5,-0.12,35",
            str(source),
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "5002 queued, 5002 stored, 0 duplicates, 0 rejected, 0 dropped" in result.stdout
    messages = stored(tmp_path)
    info, position = messages[0], messages[1]
    assert (info["type"], info["data"]) == (
        "LISTENER_INFO",
        {"name": "Test station", "radio": "FT-817"},
    )
    assert position["type"] == "LISTENER_TELEM"
    assert (position["data"]["latitude"], position["data"]["altitude"]) == (51.5, 35)
    telem = messages[2:]
    assert [base64.b64decode(m["data"]["string"]) for m in telem] == lines  # in order
    assert {m["callsign"] for m in messages} == {"M0TEST"}
    assert {m["data"]["frequency"] for m in telem} == {434075000}
    assert count(tmp_path / "spool.db", "spool") == 0


def test_gateway_down_for_10s_mid_upload_every_sentence_arrives_once(
    gunicorn: Start, tmp_path: Path, lines: list[bytes]
) -> None:
    port = free_port()
    # gunicorn takes --bind more than once: the fixed port lets a restart keep the URL.
    fixed = ("--workers", "2", "--bind", f"127.0.0.1:{port}")
    server = gunicorn(db_env(tmp_path), *fixed)
    url = f"http://127.0.0.1:{port}"
    proc = start_upload(
        url,
        "--spool",
        str(tmp_path / "spool.db"),
        "--batch-interval",
        "0.2",
        "--max-retry-delay",
        "2",
    )
    assert proc.stdin is not None
    feed(proc.stdin, lines[:1500])
    wait_until(lambda: count(tmp_path / "habitat.db", "messages") > 0)
    server.stop()
    down_at = time.monotonic()
    feed(proc.stdin, lines[1500:])
    time.sleep(max(0.0, 10 - (time.monotonic() - down_at)))
    assert count(tmp_path / "habitat.db", "messages") < 5000
    gunicorn(db_env(tmp_path), *fixed)
    out, err = proc.communicate(b"", timeout=60)  # end of input
    assert proc.returncode == 0, err
    assert b"5000 stored" in out and b"0 rejected" in out
    assert b"retrying" in err  # it did meet the outage
    assert stored_sentences(tmp_path) == lines  # each exactly once, in order


def test_kill_9_of_the_uploader_then_restart_on_the_same_spool(
    gunicorn: Start, tmp_path: Path, lines: list[bytes]
) -> None:
    server = gunicorn(db_env(tmp_path), "--workers", "2")
    spool_path = tmp_path / "spool.db"
    args = ("--spool", str(spool_path), "--batch-interval", "0.3", "--max-batch", "1000")
    first = start_upload(server.url, *args)
    assert first.stdin is not None
    feed(first.stdin, lines[:2000])
    first.kill()  # SIGKILL, in the middle of the upload
    first.wait()
    # What the killed process took in is either in the store or still in its spool.
    spool = SQLiteSpool(spool_path)  # its lock died with it
    waiting = [base64.b64decode(q.message["data"]["string"]) for q in spool.peek(10_000)]
    spool.close()
    assert waiting, "the kill came after everything was sent; the test proves nothing"
    taken = set(stored_sentences(tmp_path)) | set(waiting)
    # Lines the killed process never read (still in its pipe) come again, as from a decoder.
    again = [line for line in lines[:2000] if line not in taken] + lines[2000:]
    second = start_upload(server.url, *args)
    _, err = second.communicate(b"".join(line + b"\n" for line in again), timeout=60)
    assert second.returncode == 0, err
    final = Counter(stored_sentences(tmp_path))
    assert set(final) == set(lines)
    assert set(final.values()) == {1}  # duplicates may cross the wire, never reach the store


def test_503_with_retry_after_is_waited_out(gunicorn: Start, tmp_path: Path) -> None:
    server, log = flaky(gunicorn, tmp_path, FLAKY_503="3", FLAKY_RETRY_AFTER="2")
    uploader = Uploader(server.url, "M0TEST", backoff=Backoff(random=lambda: 0.0))
    for i in range(10):
        uploader.received_telem(f"$$TEST,{i},12:00:00*0000")
    assert uploader.close(timeout=30)
    seen = requests_log(log)
    assert [r["status"] for r in seen[:4]] == [503, 503, 503, 200]
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(seen[:4])]
    assert all(gap >= 1.95 for gap in gaps), gaps  # Retry-After: 2, jitter drew 0
    assert seen[3]["time_uploaded"][0] > seen[0]["time_uploaded"][0] + 5  # fresh each attempt
    assert uploader.stats().retries == 3
    assert len(stored_sentences(tmp_path)) == 10


def test_a_retry_after_a_lost_answer_is_stored_once(gunicorn: Start, tmp_path: Path) -> None:
    server, log = flaky(gunicorn, tmp_path, FLAKY_LOSE="1", FLAKY_RETRY_AFTER="1")
    ids: list[int] = []
    uploader = Uploader(
        server.url, "M0TEST", on_stored=lambda message, id_: ids.append(id_), batch_interval=0
    )
    uploader.received_telem(b"$$TEST,1,12:00:00*0000")
    assert uploader.close(timeout=30)
    assert [r["status"] for r in requests_log(log)] == [503, 200]
    stats = uploader.stats()
    assert (stats.stored, stats.duplicates, stats.retries) == (0, 1, 1)
    assert ids == [stored(tmp_path)[0]["id"]] and len(stored(tmp_path)) == 1


def test_a_blocked_callsign_is_reported_with_its_field_and_never_retried(
    gunicorn: Start, tmp_path: Path, lines: list[bytes]
) -> None:
    server, log = flaky(gunicorn, tmp_path)
    source = tmp_path / "sentences.txt"
    source.write_bytes(b"".join(line + b"\n" for line in lines[:20]))
    result = subprocess.run(
        upload_command(server.url, "--batch-interval", "0.1", str(source), callsign="N0CALL"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rejections = [line for line in result.stdout.splitlines() if line.startswith("rejected:")]
    assert len(rejections) == 20
    assert all(line.startswith("rejected: field callsign: ") for line in rejections)
    assert "N0CALL" in rejections[0] and repr(lines[0]) in rejections[0]
    assert "0 stored, 0 duplicates, 20 rejected" in result.stdout
    seen = requests_log(log)
    assert {r["status"] for r in seen} == {400}
    assert sum(r["items"] for r in seen) == 20  # each message sent once: never retried
    assert stored(tmp_path) == []


def test_bad_items_in_a_batch_are_reported_and_never_retried(
    gunicorn: Start, tmp_path: Path
) -> None:
    server, log = flaky(gunicorn, tmp_path)
    rejected: list[tuple[str, str | None, str]] = []
    done = threading.Event()
    uploader = Uploader(
        server.url,
        "M0TEST",
        batch_interval=60,
        on_rejected=lambda m, field, error: rejected.append((m["type"], field, error)),
    )
    uploader.received_telem(b"$$TEST,1,12:00:00*0000")  # sent alone, at once
    wait_until(lambda: log.exists())
    uploader.received_telem(b"$$TEST,2,12:00:00*0000")
    uploader.received_telem(b"$$TEST,3,12:00:00*0000", time_created=time.time() + 3600)
    uploader.listener_information(name="x" * 300)
    uploader.received_telem(b"x" * 3000)
    uploader.listener_telemetry(51.5, -0.12, 35, time="12:00:00")
    assert uploader.close(timeout=30)
    done.set()
    fields = [(kind, field) for kind, field, _ in rejected]
    assert fields == [
        ("RECEIVED_TELEM", "time_created"),
        ("LISTENER_INFO", "data.name"),
        ("RECEIVED_TELEM", "data.string"),
    ]
    assert all(error for _, _, error in rejected)  # the gateway's sentence, not ours
    seen = requests_log(log)
    assert [(r["status"], r["items"]) for r in seen] == [(200, 1), (200, 5)]
    stats = uploader.stats()
    assert (stats.stored, stats.rejected, stats.requests) == (3, 3, 2)


def test_a_rejection_is_logged_once_at_warning_by_default(
    gunicorn: Start, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = flaky(gunicorn, tmp_path)
    with Uploader(server.url, "N0CALL") as uploader:
        uploader.received_telem(b"$$TEST,1,12:00:00*0000")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "b'$$TEST,1,12:00:00*0000'" in warnings[0] and "callsign" in warnings[0]
    assert "N0CALL" in warnings[0]  # the gateway's own sentence names it


def test_a_batch_too_large_for_the_gateway_is_split(
    gunicorn: Start, tmp_path: Path, lines: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    server = gunicorn({**db_env(tmp_path), "HABITAT_MAX_BATCH_BODY": "20000"}, "--workers", "1")
    uploader = Uploader(server.url, "M0TEST", batch_interval=0)
    for line in lines[:600]:
        uploader.received_telem(line)
    assert uploader.close(timeout=60)
    assert stored_sentences(tmp_path) == lines[:600]
    assert uploader.stats().rejected == 0
    assert any("refused a batch of" in r.getMessage() for r in caplog.records)  # a 413 came


def test_a_full_spool_drops_the_oldest_and_the_rest_arrives(
    gunicorn: Start, tmp_path: Path, lines: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool.db"
    offline = Uploader(
        f"http://127.0.0.1:{free_port()}", "M0TEST", spool=spool, max_spool_messages=100
    )
    for line in lines[:150]:
        offline.received_telem(line)
    offline.close(timeout=0)
    assert offline.stats().dropped == 50
    assert any("dropped the oldest" in r.getMessage() for r in caplog.records)
    server = gunicorn(db_env(tmp_path), "--workers", "1")
    with Uploader(server.url, "M0TEST", spool=spool) as online:
        assert online.flush(timeout=30)
    assert stored_sentences(tmp_path) == lines[50:150]


def test_sigterm_flushes_then_exits_and_a_second_sigterm_exits_at_once(
    gunicorn: Start, tmp_path: Path, lines: list[bytes]
) -> None:
    server = gunicorn(db_env(tmp_path), "--workers", "1")
    spool = tmp_path / "spool.db"
    proc = start_upload(server.url, "--spool", str(spool), "--batch-interval", "60")
    assert proc.stdin is not None
    feed(proc.stdin, lines[:200])
    wait_until(lambda: count(spool, "spool") + count(tmp_path / "habitat.db", "messages") == 200)
    assert count(spool, "spool") > 0  # waiting for the next batch, 60 s away
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert b"200 stored" in out
    assert stored_sentences(tmp_path) == lines[:200]

    offline = tmp_path / "offline.db"
    proc = start_upload(f"http://127.0.0.1:{free_port()}", "--spool", str(offline))
    assert proc.stdin is not None
    feed(proc.stdin, lines[:100])
    wait_until(lambda: count(offline, "spool") == 100)
    proc.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    assert proc.poll() is None  # still trying to flush to a gateway that is not there
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=5)
    assert proc.returncode == 128 + signal.SIGTERM
    assert b"stopped at once" in out and b"100 kept in the spool" in out
    assert count(offline, "spool") == 100


def test_uploader_benchmark_runs() -> None:
    out = subprocess.run(
        [sys.executable, "bench/uploader.py", "--sentences", "300", "--workers", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert out.count("sentences/s") == 4 and "--spool" in out


BIG = bytes(range(256)) * 8  # 2048 bytes, the most one RECEIVED_TELEM may hold


def test_a_whole_request_4xx_is_reported_for_its_messages_and_never_retried(
    gunicorn: Start, tmp_path: Path
) -> None:
    server, log = flaky(gunicorn, tmp_path, HABITAT_MAX_BATCH_BODY="2800")
    rejected: list[tuple[bytes | None, str | None, str]] = []
    uploader = Uploader(
        server.url,
        "M0TEST",
        batch_interval=60,
        on_rejected=lambda m, field, error: rejected.append((sentence_of(m), field, error)),
    )
    with uploader:
        uploader.received_telem(b"$$TEST,1,12:00:00*0000")  # sent alone, at once
        wait_until(lambda: log.exists())
        uploader.received_telem(b"$$TEST,2,12:00:00*0000")
        uploader.received_telem(BIG)  # over the gateway's body limit alone
    seen = requests_log(log)
    # 413 for the pair: halved; the big one alone gets 413 again: rejected, not retried.
    assert [(r["status"], r["items"]) for r in seen] == [(200, 1), (413, 2), (200, 1), (413, 1)]
    assert len(rejected) == 1 and rejected[0][0] == BIG
    assert rejected[0][1] is None and "2800" in rejected[0][2]  # the gateway's sentence
    assert stored_sentences(tmp_path) == [b"$$TEST,1,12:00:00*0000", b"$$TEST,2,12:00:00*0000"]


def test_threads_share_one_uploader(gunicorn: Start, tmp_path: Path) -> None:
    server = gunicorn(db_env(tmp_path), "--workers", "1")
    uploader = Uploader(server.url, "M0TEST", batch_interval=0.05)

    def station(n: int) -> None:
        for i in range(250):
            uploader.received_telem(f"$$T{n},{i}*0000")

    threads = [threading.Thread(target=station, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert uploader.close(timeout=60)
    got = Counter(stored_sentences(tmp_path))
    assert len(got) == 1000 and set(got.values()) == {1}
    assert uploader.stats().stored == 1000


def test_a_redirect_is_not_followed_and_the_batch_is_kept(
    gunicorn: Start, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server, log = flaky(gunicorn, tmp_path, FLAKY_REDIRECT="2")
    uploader = Uploader(server.url, "M0TEST", backoff=Backoff(base=0.1, random=lambda: 1.0))
    uploader.received_telem(b"$$TEST,1,12:00:00*0000")
    assert uploader.close(timeout=30)
    assert [r["status"] for r in requests_log(log)] == [301, 301, 200]
    assert any("/moved/messages; check the url" in r.getMessage() for r in caplog.records)
    assert stored_sentences(tmp_path) == [b"$$TEST,1,12:00:00*0000"]


def test_listener_messages_repeat(gunicorn: Start, tmp_path: Path) -> None:
    server = gunicorn(db_env(tmp_path), "--workers", "1")
    proc = start_upload(
        server.url,
        "--listener-info",
        "name=Test",
        "--position",
        "51.5,-0.12,35",
        "--listener-every",
        "1",
        "--batch-interval",
        "0.1",
    )
    wait_until(lambda: count(tmp_path / "habitat.db", "messages") >= 6)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    kinds = [m["type"] for m in stored(tmp_path)]
    assert kinds[:6] == ["LISTENER_INFO", "LISTENER_TELEM"] * 3
