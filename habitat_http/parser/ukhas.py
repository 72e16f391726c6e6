"""The UKHAS sentence format: framing, checksum and fields against a configuration.

Pure code with no I/O. The format is habitat's (ukhas/habitat
``habitat/parser_modules/ukhas_parser.py``)::

    $$CALLSIGN,field,field,...,field*CHECKSUM

:func:`frame` normalises what a listener uploaded, before any configuration is
known: several leading ``$`` count as ``$$``; one trailing ``\\n`` or ``\\r\\n`` is
dropped; the checksum is the 2 or 4 hex digits after the last ``*`` (absent when
there is no ``*``); the body between ``$$`` and ``*`` must be printable ASCII and
start with a callsign (habitat's callsign characters ``A-Z a-z 0-9 / _ -``).
:class:`CompiledSentence` then checks the checksum the configuration names,
splits the body on ``,`` and requires exactly as many fields as configured.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from . import filters as filter_rules
from . import sensors
from .checksums import ALGORITHMS, DIGITS
from .config import FieldConfig, SentenceConfig

_CALLSIGN: Final = re.compile(r"[A-Za-z0-9/_-]+")
_HEX: Final = frozenset("0123456789abcdefABCDEF")


class SentenceError(ValueError):
    """A sentence does not fit the UKHAS format or its configuration; the message
    is one sentence saying why, fit for ``_parse_error``."""


@dataclass(frozen=True, slots=True)
class Framed:
    """A sentence whose framing is good.

    Attributes:
        text: ``"$$" + body + ("*" + checksum if any)``; no line ending.
        body: the text between ``$$`` and the last ``*``.
        checksum: the hex digits after the last ``*`` as sent (2 or 4), or None.
        callsign: the body's first field.
    """

    text: str
    body: str
    checksum: str | None
    callsign: str


def frame(sentence: bytes | str) -> Framed:
    """Normalise and split one uploaded sentence (see the module docstring).

    Args:
        sentence: the raw string as the listener uploaded it (RECEIVED_TELEM's
            decoded ``_raw``), as bytes or text.

    Raises:
        SentenceError: not ASCII, fewer than two leading ``$``, a ``*`` not followed
            by exactly 2 or 4 hex digits, a body that is empty or not printable
            ASCII, or a first field that is not a callsign.
    """
    if isinstance(sentence, bytes):
        try:
            text = sentence.decode("ascii")
        except UnicodeDecodeError:
            raise SentenceError("the sentence is not ASCII text") from None
    else:
        text = sentence
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    if not text.startswith("$$"):
        raise SentenceError("the sentence does not start with '$$'")
    rest = text.lstrip("$")
    star = rest.rfind("*")
    if star >= 0:
        body, checksum = rest[:star], rest[star + 1 :]
        if len(checksum) not in (2, 4) or not _HEX.issuperset(checksum):
            raise SentenceError(
                f"the checksum {checksum!r} after the last '*' is not 2 or 4 hex digits"
            )
    else:
        body, checksum = rest, None
    if not body:
        raise SentenceError("the sentence has nothing between '$$' and the checksum")
    if not (body.isascii() and body.isprintable()):
        raise SentenceError("the sentence has characters that are not printable ASCII")
    callsign = body.split(",", 1)[0]
    if not _CALLSIGN.fullmatch(callsign):
        raise SentenceError(f"the first field {callsign!r} is not a callsign")
    return Framed("$$" + rest, body, checksum, callsign)


def check_checksum(framed: Framed, algorithm: str) -> None:
    """Check *framed*'s checksum with *algorithm* (a payload_configuration name).

    ``none`` accepts any sentence. Hex digits compare case-insensitively.

    Raises:
        SentenceError: the checksum is missing, has the wrong number of digits for
            *algorithm*, or does not match the body.
    """
    if algorithm == "none":
        return
    given = framed.checksum
    if given is None:
        raise SentenceError(f"the sentence has no checksum; the configuration expects {algorithm}")
    if len(given) != DIGITS[algorithm]:
        raise SentenceError(
            f"the checksum {given} has {len(given)} digits; {algorithm} has {DIGITS[algorithm]}"
        )
    computed = ALGORITHMS[algorithm](framed.body.encode("ascii"))
    if computed != given.upper():
        raise SentenceError(f"the {algorithm} checksum is {computed}, the sentence says {given}")


def build_sensor(field: FieldConfig) -> sensors.Sensor:
    """The function ``text -> value`` for one configured field."""
    name = field.sensor
    if name == "stdtelem.time":
        return sensors.time
    if name == "stdtelem.coordinate":
        assert field.format is not None  # the configuration's rule
        return sensors.make_coordinate(field.format, field.name)
    if name == "base.ascii_int":
        return sensors.make_ascii_int(field.base, field.optional)
    if name == "base.ascii_float":
        return sensors.make_ascii_float(field.optional)
    if name == "base.constant":
        return sensors.make_constant(field.expect)
    return sensors.string


class CompiledSentence:
    """One sentence format of a payload_configuration, ready to parse many sentences.

    Build once per configuration (with :meth:`__init__`), then call :meth:`parse`.
    """

    __slots__ = (
        "_algorithm",
        "_count",
        "_fields",
        "_intermediate",
        "_names",
        "_post",
        "_sensors",
        "callsign",
    )

    def __init__(self, config: SentenceConfig) -> None:
        """Compile *config* (already validated by :mod:`~habitat_http.parser.config`)."""
        self.callsign = config.callsign
        self._algorithm = config.checksum
        self._fields: tuple[tuple[str, Callable[[str], Any], str], ...] = tuple(
            (f.name, build_sensor(f), f"fields.{i} {f.name!r} ({f.sensor})")
            for i, f in enumerate(config.fields)
        )
        self._names = tuple(name for name, _, _ in self._fields)
        self._sensors = tuple(sensor for _, sensor, _ in self._fields)
        self._count = len(config.fields)
        self._intermediate = tuple(
            (f"intermediate filter {i} ({f.filter})", filter_rules.build_intermediate(f.settings()))
            for i, f in enumerate(config.filters.intermediate)
        )
        self._post = tuple(
            (f"post filter {i} ({f.filter})", filter_rules.build_post(f.settings()))
            for i, f in enumerate(config.filters.post)
        )

    def parse(self, framed: Framed, warnings: list[str]) -> dict[str, Any]:
        """Parse one framed sentence with this format.

        Args:
            framed: from :func:`frame`, with this format's callsign.
            warnings: filters skipped on this sentence are appended here.

        Returns:
            ``{"payload": callsign, <field name>: value, ..., "_sentence": text,
            "_protocol": "UKHAS"}``, plus ``"_fix_invalid": True`` if a filter set it.

        Raises:
            SentenceError: wrong checksum, wrong number of fields, a field its sensor
                refuses, or a sentence an intermediate filter made unframeable.
        """
        if self._intermediate:
            text = framed.text
            for label, intermediate in self._intermediate:
                try:
                    text = intermediate(text)
                except filter_rules.RUN_ERRORS as e:
                    warnings.append(f"{label} skipped: {e}")
            if text != framed.text:
                framed = frame(text)
        check_checksum(framed, self._algorithm)
        parts = framed.body.split(",")
        if len(parts) - 1 != self._count:
            raise SentenceError(
                f"the sentence has {len(parts) - 1} fields after the callsign;"
                f" the configuration has {self._count}"
            )
        texts = parts[1:]
        try:
            values = [sensor(text) for sensor, text in zip(self._sensors, texts, strict=True)]
        except ValueError:
            # Rare: find the field and say which (the fast path above does not).
            for (_, sensor, label), text in zip(self._fields, texts, strict=True):
                try:
                    sensor(text)
                except ValueError as e:
                    raise SentenceError(f"{label}: {e}") from None
            raise
        data: dict[str, Any] = {"payload": parts[0]}
        data.update(zip(self._names, values, strict=True))
        data["_sentence"] = framed.text
        data["_protocol"] = "UKHAS"
        for label, post in self._post:
            try:
                post(data)
            except filter_rules.RUN_ERRORS as e:
                warnings.append(f"{label} skipped: {type(e).__name__}: {e}")
        return data
