"""Archive sink throughput on SQLite, in messages per second, on real telemetry.

Every flight sentence in tests/data is stored once per real receiver (111,114
RECEIVED_TELEM uploads from 237 listeners, up to 28 receivers for one string),
with a LISTENER_INFO and a LISTENER_TELEM from each listener every so often. Then
the message server delivers everything, in one run:
  (a) to a sink that does nothing (the baseline: reading and checkpointing);
  (b) to the archive sink, merging receivers into payload_telemetry documents;
  (c) to the parser sink, with the 35 flights' payload_configurations, storing
      one TELEM per distinct string (the archive's merge of those is not timed).

    python bench/archive.py [--sentences N] [--batch-size 500]
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import SENTENCES
from habitat_http.config import ServerConfig, SinkSpec
from habitat_http.message_server import MessageServer, load_sinks
from habitat_http.messages import (
    LISTENER_INFO,
    LISTENER_TELEM,
    RECEIVED_TELEM,
    Message,
    StoredMessage,
)
from habitat_http.parser.documents import ConfigurationDocuments
from habitat_http.sinks import SinkContext
from habitat_http.store import START
from habitat_http.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent


class NullSink:
    """Takes every message and does nothing: the baseline."""

    types = frozenset({RECEIVED_TELEM, LISTENER_INFO, LISTENER_TELEM})

    def __init__(self, context: SinkContext) -> None:
        self.count = 0

    def setup(self) -> None:
        pass

    def messages(self, batch: Sequence[StoredMessage]) -> None:
        self.count += len(batch)

    def flush(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


def uploads(limit: int | None) -> list[Message]:
    out: list[Message] = []
    t = 1_400_000_000
    with open(SENTENCES, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    flights = [r for r in rows if r["receivers"]][:limit]
    for n, row in enumerate(flights):
        raw = base64.b64encode(row["sentence"].encode()).decode()
        for k, callsign in enumerate(row["receivers"]):
            cs = callsign.upper()
            if n % 200 == 0:
                out.append(
                    Message(
                        cs, LISTENER_INFO, t - 5, t, {"name": f"{cs} {n // 1000}"}, "192.0.2.1", t
                    )
                )
                out.append(
                    Message(
                        cs,
                        LISTENER_TELEM,
                        t - 5,
                        t,
                        {
                            "latitude": 51.5,
                            "longitude": -0.1,
                            "altitude": 30 + k,
                            "time": {"hour": 12, "minute": 0, "second": 0},
                        },
                        "192.0.2.1",
                        t,
                    )
                )
            out.append(Message(cs, RECEIVED_TELEM, t - (k % 3), t, {"string": raw}, "192.0.2.1", t))
        t += 2
    return out


def add_configurations(db: Path) -> None:
    """Store the 35 flights' payload_configurations of tests/data in ``db``."""
    store = SQLiteStore(str(db))
    documents = ConfigurationDocuments(store)
    documents.initialize()
    for path in sorted((ROOT / "tests/data/payload_configurations").glob("*.json")):
        documents.add(json.loads(path.read_text()), time.time())
    store.close()


def run(db: Path, use: str, batch_size: int) -> tuple[int, float]:
    store = SQLiteStore(str(db))
    config = ServerConfig(sinks=(SinkSpec("bench", use),), batch_size=batch_size)
    server = MessageServer(store, load_sinks(config, f"sqlite:///{db}", store), config)
    server.start()
    total = store.backlog(START)[0]
    start = time.perf_counter()
    while server.step():
        pass
    elapsed = time.perf_counter() - start
    store.close()
    return total, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sentences", type=int, default=None, help="flight sentences to use")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    messages = uploads(args.sentences)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.db"
        store = SQLiteStore(str(source))
        for i in range(0, len(messages), 5000):
            store.put_many(messages[i : i + 5000])
        store.close()
        results = {}
        for name, use in (
            ("null sink", "bench.archive:NullSink"),
            ("archive sink", "archive"),
            ("parser sink", "parser"),
        ):
            db = Path(tmp) / f"{name.split()[0]}.db"
            shutil.copy(source, db)
            if use == "parser":
                add_configurations(db)
            results[name] = run(db, use, args.batch_size)
    telem = sum(m.type == RECEIVED_TELEM for m in messages)
    strings = len({m.data["string"] for m in messages if m.type == RECEIVED_TELEM})
    print(
        f"{len(messages)} messages: {telem} RECEIVED_TELEM of {strings} strings, "
        f"the rest listener messages; batch size {args.batch_size}; SQLite synchronous=FULL"
    )
    for name, (total, elapsed) in results.items():
        print(f"{name:12}: {total} messages in {elapsed:.2f} s = {total / elapsed:9.0f} messages/s")
    null_rate = results["null sink"][0] / results["null sink"][1]
    archive_rate = results["archive sink"][0] / results["archive sink"][1]
    print(f"ratio archive / null sink: {archive_rate / null_rate:.2f}")
    parser_rate = results["parser sink"][0] / results["parser sink"][1]
    print(f"ratio parser / null sink: {parser_rate / null_rate:.2f}")


if __name__ == "__main__":
    main()
