"""A WSGI app for the uploader tests, served by a real gunicorn (one sync worker).

It is habitat_http (``create_app()``, configured from HABITAT_*) behind a switch
that logs every ``POST /messages`` to ``$FLAKY_LOG`` as a JSON line (``t``: UNIX
seconds when it arrived, ``status``, ``items``, ``time_uploaded``: the distinct
values in the batch), and can misbehave:

- ``FLAKY_503=N``: the first N requests get 503 with ``Retry-After:
  $FLAKY_RETRY_AFTER`` (default 2), and nothing is stored;
- ``FLAKY_LOSE=N``: the first N requests are stored, but the answer is replaced by a
  503, as when the answer is lost on the way back;
- ``FLAKY_REDIRECT=N``: the first N requests get a 301 to /moved/messages on the same server.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import time
from collections.abc import Iterable
from typing import Any

from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from habitat_http import create_app

_inner = create_app()
_seen = 0


def _unavailable() -> Response:
    body = {"ok": False, "error": "Try later (test switch).", "field": None}
    headers = {"Retry-After": os.environ.get("FLAKY_RETRY_AFTER", "2")}
    return Response(json.dumps(body), 503, headers, content_type="application/json")


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    global _seen
    if environ.get("PATH_INFO") != "/messages":
        return _inner(environ, start_response)
    arrived = time.time()
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.input"] = io.BytesIO(body)
    items = json.loads(gzip.decompress(body))
    _seen += 1
    statuses: list[str] = []

    def recording_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return start_response(status, headers, exc_info)

    if _seen <= int(os.environ.get("FLAKY_503", "0")):
        answer: Iterable[bytes] = _unavailable()(environ, recording_start_response)
    elif _seen <= int(os.environ.get("FLAKY_REDIRECT", "0")):
        answer = redirect("/moved/messages", 301)(environ, recording_start_response)
    elif _seen <= int(os.environ.get("FLAKY_LOSE", "0")):
        b"".join(_inner(environ, lambda *a: None))  # stored; the answer is lost
        answer = _unavailable()(environ, recording_start_response)
    else:
        answer = _inner(environ, recording_start_response)
    record = {
        "t": arrived,
        "status": int(statuses[0].split()[0]),
        "items": len(items),
        "time_uploaded": sorted({item.get("time_uploaded") for item in items}),
    }
    with open(os.environ["FLAKY_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")
    return answer
