"""End to end through a real gunicorn process, a real HTTP client and the real CLI,
with real telemetry from tests/data."""

from __future__ import annotations

import base64
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import b64, cli_messages, telem

pytestmark = pytest.mark.slow


def post_all(
    url: str, jobs: list[tuple[dict[str, Any], dict[str, str]]], threads: int = 8
) -> list[Any]:
    """POST every (message, headers) job from ``threads`` threads; return the JSON answers."""
    local = threading.local()

    def post(job: tuple[dict[str, Any], dict[str, str]]) -> Any:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        r = session.post(url + "/message", json=job[0], headers=job[1], timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(post, jobs))


def test_two_workers_concurrent_posts_read_back_with_cli(tmp_path: Path, gunicorn: Any) -> None:
    db = f"sqlite:///{tmp_path}/habitat.db"
    server = gunicorn({"HABITAT_DB": db}, "--workers", "2")
    jobs = [
        (
            telem(f"$$THREAD{t},{i},12:00:00*00", callsign=f"M{t}ABC"),
            {"X-Forwarded-For": "203.0.113.66"},
        )  # must be ignored: no trusted proxies
        for t in range(8)
        for i in range(40)
    ]
    answers = post_all(server.url, jobs)
    ids = [a["id"] for a in answers]
    assert len(set(ids)) == len(jobs)
    rows = cli_messages(db)
    assert sorted(ids) == [r["id"] for r in rows]
    by_id = {r["id"]: r for r in rows}
    for (message, _), answer in zip(jobs, answers, strict=True):
        row = by_id[answer["id"]]
        assert row["callsign"] == message["callsign"]
        assert row["data"] == message["data"]
        assert row["ip"] == "127.0.0.1"


def test_real_telemetry_replayed_from_several_listeners(
    tmp_path: Path, gunicorn: Any, sentences: list[dict[str, Any]]
) -> None:
    db = f"sqlite:///{tmp_path}/habitat.db"
    # One trusted proxy, so each listener can arrive from its own address.
    server = gunicorn({"HABITAT_DB": db, "HABITAT_TRUSTED_PROXIES": "1"}, "--workers", "2")
    listeners = [*sorted({r for s in sentences for r in s["receivers"]}), "M0PITS"]
    ip_of = {callsign: f"198.51.{n // 250}.{n % 250 + 1}" for n, callsign in enumerate(listeners)}
    skew = 3600  # every client clock is an hour slow
    jobs = []
    expected = []
    for n, s in enumerate(sentences):
        callsign = s["receivers"][n % len(s["receivers"])] if s["receivers"] else "M0PITS"
        delay = n % 7  # seconds between receiving and uploading
        client_now = int(time.time()) - skew
        raw = s["sentence"].encode("utf-8")
        message = {
            "callsign": callsign,
            "type": "RECEIVED_TELEM",
            "time_created": client_now - delay,
            "time_uploaded": client_now,
            "data": {"string": base64.b64encode(raw).decode("ascii"), "frequency": 434_075_000 + n},
        }
        jobs.append((message, {"X-Forwarded-For": ip_of[callsign]}))
        expected.append((raw, callsign.upper(), ip_of[callsign], delay))
    started = time.time()
    answers = post_all(server.url, jobs)
    finished = time.time()
    rows = {r["id"]: r for r in cli_messages(db)}
    assert len(rows) == len(sentences) == 17_256
    bad_checksums = 0
    for (raw, callsign, ip, delay), answer, s in zip(expected, answers, sentences, strict=True):
        row = rows[answer["id"]]
        assert base64.b64decode(row["data"]["string"]) == raw  # byte-identical
        assert row["callsign"] == callsign
        assert row["ip"] == ip
        assert started - 1 <= row["time_uploaded"] <= finished + 1
        assert abs(row["time_created"] - (row["time_uploaded"] - delay)) <= 1
        bad_checksums += not s["checksum_ok"]
    assert bad_checksums == 1  # stored all the same: the gateway does not judge content


