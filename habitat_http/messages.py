"""Message types, their data rules, callsign rules and clock correction.

Pure code with no I/O. The rules follow habitat's message format as modernised in
docs/architecture.rst ("Messages"): a client posts ``callsign``, ``type``,
``time_created``, ``time_uploaded`` and ``data``; the gateway checks each field, corrects the
client's clock and hands back a :class:`Message` ready to store.

Schemas are pydantic models in strict mode, so ``true`` is never a number and
``"5"`` is never a string where a number is wanted. Every failure becomes an
:class:`InvalidMessage` naming the dotted field, e.g. ``data.latitude``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

#: JSON text of a str as json.dumps(ensure_ascii=False) writes it (the C encoder).
_json_str: Final = json.encoder.encode_basestring

RECEIVED_TELEM: Final = "RECEIVED_TELEM"
LISTENER_INFO: Final = "LISTENER_INFO"
LISTENER_TELEM: Final = "LISTENER_TELEM"
#: Made by the parser from RECEIVED_TELEM; clients may not post it.
TELEM: Final = "TELEM"
#: The types a client may post, in habitat's order.
CLIENT_TYPES: Final = (RECEIVED_TELEM, LISTENER_INFO, LISTENER_TELEM)

MAX_CALLSIGN = 32
MAX_RAW_BYTES = 2048
MAX_INFO_CHARS = 256
MAX_MESSAGE_ID = 64
#: Timestamps outside 0 .. 10**10 s (1970 .. 2286) are client bugs, not clock skew.
MAX_TIMESTAMP = 10**10
_CALLSIGN_RE = re.compile(rf"[A-Za-z0-9/_-]{{1,{MAX_CALLSIGN}}}")
_HAS_ALNUM_RE = re.compile(r"[A-Za-z0-9]")
_DECIMAL_RE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_HMS_RE = re.compile(r"([0-9]{1,2}):([0-9]{2}):([0-9]{2})")
# Numbers beyond this magnitude are nonsense for every field here and would lose
# precision as floats.
_MAX_MAGNITUDE = 1e15


@dataclass(frozen=True, slots=True)
class Message:
    """One message as it is stored and as sinks receive it.

    Attributes:
        callsign: the listener's callsign, upper-cased.
        type: one of :data:`CLIENT_TYPES` (or ``TELEM`` from the parser).
        time_created: when the listener made the message, in integer seconds since
            the UNIX epoch, corrected to the server's clock.
        time_uploaded: when the server received it, in integer seconds since the
            UNIX epoch (the server clock).
        data: the type's data with unknown keys removed (JSON-compatible).
        ip: the client's IP address as text, or None when unknown.
        time_received: server time of receipt in seconds since the UNIX epoch, with
            sub-second precision.
        dedup_key: what makes two uploads the same message (see :func:`dedup_key`);
            the store keeps one message per key. None for messages not from clients.
    """

    callsign: str
    type: str
    time_created: int
    time_uploaded: int
    data: dict[str, Any]
    ip: str | None
    time_received: float
    dedup_key: str | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage(Message):
    """A :class:`Message` as read back from the store, which sinks receive.

    Attributes:
        id: the store's id, increasing with each stored message (keyword-only).
    """

    id: int = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One thing wrong with a message: the dotted ``field``, a one-sentence
    ``error``, and ``kind``, a short error type for counting (pydantic's error
    type such as ``number_range``, or ``json``, ``framing``...; never client text)."""

    field: str | None
    error: str
    kind: str = "invalid"

    def as_json(self) -> dict[str, str | None]:
        """The ``{"field": ..., "error": ...}`` object sent to clients."""
        return {"field": self.field, "error": self.error}


class InvalidMessage(Exception):
    """A client sent a message that breaks a rule; the app answers 400.

    Attributes:
        errors: every problem found, first one first; never empty.
        callsign_hint: the callsign as posted (client text, at most 32
            characters), for the access log; None when unknown.
        type_hint: the posted type when it is one of the types (a bounded
            label for metrics); None otherwise.
    """

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(errors[0].error)
        self.errors = errors
        self.callsign_hint: str | None = None
        self.type_hint: str | None = None

    @classmethod
    def one(cls, field: str | None, error: str, kind: str = "invalid") -> InvalidMessage:
        """An InvalidMessage with a single problem (``kind``: see :class:`FieldError`)."""
        return cls([FieldError(field, error, kind)])

    @property
    def first(self) -> FieldError:
        """The first problem, reported in the response's ``field`` and ``error``."""
        return self.errors[0]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid message, the keys of its ``data`` that were dropped (sorted), and
    its callsign as posted (before upper-casing, for the access log)."""

    message: Message
    ignored: list[str] = field(default_factory=list)
    posted_callsign: str | None = None


# --- value validators (pydantic PlainValidator / AfterValidator functions) ---


def _number(value: Any) -> int | float:
    """A JSON number that is finite and of sane magnitude; bools are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number_type", "must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("number_finite", "must be a finite number")
    if abs(value) > _MAX_MAGNITUDE:
        raise PydanticCustomError("number_range", "is far too large")
    return value


