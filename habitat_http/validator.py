"""The one validator of JSON message bodies: bytes in, checked messages out.

Both request paths (the plain-WSGI hot path and the werkzeug path, see app.py)
call :func:`message` for ``POST /message`` and :func:`batch` for ``POST
/messages`` with the body's bytes. Forms are decoded by body.py and checked by
:func:`habitat_http.messages.validate`.

**Fast, then exact.** Each call first validates the bytes in one pydantic call:
a ``TypeAdapter`` of a union discriminated on ``type`` (the message models of
messages.py, with the same field validators), whose ``validate_json`` parses and
checks at once. Its result is used only when it succeeds and none of the rare
cases below applies; everything else goes the exact way: strictjson's parse, then
:func:`habitat_http.messages.validate` per message, which gives every answer
exactly as before (the per-field errors, their order, and the strict JSON rules).
A body the exact way accepts is accepted the same by the fast way, with the same
Message and ``ignored`` list (tests/test_validator.py proves it for any body).

pydantic's JSON parser does not enforce these rules of strictjson.py, so a body
that might break one goes the exact way; each is found with a byte scan:

- a key given twice (the parser keeps the last). Without any backslash in the
  body every ``:`` byte is either a key's separator or inside a string, so the
  body has no key given twice exactly when its count of ``:`` equals the pairs of
  the parsed objects plus the ``:`` in the parsed strings; a body with a
  backslash (an escape) goes the exact way;
- NaN and Infinity (the parser accepts them): any ``NaN`` or ``Infinity`` in the
  bytes, even inside a string;
- an integer of more than 1000 digits: any run of 1001 digits;
- lone surrogates: only written as escapes, so covered by the backslash rule;
- UTF-16 and UTF-32 bodies, and a UTF-8 byte-order mark: the parser refuses them,
  so the exact way decodes them.

We chose pydantic over msgspec by measurement: for a real RECEIVED_TELEM body,
msgspec decodes into tagged structs in 0.3 us and pydantic in 1.9 us (json.loads
alone: 3.1 us), but msgspec's constraint errors are not our sentences, so every
error would need the exact way anyway, and the field validators (callsign, base64,
GPS time, blocked callsigns) would exist twice. pydantic keeps them in one place
and adds no dependency.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError
from werkzeug.exceptions import RequestEntityTooLarge

from . import messages as m
from .strictjson import MAX_INT_DIGITS, first_problem, loads, parse

_LONG_INTEGER = re.compile(rb"[0-9]{%d}" % (MAX_INT_DIGITS + 1))
_ALLOW = ConfigDict(strict=True, extra="allow", frozen=True)


@dataclass(frozen=True, slots=True)
class Settings:
    """What validation needs from the gateway's configuration and the request.

    Attributes:
        now: server time of receipt, seconds since the UNIX epoch.
        ip: the client's address, stored with each message.
        blocked_callsigns: upper-cased callsigns refused with 400.
        future_tolerance: seconds by which time_created may exceed time_uploaded.
    """

    now: float
    ip: str | None
    blocked_callsigns: frozenset[str] = frozenset()
    future_tolerance: float = 60.0


# The data models with extra="allow", so that the ignored keys are known (and counted).
class _ReceivedTelemData(m.ReceivedTelemData):
    model_config = _ALLOW


class _ListenerInfoData(m.ListenerInfoData):
    model_config = _ALLOW


class _TimeFromText(dict[str, int]):
    """A GPS time given as ``"HH:MM:SS"``: two ``:`` in the body, not three pairs."""


def _gps_time(value: Any) -> dict[str, int]:
    time = m._gps_time(value)
    return _TimeFromText(time) if isinstance(value, str) else time


class _ListenerTelemData(m.ListenerTelemData):
    model_config = _ALLOW

    time: Annotated[dict[str, int], PlainValidator(_gps_time)]


class _Message(BaseModel):
    """The envelope of messages.Envelope with typed ``data``; extras are kept to count."""

    model_config = _ALLOW

    callsign: str  # checked in _accept, which keeps the posted text for the access log
    time_created: m.Timestamp
    time_uploaded: m.Timestamp
    message_id: Annotated[str, AfterValidator(m._message_id)] | None = None


class _ReceivedTelem(_Message):
    type: Literal["RECEIVED_TELEM"]
    data: _ReceivedTelemData


class _ListenerInfo(_Message):
    type: Literal["LISTENER_INFO"]
    data: _ListenerInfoData


class _ListenerTelem(_Message):
    type: Literal["LISTENER_TELEM"]
    data: _ListenerTelemData


#: Each data model's field names, in the order they are stored (model_dump's order).
_FIELDS: dict[type[BaseModel], tuple[str, ...]] = {
    c: tuple(c.model_fields) for c in (_ReceivedTelemData, _ListenerInfoData, _ListenerTelemData)
}
_Any = Annotated[_ReceivedTelem | _ListenerInfo | _ListenerTelem, Field(discriminator="type")]
_ONE: TypeAdapter[_Message] = TypeAdapter(_Any)
_MANY: TypeAdapter[list[_Message]] = TypeAdapter(list[_Any])  # type: ignore[arg-type]


def _rare(raw: bytes) -> bool:
    """True when ``raw`` might break a rule the fast parser does not enforce."""
    return (
        b"\\" in raw
        or b"NaN" in raw
        or b"Infinity" in raw
        or (len(raw) > MAX_INT_DIGITS and _LONG_INTEGER.search(raw) is not None)
    )


def _pairs_and_colons(value: Any) -> int:
    """Pairs of every object in a parsed JSON value, plus the ``:`` in its strings."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            count += item.count(":")
        elif isinstance(item, dict):
            count += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _expected_colons(msg: _Message) -> int:
    """The ``:`` bytes the JSON text of ``msg`` holds when no key was given twice."""
    data = msg.data  # type: ignore[attr-defined]
    # model_fields_set holds the extra keys too, so their pairs are counted there.
    count = len(msg.model_fields_set) + len(data.model_fields_set)
    if msg.message_id is not None:
        count += msg.message_id.count(":")
    if extra := msg.__pydantic_extra__:
        count += _pairs_and_colons(extra) - len(extra)
    if extra := data.__pydantic_extra__:
        count += _pairs_and_colons(extra) - len(extra)
    if isinstance(data, _ListenerInfoData):
        texts = (data.name, data.location, data.radio, data.antenna)
        count += sum(text.count(":") for text in texts if text)
    elif isinstance(data, _ListenerTelemData):
        count += 2 if isinstance(data.time, _TimeFromText) else 3
    return count


