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

import io
import json
import re
import zlib
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.formparser import FormDataParser
from werkzeug.wrappers import Request

from .messages import InvalidMessage

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"


def _refuse_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity, which are not JSON (RFC 8259 section 6).
    raise ValueError(f"{name} is not valid JSON")


# A \uD800-\uDFFF escape: the only way a lone surrogate gets into parsed JSON.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads(text: str | bytes) -> Any:
    """Parse strict JSON (RFC 8259): no NaN or Infinity; UTF-8, -16 or -32 bytes.

    Text with a lone surrogate (an unpaired ``\ud800``-``\udfff`` escape) is
    refused, as it cannot be stored or sent back as UTF-8 (RFC 8259 section 8.2).

    Raises:
        ValueError: the text is not valid JSON, holds a lone surrogate, or nests
            too deeply to parse.
    """
    if isinstance(text, bytes):
        # Decode first (UTF-8, -16 or -32, RFC 8259 section 8.1), so the escape
        # check below sees text whatever the encoding.
        text = text.decode(json.detect_encoding(text), "strict")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nests too deeply") from None
    if _SURROGATE_ESCAPE.search(text):  # rare: check every string only then
        _check_unicode(value)
    return value


def _check_unicode(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("a string holds an unpaired UTF-16 surrogate") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


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
        InvalidMessage: the compressed data is corrupt or truncated (400).
    """
    # One byte over the limit, so a chunked body that reaches it is known to be
    # too long instead of being silently cut short.
    request.max_content_length = max_body + 1
    data = request.get_data(cache=False)
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


def _inflate(data: bytes, wbits: int, limit: int, coding: str) -> bytes:
    out = bytearray()
    while True:
        engine = zlib.decompressobj(wbits)
        try:
            out += engine.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise InvalidMessage.one(None, f"The {coding} body is corrupt ({exc}).") from None
        if len(out) > limit or engine.unconsumed_tail:
            raise RequestEntityTooLarge()
        if not engine.eof:
            raise InvalidMessage.one(None, f"The {coding} body is truncated.")
        data = engine.unused_data
        if not data or wbits != 16 + zlib.MAX_WBITS:
            if data:
                raise InvalidMessage.one(None, f"The {coding} body has data after its end.")
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


def _json_body(raw: bytes) -> Any:
    try:
        return loads(raw)
    except ValueError as exc:
        raise InvalidMessage.one(None, f"The body is not valid JSON: {exc}.") from None


def read_fields(request: Request, max_body: int) -> dict[str, Any]:
    """The message fields of a POST /message body, with ``data`` decoded.

    Args:
        request: the werkzeug request.
        max_body: the largest body accepted, in bytes (HABITAT_MAX_BODY).

    Returns:
        A dict of field name to value. For form bodies every value is a string,
        except ``data``, which is the decoded JSON value.

    Raises:
        UnsupportedMediaType: not JSON or form-urlencoded, or an unknown
            Content-Encoding (415).
        RequestEntityTooLarge: the body is over the limit (413).
        InvalidMessage: the body is not a JSON object, the form's ``data`` is not
            JSON, or the compressed data is corrupt (400).
    """
    is_json = _content_type(request, allow_form=True)
    raw = read_body(request, max_body)
    if is_json:
        fields = _json_body(raw)
        if not isinstance(fields, dict):
            raise InvalidMessage.one(None, "The body must be a JSON object holding one message.")
        return fields
    parser = FormDataParser(max_form_memory_size=max_body, max_content_length=max_body)
    _, form, _ = parser.parse(io.BytesIO(raw), FORM_TYPE, len(raw), request.mimetype_params)
    fields = {key: form[key] for key in form}
    if "data" in fields:
        try:
            fields["data"] = loads(fields["data"])
        except ValueError as exc:
            raise InvalidMessage.one(
                "data", f"data must be the JSON text of an object ({exc})."
            ) from None
    return fields


def read_batch(request: Request, max_body: int, max_items: int) -> list[Any]:
    """The items of a POST /messages body: a JSON array of message objects.

    Args:
        request: the werkzeug request.
        max_body: the largest body accepted, in bytes (HABITAT_MAX_BATCH_BODY).
        max_items: the most items in one batch.

    Raises:
        UnsupportedMediaType: not JSON, or an unknown Content-Encoding (415).
        RequestEntityTooLarge: the body is over the limit, or holds more than
            ``max_items`` items (413).
        InvalidMessage: the body is not a non-empty JSON array, or its compressed
            data is corrupt (400).
    """
    _content_type(request, allow_form=False)
    items = _json_body(read_body(request, max_body))
    if not isinstance(items, list):
        raise InvalidMessage.one(None, "The body must be a JSON array of message objects.")
    if not items:
        raise InvalidMessage.one(None, "The batch is empty; send 1 to 1000 messages.")
    if len(items) > max_items:
        raise RequestEntityTooLarge(
            f"The batch holds {len(items)} messages; send at most {max_items} at once."
        )
    return items
