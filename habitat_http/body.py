"""Decoding a request body into message fields.

Two content types carry a message (habitat's HTTP POST format, DESIGN.md section 3):

- ``application/json``: one JSON object with the message's fields;
- ``application/x-www-form-urlencoded``: the same field names, where ``data`` holds
  the JSON text of the data object.

Anything else gets 415. The body size limit is enforced by werkzeug through
``Request.max_content_length`` (413) before any of this runs out of memory.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.exceptions import UnsupportedMediaType
from werkzeug.wrappers import Request

from .messages import InvalidMessage

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"


def _refuse_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity, which are not JSON (RFC 8259 section 6).
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str | bytes) -> Any:
    """Parse strict JSON (RFC 8259): no NaN or Infinity; UTF-8, -16 or -32 bytes.

    Raises:
        ValueError: the text is not valid JSON, or nests too deeply to parse.
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nests too deeply") from None


def read_fields(request: Request) -> dict[str, Any]:
    """The message fields of a POST body, with ``data`` decoded to a Python object.

    Args:
        request: the werkzeug request; its ``max_content_length`` is already set.

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
    if mimetype == JSON_TYPE or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    ):
        try:
            fields = loads(request.get_data(cache=False))
        except ValueError as exc:
            raise InvalidMessage.one(None, f"The body is not valid JSON: {exc}.") from None
        if not isinstance(fields, dict):
            raise InvalidMessage.one(None, "The body must be a JSON object holding one message.")
        return fields
    if mimetype == FORM_TYPE:
        fields = {key: request.form[key] for key in request.form}
        if "data" in fields:
            try:
                fields["data"] = loads(fields["data"])
            except ValueError as exc:
                raise InvalidMessage.one(
                    "data", f"data must be the JSON text of an object ({exc})."
                ) from None
        return fields
    raise UnsupportedMediaType(
        f"Send the message as {JSON_TYPE} or {FORM_TYPE}, not {mimetype or 'no Content-Type'}."
    )
