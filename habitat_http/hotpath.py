"""The hot path: POST /message and POST /messages served in plain WSGI (PEP 3333).

Most uploads are the common case: a JSON body with a known Content-Length, no
Content-Encoding, to a path matched by a dict. For these the app skips werkzeug's
Request, routing and Response: it reads ``CONTENT_LENGTH`` bytes from
``wsgi.input``, validates them with the same validator as the werkzeug path
(validator.py), stores through the same methods of the app (``store_one``,
``store_batch``), and answers bytes with precomputed headers.

Everything else falls through to the werkzeug path: other methods and paths,
forms, compressed or chunked bodies, bodies over the limit, a Host header that
is not a plain host name (werkzeug decides whether it is a bad one), and no Host.
An error on the hot path is answered by the app's one error mapping
(``HabitatApp.error_answer``), so both paths give the same answers
(tests/test_hotpath.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request, Response

from . import body, validator
from .ops.phases import Phases
from .ops.record import RequestRecord

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .app import HabitatApp

#: A plain host name or IPv4 address, with an optional port: werkzeug accepts
#: every such Host (each label encodes as IDNA), so the hot path may skip it.
_PLAIN_HOST = re.compile(r"(?:[A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}(?::[0-9]{1,5})?")
_JSON_TYPE = "application/json"

#: A POST action on the hot path: the body's bytes, the validator's settings and
#: the request's record in; the 200 answer's body, or another answer, out.
Handler = Callable[[bytes, "validator.Settings", RequestRecord], "bytes | Response"]


class HotPath:
    """Serves the common case of the app's two POST actions; see the module docstring.

    Args:
        app: the gateway whose validator settings, store methods and error
            mapping it uses.
    """

    def __init__(self, app: HabitatApp) -> None:
        self.app = app
        self.routes: dict[str, tuple[str, Handler, int]] = {
            "/message": ("message", self._message, app.config.max_body),
            "/messages": ("messages", self._messages, app.config.max_batch_body),
        }

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes] | None:
        """Serve ``environ`` when it is the common case; None when it is not, and
        then nothing of the request has been read."""
        path = environ.get("PATH_INFO", "")
        route = self.routes.get(path)
        if route is None or environ.get("REQUEST_METHOD") != "POST":
            return None
        endpoint, handler, limit = route
        length = environ.get("CONTENT_LENGTH", "")
        if not (length.isascii() and length.isdigit()) or int(length) > limit:
            return None
        content_type = environ.get("CONTENT_TYPE", "")
        if (
            content_type != _JSON_TYPE
            and content_type.partition(";")[0].strip().lower() != _JSON_TYPE
        ):
            return None
        if "HTTP_CONTENT_ENCODING" in environ or "HTTP_TRANSFER_ENCODING" in environ:
            return None
        host = environ.get("HTTP_HOST")
        if host is None or not _PLAIN_HOST.fullmatch(host):
            return None
        # The same record as on the werkzeug path: phases, access line, metrics.
        record = RequestRecord("POST", path, Phases(self.app.monotonic), endpoint)
        record.ip = ip = environ.get("REMOTE_ADDR")
        try:
            raw = body.read_exactly(environ["wsgi.input"], int(length))
            record.phases.end("read")
            record.phases.end("parse")  # parsed as it is validated, in one call
            answer = handler(raw, self.app.settings(ip), record)
        except Exception as exc:  # noqa: BLE001  answered by the app's one error mapping
            answer = self.app.error_answer(exc, Request(environ), record)
        if isinstance(answer, Response):
            record.status = answer.status_code
            self.app.observer.observe(record)
            return answer(environ, start_response)
        record.status = 200
        self.app.observer.observe(record)
        start_response(
            "200 OK", [("Content-Type", _JSON_TYPE), ("Content-Length", str(len(answer)))]
        )
        return [answer]

    def _message(self, raw: bytes, settings: validator.Settings, record: RequestRecord) -> bytes:
        return self.app.store_one(validator.message, raw, settings, record)

    def _messages(
        self, raw: bytes, settings: validator.Settings, record: RequestRecord
    ) -> bytes | Response:
        return self.app.store_batch(raw, settings, record)