def _accept(msg: _Message, settings: Settings) -> m.Accepted:
    """The Accepted of a message the fast way validated (as messages.validate builds it)."""
    if msg.time_created - msg.time_uploaded > settings.future_tolerance:
        raise _Exact
    try:
        callsign = m.check_callsign(msg.callsign, settings.blocked_callsigns)
    except PydanticCustomError:
        raise _Exact from None
    data = msg.data  # type: ignore[attr-defined]
    stored = {k: v for k in _FIELDS[type(data)] if (v := getattr(data, k)) is not None}
    if isinstance(time := stored.get("time"), _TimeFromText):
        stored["time"] = dict(time)
    created, uploaded = m.clock_correct(msg.time_created, msg.time_uploaded, settings.now)
    type_: str = msg.type  # type: ignore[attr-defined]
    message = m.Message(
        callsign=callsign,
        type=type_,
        time_created=created,
        time_uploaded=uploaded,
        data=stored,
        ip=settings.ip,
        time_received=settings.now,
        dedup_key=m.dedup_key(callsign, type_, msg.time_created, stored, msg.message_id),
    )
    extra = data.__pydantic_extra__
    return m.Accepted(message, sorted(extra) if extra else [], msg.callsign)


class _Exact(Exception):
    """The fast way cannot decide; take the exact way."""


def _context(settings: Settings) -> dict[str, Any]:
    return {"blocked": settings.blocked_callsigns}