def test_acknowledged_messages_survive_kill_9(tmp_path: Path, gunicorn: Any) -> None:
    db = f"sqlite:///{tmp_path}/habitat.db"
    server = gunicorn({"HABITAT_DB": db}, "--workers", "2")
    acked: list[tuple[int, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(t: int) -> None:
        session = requests.Session()
        i = 0
        while not stop.is_set() and i < 5000:
            sentence = f"$$KILL{t},{i}*00"
            try:
                r = session.post(server.url + "/message", json=telem(sentence), timeout=5)
            except requests.RequestException:
                return
            if r.status_code == 200:
                with lock:
                    acked.append((r.json()["id"], b64(sentence)))
            i += 1

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    os.killpg(server.process.pid, signal.SIGKILL)  # master and workers, mid-request
    stop.set()
    for t in threads:
        t.join(30)
    server.process.wait(10)
    assert len(acked) > 50
    stored = {r["id"]: r["data"]["string"] for r in cli_messages(db)}
    for message_id, string in acked:
        assert stored.get(message_id) == string


def test_gunicorn_wsgi_app_from_repository_root_uses_the_sqlite_default(
    tmp_path: Path, gunicorn: Any
) -> None:
    # HABITAT_DB unset: the default sqlite:///habitat.db is relative to the working
    # directory, so run this one from a tmp dir holding a copy of wsgi.py.
    import shutil

    from .conftest import ROOT, start_gunicorn

    shutil.copy(ROOT / "wsgi.py", tmp_path / "wsgi.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HABITAT_")}
    server = start_gunicorn(tmp_path, env, "--chdir", str(tmp_path))
    try:
        r = requests.post(server.url + "/message", json=telem(), timeout=10)
        assert r.status_code == 200
        assert (tmp_path / "habitat.db").exists()
        assert cli_messages(f"sqlite:///{tmp_path}/habitat.db")[0]["id"] == r.json()["id"]
    finally:
        server.stop()


def test_chunked_bodies_are_capped_by_the_body_limit(tmp_path: Path, gunicorn: Any) -> None:
    # gunicorn sets wsgi.input_terminated, so werkzeug can cap a body with no length.
    db = f"sqlite:///{tmp_path}/habitat.db"
    server = gunicorn({"HABITAT_DB": db, "HABITAT_MAX_BODY": "2000"}, "--workers", "1")
    import json

    def chunks(body: bytes) -> Any:
        for i in range(0, len(body), 100):
            yield body[i : i + 100]

    small = json.dumps(telem()).encode()
    big = json.dumps({**telem(), "padding": "x" * 5000}).encode()
    headers = {"Content-Type": "application/json"}
    ok = requests.post(server.url + "/message", data=chunks(small), headers=headers, timeout=10)
    assert ok.status_code == 200, ok.text
    too_big = requests.post(server.url + "/message", data=chunks(big), headers=headers, timeout=10)
    assert too_big.status_code == 413
    assert [r["id"] for r in cli_messages(db)] == [ok.json()["id"]]


def test_concurrent_retries_across_two_workers_are_stored_once(
    tmp_path: Path, gunicorn: Any
) -> None:
    db = f"sqlite:///{tmp_path}/habitat.db"
    server = gunicorn(
        {"HABITAT_DB": db}, "--workers", "2", "--worker-class", "gthread", "--threads", "4"
    )
    items = [telem(f"$$RETRY,{n}*00", callsign=f"M{n % 5}ABC") for n in range(50)]
    barrier = threading.Barrier(8)
    answers: list[Any] = []
    lock = threading.Lock()

    def client() -> None:
        session = requests.Session()
        barrier.wait()
        for _ in range(3):  # each client retries the same batch, and single messages
            r = session.post(server.url + "/messages", json=items, timeout=30)
            assert r.status_code == 200
            single = session.post(server.url + "/message", json=items[7], timeout=30)
            assert single.status_code == 200
            with lock:
                answers.append(r.json())
                answers.append({"results": [{"index": 7, **single.json()}]})

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = cli_messages(db)
    assert len(rows) == 50  # every message once, whichever worker took it first
    id_of = {r["data"]["string"]: r["id"] for r in rows}
    for answer in answers:
        for result in answer["results"]:
            assert result["id"] == id_of[items[result["index"]]["data"]["string"]]
    assert sum(a.get("accepted", 0) for a in answers) == 50
