"""Decoding a request body into message fields.

Two content types carry a message (habitat's HTTP POST format, DESIGN.md section 3):

- ``application/json``: one JSON object with the message's fields;
- ``application/x-www-form-urlencoded``: the same field names, where ``data`` holds
  the JSON text of the data object.

Anything else gets 415. The body size limit is enforced while reading: werkzeug
refuses a declared Content-Length over ``Request.max_content_length`` at once,
and stops reading a chunked body (``wsgi.input_terminated``) at that limit. The
app sets that limit one byte over the real one, so a body that reaches it is
known to be too long instead of being silently cut short.
"""

from __future__ import annotations

import json
import re
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.wrappers import Request

from .messages import InvalidMessage

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"


def _refuse_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity, which are not JSON (RFC 8259 section 6).
    raise ValueError(f"{name} is not valid JSON")


# A \uD800-\uDFFF escape: the only way a lone surrogate gets into parsed JSON.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def loads(text: str | bytes) -> Any:
    """Parse strict JSON (RFC 8259): no NaN or Infinity; UTF-8, -16 or -32 bytes.

    Text with a lone surrogate (an unpaired ``\ud800``-``\udfff`` escape) is
    refused, as it cannot be stored or sent back as UTF-8 (RFC 8259 section 8.2).

    Raises:
        ValueError: the text is not valid JSON, holds a lone surrogate, or nests
            too deeply to parse.
    """
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nests too deeply") from None
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if _SURROGATE_ESCAPE.search(raw):  # rare: check every string only then
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
    """The whole request body, at most ``max_body`` bytes.

    Args:
        request: the werkzeug request, with ``max_content_length`` set to
            ``max_body + 1`` so that an over-long chunked body is detectable.
        max_body: the largest body accepted, in bytes.

    Raises:
        RequestEntityTooLarge: the body is longer than ``max_body`` (413).
    """
    data = request.get_data(cache=True)  # cached: form parsing reads it again
    if len(data) > max_body:
        raise RequestEntityTooLarge()
    return data


def read_fields(request: Request, max_body: int) -> dict[str, Any]:
    """The message fields of a POST body, with ``data`` decoded to a Python object.

    Args:
        request: the werkzeug request; its ``max_content_length`` is ``max_body + 1``.
        max_body: the largest body accepted, in bytes.

    Returns:
        A dict of field name to value. For form bodies every value is a string,
        except ``data``, which is the decoded JSON value.

    Raises:
        UnsupportedMediaType: not JSON or form-urlencoded (415).
        RequestEntityTooLarge: the body is over the limit (413).
        InvalidMessage: the body is not a JSON object, or the form's ``data`` is not
            JSON (400).
    """
    mimetype = request.mimetype
    is_json = mimetype == JSON_TYPE or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )
    if not is_json and mimetype != FORM_TYPE:
        raise UnsupportedMediaType(
            f"Send the message as {JSON_TYPE} or {FORM_TYPE}, not {mimetype or 'no Content-Type'}."
        )
    raw = read_body(request, max_body)
    if is_json:
        try:
            fields = loads(raw)
        except ValueError as exc:
            raise InvalidMessage.one(None, f"The body is not valid JSON: {exc}.") from None
        if not isinstance(fields, dict):
            raise InvalidMessage.one(None, "The body must be a JSON object holding one message.")
        return fields
    fields = {key: request.form[key] for key in request.form}
    if "data" in fields:
        try:
            fields["data"] = loads(fields["data"])
        except ValueError as exc:
            raise InvalidMessage.one(
                "data", f"data must be the JSON text of an object ({exc})."
            ) from None
    return fields