def _timestamp(value: Any) -> float:
    """Seconds since the UNIX epoch: a JSON number, or a decimal string as forms send."""
    if isinstance(value, str):
        text = value.strip()
        # Length first: the regex backtracks quadratically on long digit runs.
        if len(text) > 32 or not _DECIMAL_RE.fullmatch(text):
            raise PydanticCustomError(
                "timestamp_type", "must be a UNIX timestamp in seconds, such as 1700000000"
            )
        value = float(text)
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "timestamp_type", "must be a UNIX timestamp in seconds, such as 1700000000"
        )
    if not (0 <= value <= MAX_TIMESTAMP):  # also refuses NaN
        raise PydanticCustomError(
            "timestamp_range", "must be a UNIX timestamp in seconds between 0 and 10000000000"
        )
    return float(value)


def _callsign(value: str, info: ValidationInfo) -> str:
    """Callsign rule (see :func:`check_callsign`), with the blocked callsigns from
    the validation context."""
    return check_callsign(value, info.context.get("blocked", ()) if info.context else ())


def check_callsign(value: str, blocked: Collection[str] = ()) -> str:
    """Callsign rule: 1 to :data:`MAX_CALLSIGN` of A-Z a-z 0-9 / _ -, one letter or
    digit; upper-cased. Upper-cased callsigns in ``blocked`` are refused.

    Raises:
        PydanticCustomError: the rule is broken (a 400 naming ``callsign``).
    """
    if not _CALLSIGN_RE.fullmatch(value):
        raise PydanticCustomError(
            "callsign_pattern",
            "must be 1 to {limit} characters from A-Z, a-z, 0-9, '/', '_' and '-'",
            {"limit": MAX_CALLSIGN},
        )
    if not _HAS_ALNUM_RE.search(value):
        raise PydanticCustomError("callsign_pattern", "must contain at least one letter or digit")
    callsign = value.upper()
    if callsign in blocked:
        raise PydanticCustomError(
            "callsign_blocked",
            "{callsign} is a default or placeholder callsign that this gateway refuses; "
            "set your own callsign in your receiving software",
            {"callsign": callsign},
        )
    return callsign


def _message_type(value: str) -> str:
    if value == TELEM:
        raise PydanticCustomError(
            "type_parser_only",
            "TELEM is made by habitat's parser and cannot be posted; "
            "post the raw string as RECEIVED_TELEM",
        )
    if value not in CLIENT_TYPES:
        raise PydanticCustomError(
            "type_unknown", "must be one of RECEIVED_TELEM, LISTENER_INFO or LISTENER_TELEM"
        )
    return value


def _message_id(value: str) -> str:
    """An explicit dedup key: 1 to 64 printable characters."""
    if not 1 <= len(value) <= MAX_MESSAGE_ID or not value.isprintable():
        raise PydanticCustomError(
            "message_id", "must be 1 to {limit} printable characters", {"limit": MAX_MESSAGE_ID}
        )
    return value


def _raw_string(value: str) -> str:
    """Canonical base64 of 1 to 2048 received bytes (re-encoding gives the same text)."""
    if len(value) > 4 * math.ceil(MAX_RAW_BYTES / 3):
        raise PydanticCustomError(
            "raw_too_long", "must encode at most {limit} bytes", {"limit": MAX_RAW_BYTES}
        )
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError(
            "raw_base64", "must be base64 text of the bytes received over the radio"
        ) from None
    if not raw:
        raise PydanticCustomError("raw_empty", "must not be empty")
    if len(raw) > MAX_RAW_BYTES:
        raise PydanticCustomError(
            "raw_too_long", "must encode at most {limit} bytes", {"limit": MAX_RAW_BYTES}
        )
    if base64.b64encode(raw).decode("ascii") != value:
        raise PydanticCustomError(
            "raw_canonical", "must be canonical base64 with standard padding and no line breaks"
        )
    return value