def fields(fields: dict[str, Any], settings: Settings) -> m.Accepted:
    """Validate one message given as decoded fields (a form, or the exact way).

    Raises:
        InvalidMessage: a rule is broken (400); it carries the posted callsign and
            type as hints for the access log and metrics.
    """
    try:
        return m.validate(
            fields,
            now=settings.now,
            ip=settings.ip,
            blocked_callsigns=settings.blocked_callsigns,
            future_tolerance=settings.future_tolerance,
        )
    except m.InvalidMessage as exc:
        callsign, type_ = fields.get("callsign"), fields.get("type")
        exc.callsign_hint = callsign[:32] if isinstance(callsign, str) else None
        exc.type_hint = type_ if isinstance(type_, str) and type_ in m.DATA_MODELS else None
        raise


def _exact_fields(value: Any, settings: Settings) -> m.Accepted:
    if not isinstance(value, dict):
        raise m.InvalidMessage.one(None, "The body must be a JSON object holding one message.")
    return fields(value, settings)


def not_json(exc: ValueError) -> m.InvalidMessage:
    """The 400 for a body that is not (strict) JSON."""
    return m.InvalidMessage.one(None, f"The body is not valid JSON: {exc}.", "json")


def message(raw: bytes, settings: Settings) -> m.Accepted:
    """Validate the JSON body of ``POST /message``: one message object.

    Args:
        raw: the body's bytes, decompressed (UTF-8, -16 or -32; RFC 8259).
        settings: the server time, client address and configured rules.

    Returns:
        The clock-corrected Message and the sorted unknown ``data`` keys dropped.

    Raises:
        InvalidMessage: the body is not strict JSON, not an object, or breaks a rule
            of messages.py; naming the field (400).
    """
    if not _rare(raw):
        try:
            msg = _ONE.validate_json(raw, context=_context(settings))
            if raw.count(b":") == _expected_colons(msg):
                return _accept(msg, settings)
        except (ValidationError, _Exact):
            pass
    try:
        value = loads(raw)
    except ValueError as exc:
        raise not_json(exc) from None
    return _exact_fields(value, settings)


def batch(raw: bytes, settings: Settings, max_items: int) -> list[m.Accepted | m.InvalidMessage]:
    """Validate the JSON body of ``POST /messages``: an array of message objects.

    The whole array is validated in one call; only when some item fails (or a rare
    case applies, see the module docstring) is each item judged alone, so that
    every item's errors are exact.

    Args:
        raw: the body's bytes, decompressed.
        settings: as for :func:`message`; every item gets the same.
        max_items: the most items in one batch.

    Returns:
        Per item, in order, its Accepted or the InvalidMessage saying why it is
        rejected (a key given twice, an integer too long, not an object, a rule).

    Raises:
        InvalidMessage: the body is not strict JSON, or not a non-empty array (400).
        RequestEntityTooLarge: more than ``max_items`` items (413).
    """
    if not _rare(raw):
        try:
            msgs = _MANY.validate_json(raw, context=_context(settings))
            if 0 < len(msgs) <= max_items and raw.count(b":") == sum(
                _expected_colons(x) for x in msgs
            ):
                return [_accept(x, settings) for x in msgs]
        except (ValidationError, _Exact):
            pass
    items = _exact_items(raw, max_items)
    results: list[m.Accepted | m.InvalidMessage] = []
    for item in items:
        if isinstance(item, m.InvalidMessage):
            results.append(item)
            continue
        try:
            if not isinstance(item, dict):
                raise m.InvalidMessage.one(None, "The item must be a JSON object.")
            results.append(_exact_fields(item, settings))
        except m.InvalidMessage as exc:
            results.append(exc)
    return results


def _exact_items(raw: bytes, max_items: int) -> Sequence[Any]:
    try:
        items, marked = parse(raw)
    except ValueError as exc:
        raise not_json(exc) from None
    if not isinstance(items, list):
        raise m.InvalidMessage.one(None, "The body must be a JSON array of message objects.")
    if not items:
        raise m.InvalidMessage.one(None, "The batch is empty; send 1 to 1000 messages.")
    if len(items) > max_items:
        raise RequestEntityTooLarge(
            f"The batch holds {len(items)} messages; send at most {max_items} at once."
        )
    if marked:  # each item with a key given twice or a too-long integer is rejected alone
        items = [m.InvalidMessage([p]) if (p := first_problem(i)) else i for i in items]
    return items
