"""Reference: the gateway a user would write in an afternoon.

werkzeug's Request and ``get_json``, and one SQLite INSERT and COMMIT per
request (WAL, ``synchronous=FULL``), one connection per thread. It checks only
that the body is a JSON object. bench/run.py measures habitat_http against it;
the database is named by ``BENCH_NAIVE_DB`` and created by :func:`create` before
the workers start. Never deploy it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from typing import Any

from werkzeug.wrappers import Request, Response

_local = threading.local()


def create(path: str) -> None:
    """Make the database file, in WAL mode, with its one table."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, callsign TEXT,"
        " type TEXT, time_created REAL, time_uploaded REAL, data TEXT, ip TEXT)"
    )
    conn.commit()
    conn.close()


def _conn() -> sqlite3.Connection:
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(os.environ["BENCH_NAIVE_DB"], timeout=5)
        conn.execute("PRAGMA synchronous = FULL")
        _local.conn = conn
    return conn


@Request.application  # type: ignore[arg-type]
def app(request: Request) -> Response:
    msg: Any = request.get_json(silent=True)
    if not isinstance(msg, dict):
        return Response('{"ok":false}', status=400, mimetype="application/json")
    conn = _conn()
    cur = conn.execute(
        "INSERT INTO messages (callsign, type, time_created, time_uploaded, data, ip)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            msg.get("callsign"),
            msg.get("type"),
            msg.get("time_created"),
            msg.get("time_uploaded"),
            json.dumps(msg.get("data")),
            request.remote_addr,
        ),
    )
    conn.commit()
    body = json.dumps({"ok": True, "id": cur.lastrowid, "ignored": []})
    return Response(body, mimetype="application/json")