def _gps_time(value: Any) -> dict[str, int]:
    """GPS time of a fix: ``{"hour", "minute", "second"}`` or ``"HH:MM:SS"``."""
    if isinstance(value, str):
        match = _HMS_RE.fullmatch(value)
        if not match:
            raise PydanticCustomError("time_format", "must be HH:MM:SS or an object")
        hour, minute, second = (int(g) for g in match.groups())
    elif isinstance(value, dict):
        if set(value) != {"hour", "minute", "second"}:
            raise PydanticCustomError(
                "time_keys", "must have exactly the keys hour, minute and second"
            )
        parts = [value["hour"], value["minute"], value["second"]]
        if any(isinstance(p, bool) or not isinstance(p, int) for p in parts):
            raise PydanticCustomError("time_type", "must hold whole numbers")
        hour, minute, second = parts
    else:
        raise PydanticCustomError("time_format", "must be HH:MM:SS or an object")
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 60):
        raise PydanticCustomError("time_range", "must have hour 0-23, minute 0-59 and second 0-60")
    return {"hour": hour, "minute": minute, "second": second}


def _at_least(minimum: float, unit: str) -> AfterValidator:
    def check(value: int | float) -> int | float:
        if value < minimum:
            raise PydanticCustomError(
                "number_min",
                "must be at least {minimum} {unit}",
                {"minimum": minimum, "unit": unit},
            )
        return value

    return AfterValidator(check)


def _within(low: float, high: float, unit: str) -> AfterValidator:
    def check(value: int | float) -> int | float:
        if not low <= value <= high:
            raise PydanticCustomError(
                "number_range",
                "must be between {low} and {high} {unit}",
                {"low": low, "high": high, "unit": unit},
            )
        return value

    return AfterValidator(check)


Number = Annotated[float, PlainValidator(_number)]
Timestamp = Annotated[float, PlainValidator(_timestamp)]
InfoText = Annotated[str, Field(max_length=MAX_INFO_CHARS)]

_STRICT = ConfigDict(strict=True, extra="ignore", frozen=True)


class Envelope(BaseModel):
    """The top-level fields every message has; unknown extra fields are ignored."""

    model_config = _STRICT

    callsign: Annotated[str, AfterValidator(_callsign)]
    type: Annotated[str, AfterValidator(_message_type)]
    time_created: Timestamp
    time_uploaded: Timestamp
    data: dict[str, Any]
    message_id: Annotated[str, AfterValidator(_message_id)] | None = None


class ReceivedTelemData(BaseModel):
    """RECEIVED_TELEM data: ``string`` is canonical base64 of the received bytes,
    ``frequency`` the optional receive frequency in Hz."""

    model_config = _STRICT

    string: Annotated[str, AfterValidator(_raw_string)]
    frequency: Annotated[Number, _at_least(0, "Hz")] | None = None


class ListenerInfoData(BaseModel):
    """LISTENER_INFO data: free text of at most 256 characters each, all optional."""

    model_config = _STRICT

    name: InfoText | None = None
    location: InfoText | None = None
    radio: InfoText | None = None
    antenna: InfoText | None = None


class ListenerTelemData(BaseModel):
    """LISTENER_TELEM data: position in degrees and metres, and the GPS time of the fix."""

    model_config = _STRICT

    latitude: Annotated[Number, _within(-90, 90, "degrees")]
    longitude: Annotated[Number, _within(-180, 180, "degrees")]
    altitude: Number
    time: Annotated[dict[str, int], PlainValidator(_gps_time)]


DATA_MODELS: Final[Mapping[str, type[BaseModel]]] = {
    RECEIVED_TELEM: ReceivedTelemData,
    LISTENER_INFO: ListenerInfoData,
    LISTENER_TELEM: ListenerTelemData,
}

# Sentences for pydantic's own error types; custom ones carry their own text.
_BUILTIN_ERRORS: Final = {
    "missing": "is required",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "string_type": "must be a string",
    "string_too_long": "must be at most {max_length} characters long",
}


