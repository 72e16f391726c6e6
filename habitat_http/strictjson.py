"""Strict JSON for message bodies (RFC 8259), with the rules the stdlib leaves open.

- No NaN or Infinity (not JSON, RFC 8259 section 6); no lone surrogates, which
  cannot be stored or sent back as UTF-8 (section 8.2). These are syntax errors.
- A key given twice in one object is refused, naming it. RFC 8259 section 4 says
  names SHOULD be unique and leaves duplicates to the parser; resolving them
  silently (the last wins in Python) would store what the client did not mean.
- An integer of more than :data:`MAX_INT_DIGITS` digits is refused as too long,
  before Python's own conversion limit can produce an error about its internals.

The two rules are found while parsing (json's ``object_pairs_hook`` and
``parse_int``) without stopping it, so that each item of a batch can be judged
alone; :func:`first_problem` then names the dotted path, e.g. ``data.name``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .messages import FieldError, InvalidMessage

#: The longest integer read from a body. No field takes more than 16 digits; this
#: leaves room for ignored fields while every conversion stays cheap.
MAX_INT_DIGITS = 1000

# A \uD800-\uDFFF escape: the only way a lone surrogate gets into parsed JSON.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class _DuplicateKeys(dict[str, Any]):
    """A parsed JSON object in which the key ``duplicate`` was given more than once."""

    duplicate: str = ""


class _LongInteger:
    """Stands for a JSON integer longer than MAX_INT_DIGITS; never converted."""

    __slots__ = ()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse(text: str | bytes) -> tuple[Any, bool]:
    """Parse strict JSON; UTF-8, -16 or -32 bytes (RFC 8259 section 8.1), or text.

    Returns:
        The value, and whether a key given twice or a too-long integer was marked
        in it; :func:`first_problem` then says where.

    Raises:
        ValueError: the text is not valid JSON, holds NaN, Infinity or a lone
            surrogate, or nests too deeply to parse.
    """
    if isinstance(text, bytes):
        # Decode first, so the escape check below sees text whatever the encoding.
        text = text.decode(json.detect_encoding(text), "strict")
    marked = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal marked
        obj = dict(items)
        if len(obj) == len(items):
            return obj
        marked = True
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                break
            seen.add(key)
        flagged = _DuplicateKeys(obj)
        flagged.duplicate = key
        return flagged

    def integer(digits: str) -> int | _LongInteger:
        nonlocal marked
        if len(digits) - digits.startswith("-") <= MAX_INT_DIGITS:
            return int(digits)
        marked = True
        return _LongInteger()

    try:
        value = json.loads(
            text, object_pairs_hook=pairs, parse_int=integer, parse_constant=_refuse_constant
        )
    except RecursionError:
        raise ValueError("JSON nests too deeply") from None
    if _SURROGATE_ESCAPE.search(text):  # rare: check every string only then
        _check_unicode(value)
    return value, marked


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


def _join(path: str | None, key: str | int) -> str:
    return f"{path}.{key}" if path else str(key)


def first_problem(value: Any, field: str | None = None) -> FieldError | None:
    """The first key given twice or too-long integer in ``value``, in document order.

    Args:
        value: what :func:`parse` returned (or one item of it).
        field: the dotted path of ``value`` itself, e.g. ``data``; None at the top.

    Returns:
        The problem, naming its dotted path, or None when there is none.
    """
    stack: list[tuple[str | None, Any]] = [(field, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, _LongInteger):
            where = path or "A number"
            return FieldError(
                path,
                f"{where} is a number too long to read; send at most {MAX_INT_DIGITS} digits.",
                "number_too_long",
            )
        if isinstance(item, _DuplicateKeys):
            key = _join(path, item.duplicate)
            return FieldError(key, f"{key} is given twice; send each key once.", "duplicate_key")
        if isinstance(item, dict):
            stack.extend((_join(path, k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((_join(path, i), v) for i, v in reversed(list(enumerate(item))))
    return None


def loads(text: str | bytes, *, field: str | None = None) -> Any:
    """Parse strict JSON and refuse a key given twice or a too-long integer.

    Args:
        text: the JSON text or its bytes.
        field: the dotted path of the whole text in the message, e.g. ``data``
            for a form's data field; None for a whole body.

    Raises:
        ValueError: not valid JSON (see :func:`parse`).
        InvalidMessage: a key is given twice or an integer is too long, naming
            its dotted path (400).
    """
    value, marked = parse(text)
    if marked and (problem := first_problem(value, field)):
        raise InvalidMessage([problem])
    return value
