"""Three real flights (SP, WG3, STELLA2) replayed through the real pipeline for the
tracker's tests: ``habitat-http serve`` (gunicorn, the message server, the archive
and parser sinks), their payload_configurations added with ``habitat-http payloads
add``, every receiver's upload posted over HTTP, with the flight's own timing (each
sentence's GPS time of day), ending in the last hour; plus listener information and
positions for a few receivers, and one string that cannot parse."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from habitat_http.archive import Archive, open_archive
from habitat_http.store import CheckpointStore, open_store

from .conftest import DATA
from .test_pipeline import _answers, wait_until
from .test_serve import Serve, start_serve

FLIGHTS = ("SP", "WG3", "STELLA2")
#: A real string whose checksum is one hex digit: it cannot parse (SOURCES.md).
BROKEN = "$$BZ3,1589628960,13:36,51.97917,4.20833,10000,0,-0.10,3.00,1,1*5"
#: Real receivers of SP and WG3, here also sending their station and position.
STATIONS = ("HA5MRC", "G8KNN")


def jsonl(name: str) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file in tests/data."""
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def seconds_of_day(hms: str) -> int:
    hour, minute, second = (int(p) for p in hms.split(":"))
    return hour * 3600 + minute * 60 + second


def flight_uploads(now: int) -> list[dict[str, Any]]:
    """RECEIVED_TELEM messages for every receiver of every sentence of FLIGHTS; each
    flight's last sentence was made ``10 * (its index + 1)`` minutes before ``now``,
    the others as many seconds earlier as their GPS times say."""
    sentences = jsonl("ukhas_sentences.jsonl")
    times = {
        row["sentence"]: row["habitat_parsed"]["time"] for row in jsonl("habitat_parsed.jsonl")
    }
    out = []
    for index, flight in enumerate(FLIGHTS):
        rows = [s for s in sentences if s["flight"] == flight]
        offsets, day = [], 0
        previous = None
        for row in rows:
            t = seconds_of_day(times[row["sentence"]])
            if previous is not None and t + day < previous - 43200:
                day += 86400  # past midnight
            offsets.append(t + day)
            previous = t + day
        end = now - 600 * (index + 1)
        for row, offset in zip(rows, offsets, strict=True):
            created = end - (offsets[-1] - offset)
            for receiver in row["receivers"]:
                out.append(
                    {
                        "callsign": receiver,
                        "type": "RECEIVED_TELEM",
                        "time_created": created,
                        "time_uploaded": now,  # the gateway corrects by its clock
                        "data": {
                            "string": base64.b64encode(row["sentence"].encode()).decode(),
                            "frequency": 434_075_000 + 250 * index,
                        },
                    }
                )
    return out


def listener_messages(now: int) -> list[dict[str, Any]]:
    """LISTENER_INFO and LISTENER_TELEM of :data:`STATIONS`, an hour before ``now``."""
    out = []
    for n, callsign in enumerate(STATIONS):
        base = {"callsign": callsign, "time_created": now - 3600, "time_uploaded": now}
        out.append(
            {**base, "type": "LISTENER_INFO", "data": {"name": f"Station {n}", "radio": "FT-817"}}
        )
        out.append(
            {
                **base,
                "type": "LISTENER_TELEM",
                "data": {
                    "latitude": 52.0 + n,
                    "longitude": -1.5 + n,
                    "altitude": 100 + n,
                    "time": "12:00:00",
                },
            }
        )
    return out


@dataclass
class Flights:
    """The running pipeline and what was posted to it."""

    serve: Serve
    db_url: str
    uploads: list[dict[str, Any]]
    store: CheckpointStore
    archive: Archive

    @property
    def tracker(self) -> str:
        """The tracker's URL in ``serve``."""
        return self.serve.url + "/tracker"

    def post(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 500):
            r = requests.post(
                self.serve.url + "/messages", json=messages[start : start + 500], timeout=60
            )
            assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def replay_flights(tmp_path: Path) -> Iterator[Flights]:
    """Start ``serve`` in ``tmp_path``, replay the flights, wait until every string
    is parsed and archived; yield; stop ``serve``."""
    serve = start_serve(tmp_path, "--workers", "1")
    store = open_store(serve.db_url, read_only=True)
    try:
        wait_until(lambda: _answers(serve.url), timeout=30)
        subprocess.run(
            [sys.executable, "-m", "habitat_http", "payloads", "add"]
            + [str(DATA / "payload_configurations" / f"{f}.json") for f in FLIGHTS],
            env={**os.environ, "HABITAT_DB": serve.db_url},
            capture_output=True,
            check=True,
        )
        now = int(time.time())
        uploads = flight_uploads(now)
        broken = {
            **uploads[0],
            "callsign": "M0TEST",
            "data": {"string": base64.b64encode(BROKEN.encode()).decode()},
        }
        flights = Flights(serve, serve.db_url, uploads, store, open_archive(store))
        flights.post(listener_messages(now))
        flights.post([*uploads, broken])
        distinct = {m["data"]["string"] for m in uploads} | {broken["data"]["string"]}

        def archived() -> bool:
            time.sleep(0.5)
            docs = list(flights.archive.documents("payload_telemetry"))
            return len(docs) == len(distinct) and all(
                "_parsed" in d["data"] or "_parse_error" in d["data"] for d in docs
            )

        wait_until(archived, timeout=180)
        yield flights
    finally:
        store.close()
        serve.process.send_signal(signal.SIGTERM)
        try:
            serve.process.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(serve.process.pid, signal.SIGKILL)
            serve.process.wait()
