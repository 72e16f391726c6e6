"""What parsing one sentence gives: the parsed fields, or why there are none.

Pure data, no I/O. :class:`ParseResult` is what :meth:`Parser.parse
<habitat_http.parser.engine.Parser.parse>` returns for every input; it never
raises for bad input. A parser sink turns a successful result's :attr:`data` into
a TELEM message and a failed one's :meth:`ParseResult.parse_error` into the
``_parse_error`` of the string's payload_telemetry document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Attempt:
    """One failed try at parsing a sentence.

    Attributes:
        configuration: the payload_configuration tried (its ``_id``, else its
            ``name``); None for the default mode.
        sentence_index: the index of the sentence format tried in that document's
            ``sentences``; None for the default mode.
        reason: one sentence saying what failed, e.g.
            ``"fields.2 'latitude' (stdtelem.coordinate): coordinate '5232' is not ddmm.mmmm"``.
    """

    configuration: str | None
    sentence_index: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        """``{"configuration", "sentence_index", "reason"}``, plus ``"default": true``
        for the default mode."""
        out: dict[str, Any] = {
            "configuration": self.configuration,
            "sentence_index": self.sentence_index,
            "reason": self.reason,
        }
        if self.configuration is None:
            out["default"] = True
        return out


@dataclass(frozen=True, slots=True)
class ParseResult:
    """The outcome of parsing one sentence.

    Attributes:
        data: on success, the parsed fields plus ``payload`` (the callsign),
            ``_sentence`` (the sentence text parsed, after normalisation and
            intermediate filters, without line ending), ``_protocol`` (``"UKHAS"``),
            and where they apply ``_fix_invalid: true``, ``_used_default_config:
            true`` and ``_extra_data`` (default mode: the fields after altitude, as
            text). None on failure.
        callsign: the sentence's callsign, when its framing was good enough to
            find one.
        configuration: on success with a configuration, its ``_id`` (else ``name``).
        sentence_index: on success with a configuration, the index of the sentence
            format that parsed it.
        attempts: the failed tries in the order made (also kept when a later one
            succeeded).
        reason: on failure, one sentence saying why; None on success.
        warnings: filters skipped on this sentence, and why (habitat skipped a
            failing filter too).
    """

    data: dict[str, Any] | None
    callsign: str | None = None
    configuration: str | None = None
    sentence_index: int | None = None
    attempts: tuple[Attempt, ...] = ()
    reason: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the sentence parsed."""
        return self.data is not None

    @property
    def used_default_config(self) -> bool:
        """True when the default mode (no configuration) parsed the sentence."""
        return self.data is not None and self.data.get("_used_default_config") is True

    def parse_error(self) -> dict[str, Any] | None:
        """The ``_parse_error`` value for a string that did not parse, else None.

        Shape: ``{"callsign": str | None, "reason": str, "attempts": [Attempt.to_json(), ...]}``.
        """
        if self.data is not None:
            return None
        return {
            "callsign": self.callsign,
            "reason": self.reason,
            "attempts": [a.to_json() for a in self.attempts],
        }
