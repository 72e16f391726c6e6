"""Baseline: the floor of one durable write per request.

A WSGI app that reads the body, appends it to a file and fdatasyncs before it
answers 200. Nothing is parsed or checked; the file is named by
``BENCH_DURABLE_FILE`` (bench/run.py sets it). Never deploy it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

_fd: int | None = None
_pid = 0
ANSWER = b'{"ok":true,"id":1,"ignored":[]}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(ANSWER)))]


def _file() -> int:
    global _fd, _pid
    if _fd is None or _pid != os.getpid():  # one descriptor per worker process
        _fd = os.open(os.environ["BENCH_DURABLE_FILE"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        _pid = os.getpid()
    return _fd


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = environ["wsgi.input"].read(length)
    fd = _file()
    os.write(fd, data + b"\n")  # O_APPEND: each write lands whole at the end
    os.fdatasync(fd)
    start_response("200 OK", HEADERS)
    return [ANSWER]
