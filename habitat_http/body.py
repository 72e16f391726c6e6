"""Decoding a request body into message fields.

Two content types carry a message (habitat's HTTP POST format;
docs/architecture.rst, "Messages"):

- ``application/json``: one JSON object with the message's fields;
- ``application/x-www-form-urlencoded``: the same field names, where ``data`` holds
  the JSON text of the data object.

Anything else gets 415. A batch (POST /messages) is a JSON array of such
objects. Bodies may be gzip- or deflate-compressed (``Content-Encoding``).

The body size limit is enforced while reading: werkzeug refuses a declared
Content-Length over ``Request.max_content_length`` at once, and stops reading a
chunked body (``wsgi.input_terminated``) at that limit; decompression stops at it
too.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import parse_qsl

from gunicorn.http.errors import ParseException
from werkzeug.exceptions import (
    ClientDisconnected,
    RequestEntityTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from werkzeug.wrappers import Request

from .messages import InvalidMessage
from .ops.phases import Phases
from .strictjson import loads

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"

#: The most of a refused body the gateway reads and discards before answering, in
#: bytes. A front server (nginx, with client_max_body_size 2m in deploy/) still
#: sending a body when the connection closes turns the answer into a 502, which
#: clients retry; reading the rest lets it deliver the 4xx instead.
DRAIN_LIMIT = 4 * 1024 * 1024


def read_body(request: Request, max_body: int) -> bytes:
    """The whole request body, decompressed, at most ``max_body`` bytes.

    ``Content-Encoding: gzip`` (or ``x-gzip``) and ``deflate`` (zlib, or raw
    deflate as some clients send it) are decompressed as a stream whose output
    is capped at ``max_body`` bytes, so a small "bomb" never grows in memory
    (RFC 9110 section 8.4). ``identity`` is accepted too.

    Args:
        request: the werkzeug request.
        max_body: the largest body accepted, compressed or decompressed, in bytes.

    Raises:
        RequestEntityTooLarge: the body, or what it decompresses to, is longer than
            ``max_body`` (413).
        UnsupportedMediaType: another Content-Encoding (415).
        RequestTimeout: the server's read timeout passed while reading (408).
        InvalidMessage: the request framing is broken (a chunk gunicorn cannot
            decode, or a body that ends early), or the compressed data is corrupt
            or truncated (400).
    """
    # One byte over the limit, so a chunked body that reaches it is known to be
    # too long instead of being silently cut short.
    request.max_content_length = max_body + 1
    data = _read_input(request)
    if len(data) > max_body:
        raise RequestEntityTooLarge()
    header = request.headers.get("Content-Encoding", "")
    for coding in reversed([c.strip().lower() for c in header.split(",") if c.strip()]):
        if coding in ("gzip", "x-gzip"):
            data = _inflate(data, 16 + zlib.MAX_WBITS, max_body, coding)
        elif coding == "deflate":
            try:
                data = _inflate(data, zlib.MAX_WBITS, max_body, coding)
            except InvalidMessage:
                data = _inflate(data, -zlib.MAX_WBITS, max_body, coding)
        elif coding != "identity":
            raise UnsupportedMediaType(
                f"Content-Encoding {coding} is not supported; send gzip, deflate or identity."
            )
    return data


def _read_input(request: Request) -> bytes:
    """Read the body from ``wsgi.input``, turning broken framing into a 400 or 408."""
    with _framing_errors():
        return request.get_data(cache=False)


def read_exactly(stream: IO[bytes], length: int) -> bytes:
    """Exactly ``length`` bytes of a body from a WSGI input stream (the hot path,
    app.py), with the errors of :func:`read_body`.

    Raises:
        RequestTimeout: the server's read timeout passed while reading (408).
        InvalidMessage: the body ended before ``length`` bytes, or its framing is
            broken (400).
    """
    with _framing_errors():
        data = stream.read(length)
    if len(data) != length:
        raise _ended_early()
    return data


def _ended_early() -> InvalidMessage:
    return InvalidMessage.one(
        None, "The request framing is broken: the body ended before its declared end.", "framing"
    )


@contextlib.contextmanager
def _framing_errors() -> Iterator[None]:
    """Errors while reading a body become 400 (broken framing) or 408 (too slow)."""
    try:
        yield
    except ParseException as exc:
        # gunicorn's chunked decoder: a bad chunk size, terminator or extension,
        # or a malformed trailer (RFC 9112 section 7.1).
        detail = str(exc)[:120]
        raise InvalidMessage.one(
            None, f"The request framing is broken: {detail}.", "framing"
        ) from None
    except (OSError, ClientDisconnected) as exc:
        # werkzeug turns an OSError from the stream into ClientDisconnected.
        cause = exc if isinstance(exc, OSError) else exc.__context__
        if isinstance(cause, TimeoutError):
            # The server's read timeout (the SCGI connection deadline): a slow
            # client, not a wrong message, so not a 400.
            raise RequestTimeout("The body did not arrive in time; send it again.") from None
        # The body stopped before its declared length or last chunk (gunicorn's
        # NoMoreData), or the connection broke while it was read.
        raise _ended_early() from None


def drain(request: Request, limit: int = DRAIN_LIMIT) -> None:
    """Read and discard what the app left of the request body, up to ``limit`` bytes.

    Called after a 4xx so that the connection can be closed (or reused) without
    resetting a client or proxy that is still sending. werkzeug's input stream
    knows how much of a Content-Length body was read; a chunked body is read to
    its end. Errors while reading are ignored: the connection closes anyway.
    """
    try:
        if request.environ.get("wsgi.input_terminated"):
            # The server ends the input at the body's end (gunicorn, de-chunked).
            stream = request.environ["wsgi.input"]
        else:
            request.max_content_length = None  # werkzeug's stream, without the 413 check
            stream = request.stream  # knows how much of CONTENT_LENGTH was read
        while limit > 0:
            chunk = stream.read(min(limit, 65536))
            if not chunk:
                return
            limit -= len(chunk)
    except (OSError, ValueError, ParseException, ClientDisconnected):
        pass


def _inflate(data: bytes, wbits: int, limit: int, coding: str) -> bytes:
    out = bytearray()
    while True:
        engine = zlib.decompressobj(wbits)
        try:
            out += engine.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise InvalidMessage.one(
                None, f"The {coding} body is corrupt ({exc}).", "encoding"
            ) from None
        if len(out) > limit or engine.unconsumed_tail:
            raise RequestEntityTooLarge()
        if not engine.eof:
            raise InvalidMessage.one(None, f"The {coding} body is truncated.", "encoding")
        data = engine.unused_data
        if not data or wbits != 16 + zlib.MAX_WBITS:
            if data:
                raise InvalidMessage.one(
                    None, f"The {coding} body has data after its end.", "encoding"
                )
            return bytes(out)
        # gzip allows several members one after another (RFC 1952 section 2.2).


def _content_type(request: Request, allow_form: bool) -> bool:
    """True for JSON, False for a form; 415 for anything else."""
    mimetype = request.mimetype
    if mimetype == JSON_TYPE or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    ):
        return True
    if allow_form and mimetype == FORM_TYPE:
        return False
    kinds = f"{JSON_TYPE} or {FORM_TYPE}" if allow_form else JSON_TYPE
    raise UnsupportedMediaType(f"Send {kinds}, not {mimetype or 'no Content-Type'}.")


def _form_fields(raw: bytes) -> dict[str, Any]:
    """The fields of a form-urlencoded body, each name and value strict UTF-8 text.

    The body is split and percent-decoded as latin-1, which keeps every byte, so
    that raw and percent-encoded bytes are both checked as UTF-8 (the encoding
    the WHATWG URL standard gives application/x-www-form-urlencoded).

    Raises:
        InvalidMessage: a name or value is not UTF-8, or a field is given twice (400).
    """
    fields: dict[str, Any] = {}
    for name_bytes, value_bytes in parse_qsl(
        raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1"
    ):
        try:
            name = name_bytes.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidMessage.one(
                None, "A form field name must be UTF-8 text.", "utf8"
            ) from None
        try:
            value = value_bytes.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidMessage.one(name, f"{name} must be UTF-8 text.", "utf8") from None
        if name in fields:
            raise InvalidMessage.one(
                name, f"{name} is given twice; send each field once.", "duplicate_key"
            )
        fields[name] = value
    return fields


def read_message(
    request: Request, max_body: int, phases: Phases | None = None
) -> bytes | dict[str, Any]:
    """The body of a POST /message: JSON bytes, or the fields of a form.

    Args:
        request: the werkzeug request.
        max_body: the largest body accepted, in bytes (HABITAT_MAX_BODY).
        phases: where to end the ``read`` phase once the body is read.

    Returns:
        The decompressed bytes of a JSON body, for :func:`habitat_http.validator.message`;
        or, for a form, a dict of field name to value, every value a string
        except ``data``, which is the decoded JSON value.

    Raises:
        UnsupportedMediaType: not JSON or form-urlencoded, or an unknown
            Content-Encoding (415).
        RequestEntityTooLarge: the body is over the limit (413).
        InvalidMessage: the form's ``data`` is not JSON, a form name or value is
            not UTF-8, a form field or a key of ``data`` is given twice, an integer
            is too long, the framing is broken, or the compressed data is corrupt
            (400); ``field`` names the place when known.
    """
    is_json = _content_type(request, allow_form=True)
    raw = read_body(request, max_body)
    if phases is not None:
        phases.end("read")
    if is_json:
        return raw
    fields = _form_fields(raw)
    if "data" in fields:
        try:
            fields["data"] = loads(fields["data"], field="data")
        except ValueError as exc:
            raise InvalidMessage.one(
                "data", f"data must be the JSON text of an object ({exc})."
            ) from None
    return fields


def read_batch(request: Request, max_body: int, phases: Phases | None = None) -> bytes:
    """The decompressed bytes of a POST /messages body, for
    :func:`habitat_http.validator.batch`.

    Args:
        request: the werkzeug request.
        max_body: the largest body accepted, in bytes (HABITAT_MAX_BATCH_BODY).
        phases: where to end the ``read`` phase once the body is read.

    Raises:
        UnsupportedMediaType: not JSON, or an unknown Content-Encoding (415).
        RequestEntityTooLarge: the body is over the limit (413).
        InvalidMessage: the framing is broken, or the compressed data is corrupt (400).
    """
    _content_type(request, allow_form=False)
    raw = read_body(request, max_body)
    if phases is not None:
        phases.end("read")
    return raw
