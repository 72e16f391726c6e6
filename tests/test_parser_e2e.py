"""End to end: real uploads of three flights go through a real gunicorn into
``habitat-http serve`` (the archive and parser sinks by default), with their
payload_configurations added by ``habitat-http payloads add``; the parsed fields
read back from ``habitat-http archive payload_telemetry`` must equal habitat's own
parsed output (tests/data/habitat_parsed.jsonl) for every sentence."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from .conftest import DATA
from .test_parser_reference import same
from .test_pipeline import _answers, cli, wait_until
from .test_serve import start_serve

#: An XOR checksum with ddmm.mmmm coordinates; scaled battery and temperatures; and
#: a small flight.
FLIGHTS = ("SP", "WG3", "STELLA2")
#: A real string whose checksum is one hex digit: it cannot parse.
BROKEN = "$$BZ3,1589628960,13:36,51.97917,4.20833,10000,0,-0.10,3.00,1,1*5"


def uploads(sentences: list[dict[str, Any]], now: int) -> list[dict[str, Any]]:
    """One RECEIVED_TELEM per receiver of each sentence of FLIGHTS, as listeners sent them."""
    out = []
    for n, row in enumerate(s for s in sentences if s["flight"] in FLIGHTS):
        for receiver in row["receivers"]:
            out.append(
                {
                    "callsign": receiver,
                    "type": "RECEIVED_TELEM",
                    "time_created": now - 3600 + n,
                    "time_uploaded": now,
                    "data": {"string": base64.b64encode(row["sentence"].encode()).decode()},
                }
            )
    return out


def test_real_uploads_are_parsed_into_the_archive_as_habitat_did(
    tmp_path: Path, sentences: list[dict[str, Any]]
) -> None:
    serve = start_serve(tmp_path, "--workers", "1")
    env = {**os.environ, "HABITAT_DB": serve.db_url}
    try:
        wait_until(lambda: _answers(serve.url), timeout=30)
        # Added while the server runs: the parser sink reloads them before its next batch.
        added = subprocess.run(
            [
                sys.executable,
                "-m",
                "habitat_http",
                "payloads",
                "add",
                *(str(DATA / "payload_configurations" / f"{f}.json") for f in FLIGHTS),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert added.stdout.count(": added as ") == 3
        messages = uploads(sentences, int(time.time()))
        messages.append(
            {
                **messages[0],
                "callsign": "M0TEST",
                "data": {"string": base64.b64encode(BROKEN.encode()).decode()},
            }
        )
        for start in range(0, len(messages), 500):
            r = requests.post(
                serve.url + "/messages", json=messages[start : start + 500], timeout=30
            )
            assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
        distinct = {m["data"]["string"] for m in messages}

        def parsed_all() -> bool:
            docs = [
                json.loads(line)
                for line in cli("archive", "payload_telemetry", "--db", serve.db_url).splitlines()
            ]
            return len(docs) == len(distinct) and all(
                "_parsed" in d["data"] or "_parse_error" in d["data"] for d in docs
            )

        wait_until(parsed_all, timeout=120)
    finally:
        serve.process.send_signal(signal.SIGTERM)
        serve.process.wait(40)
    docs = {
        base64.b64decode(d["data"]["_raw"]).decode(): d
        for d in map(
            json.loads, cli("archive", "payload_telemetry", "--db", serve.db_url).splitlines()
        )
    }
    broken = docs.pop(BROKEN)
    assert "_parse_error" in broken["data"] and broken["data"]["_parse_error"]["reason"]
    with open(DATA / "habitat_parsed.jsonl", encoding="utf-8") as f:
        expected = {
            row["sentence"]: row["habitat_parsed"]
            for row in map(json.loads, f)
            if row["flight"] in FLIGHTS
        }
    assert set(docs) == set(expected)
    differences = []
    for sentence, doc in docs.items():
        ours = {k: v for k, v in doc["data"].items() if not k.startswith("_") and k != "payload"}
        if set(ours) != set(expected[sentence]) or not all(
            same(ours[k], expected[sentence][k]) for k in ours
        ):
            differences.append((sentence, ours, expected[sentence]))
    assert differences == []
    receivers: dict[str, set[str]] = {}
    for row in sentences:
        if row["flight"] in FLIGHTS:  # callsigns are stored upper-cased
            receivers.setdefault(row["sentence"], set()).update(c.upper() for c in row["receivers"])
    assert all(set(doc["receivers"]) == receivers[s] for s, doc in docs.items())
    # One TELEM per distinct string, however many receivers heard it.
    kinds = [m["type"] for m in map(json.loads, cli("messages", "--db", serve.db_url).splitlines())]
    assert kinds.count("TELEM") == len(distinct)
    assert kinds.count("RECEIVED_TELEM") == len(messages)
