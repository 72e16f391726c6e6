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

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .app import HabitatApp

#: A plain host name or IPv4 address, with an optional port: werkzeug accepts
#: every such Host (each label encodes as IDNA), so the hot path may skip it.
_PLAIN_HOST = re.compile(r"(?:[A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}(?::[0-9]{1,5})?")
_JSON_TYPE = "application/json"


class HotPath:
    """Serves the common case of the app's two POST actions; see the module docstring.

    Args:
        app: the gateway whose validator settings, store methods and error
            mapping it uses.
    """

    def __init__(self, app: HabitatApp) -> None:
        self.app = app
        self.routes: dict[str, tuple[Callable[[bytes, str | None], bytes | Response], int]] = {
            "/message": (self._message, app.config.max_body),
            "/messages": (self._messages, app.config.max_batch_body),
        }

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes] | None:
        """Serve ``environ`` when it is the common case; None when it is not, and
        then nothing of the request has been read."""
        route = self.routes.get(environ.get("PATH_INFO", ""))
        if route is None or environ.get("REQUEST_METHOD") != "POST":
            return None
        handler, limit = route
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
        try:
            raw = body.read_exactly(environ["wsgi.input"], int(length))
            answer = handler(raw, environ.get("REMOTE_ADDR"))
        except Exception as exc:  # noqa: BLE001  answered by the app's one error mapping
            answer = self.app.error_answer(exc, Request(environ))
        if isinstance(answer, Response):
            return answer(environ, start_response)
        start_response(
            "200 OK", [("Content-Type", _JSON_TYPE), ("Content-Length", str(len(answer)))]
        )
        return [answer]

    def _message(self, raw: bytes, ip: str | None) -> bytes:
        return self.app.store_one(validator.message(raw, self.app.settings(ip)))

    def _messages(self, raw: bytes, ip: str | None) -> bytes | Response:
        return self.app.store_batch(raw, self.app.settings(ip))