def _field_errors(exc: ValidationError, prefix: str) -> list[FieldError]:
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        path = ".".join([prefix, *(str(p) for p in err["loc"])] if prefix else map(str, err["loc"]))
        template = _BUILTIN_ERRORS.get(err["type"])
        text = template.format(**err.get("ctx", {})) if template else err["msg"]
        errors.append(FieldError(path, f"{path} {text}.", err["type"]))
    return errors


def clock_correct(time_created: float, time_uploaded: float, now: float) -> tuple[int, int]:
    """habitat's clock correction: cancel the client's clock error.

    Args:
        time_created: when the client says it made the message (its clock), seconds
            since the UNIX epoch.
        time_uploaded: when the client says it sent the message (its clock).
        now: the server clock on receipt.

    Returns:
        ``(time_created + (now - time_uploaded), now)``, each rounded to whole seconds.
    """
    return round(time_created + (now - time_uploaded)), round(now)


def validate(
    fields: Mapping[str, Any],
    *,
    now: float,
    ip: str | None,
    blocked_callsigns: frozenset[str] = frozenset(),
    future_tolerance: float = 60.0,
) -> Accepted:
    """Check one posted message and build the Message to store.

    Args:
        fields: the decoded body: ``callsign``, ``type``, ``time_created``,
            ``time_uploaded`` and ``data`` (a dict), plus any ignored extras.
        now: server time of receipt, seconds since the UNIX epoch.
        ip: the client's address, stored with the message.
        blocked_callsigns: upper-cased callsigns to refuse.
        future_tolerance: seconds by which time_created may exceed time_uploaded.

    Returns:
        The corrected Message and the sorted unknown ``data`` keys that were dropped.

    Raises:
        InvalidMessage: any rule is broken (the app answers 400); its first error
            names the first bad field in the order callsign, type, times, data.
    """
    try:
        env = Envelope.model_validate(fields, context={"blocked": blocked_callsigns})
    except ValidationError as exc:
        raise InvalidMessage(_field_errors(exc, "")) from None
    if env.time_created - env.time_uploaded > future_tolerance:
        raise InvalidMessage.one(
            "time_created",
            f"time_created is more than {future_tolerance:g} s later than time_uploaded, "
            "so the message claims to be created in the future; check the client's clock.",
        )
    model = DATA_MODELS[env.type]
    try:
        data = model.model_validate(env.data)
    except ValidationError as exc:
        raise InvalidMessage(_field_errors(exc, "data")) from None
    ignored = sorted(k for k in env.data if k not in model.model_fields)
    time_created, time_uploaded = clock_correct(env.time_created, env.time_uploaded, now)
    stored_data = data.model_dump(exclude_none=True)
    message = Message(
        callsign=env.callsign,
        type=env.type,
        time_created=time_created,
        time_uploaded=time_uploaded,
        data=stored_data,
        ip=ip,
        time_received=now,
        dedup_key=dedup_key(env.callsign, env.type, env.time_created, stored_data, env.message_id),
    )
    return Accepted(message, ignored, fields["callsign"])


def dedup_key(
    callsign: str,
    type_: str,
    time_created: float,
    data: Mapping[str, Any],
    message_id: str | None = None,
) -> str:
    """The key under which the store keeps one copy of a message (32 hex digits).

    A retried upload is the same callsign, type, data and time_created as the
    client sent it (before clock correction); its time_uploaded changes between
    attempts, so it is not part of the key. A client's own ``message_id``
    replaces that rule, and is scoped to its callsign.
    """
    # The text hashed is json.dumps(material, sort_keys=True, separators=(",", ":"),
    # ensure_ascii=False) of the material below, unchanged since keys were first
    # stored, so a retry that straddles an upgrade finds its original. The common
    # shapes are written out directly (the same text, tests/test_validator.py).
    if message_id is not None:
        text = f'["message_id",{_json_str(callsign)},{_json_str(message_id)}]'
    elif (
        type_ == RECEIVED_TELEM
        and type(time_created) is float
        and data.keys() <= {"string", "frequency"}
        and type(data.get("string")) is str
        and type(data.get("frequency", 0)) in (int, float)
    ):
        frequency = data.get("frequency")
        inner = f'"frequency":{frequency!r},' if frequency is not None else ""
        text = (
            f'["content",{_json_str(callsign)},"{type_}",{time_created!r},'
            f'{{{inner}"string":{_json_str(data["string"])}}}]'
        )
    else:
        material = ["content", callsign, type_, time_created, data]
        text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # 128 bits of sha256 keep the store's unique index small; collisions stay negligible.
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
