"""TELEM messages from parse results: their data and their dedup key. Pure code.

As habitat's parser did, each distinct string gets one TELEM message holding what
it parsed into, which the archive merges into the string's payload_telemetry
document (see :mod:`habitat_http.archive.rules`). Its ``data`` is:

- on success, the parsed fields (``payload`` and the configured or default
  fields), ``_sentence``, ``_protocol`` and, where set, ``_fix_invalid``,
  ``_used_default_config`` and ``_extra_data``; plus ``_raw`` (the base64 text of
  the string, as in RECEIVED_TELEM) and ``_parsed``: ``{"payload_configuration":
  the document's _id (None in the default mode), "configuration_sentence_index",
  "time_parsed": UNIX seconds}`` (and ``"warnings"`` when filters were skipped);
- on failure, ``_raw`` and ``_parse_error``: ``{"callsign", "reason", "attempts":
  [{"configuration", "sentence_index", "reason"}...], "time_parsed"}``, where
  ``callsign`` is the sentence's, or a guess from its start when its framing was
  too broken to read one.

The dedup key is made from the string and the configuration used (or tried), so
the same string from several receivers, or delivered again, makes one TELEM, and a
string parsed again with a newer configuration makes a new one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any, Final

from ..messages import TELEM, Message
from .engine import Parser
from .result import ParseResult

_CALLSIGN_AT_START: Final = re.compile(rb"\$*([A-Za-z0-9/_-]+)")


def guess_callsign(sentence: bytes) -> str | None:
    """The callsign a string seems to start with (after any ``$``), or None."""
    found = _CALLSIGN_AT_START.match(sentence)
    return found.group(1).decode("ascii") if found else None


def configuration_used(result: ParseResult) -> str | None:
    """The ``_id`` (else name) of the configuration that parsed the string, or the
    one tried when it failed; None for the default mode or when none was tried."""
    if result.configuration is not None:
        return result.configuration
    tried = [a.configuration for a in result.attempts if a.configuration is not None]
    return tried[0] if tried else None


def telem_key(raw: str, result: ParseResult) -> str:
    """The TELEM's dedup key (32 hex digits): from the string's base64 text, the
    configuration used or tried, and whether it parsed."""
    material = ["TELEM", raw, configuration_used(result), result.ok]
    text = json.dumps(material, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:32]


def telem_data(raw: str, sentence: bytes, result: ParseResult, now: float) -> dict[str, Any]:
    """The TELEM's ``data`` (see the module docstring).

    Args:
        raw: the string's base64 text (RECEIVED_TELEM's ``data.string``).
        sentence: those bytes, decoded from ``raw``.
        result: what the parser made of them.
        now: when it was parsed, in seconds since the UNIX epoch.
    """
    if result.data is None:
        error = dict(result.parse_error() or {})
        if error.get("callsign") is None:
            error["callsign"] = guess_callsign(sentence)
        error["time_parsed"] = now
        return {"_raw": raw, "_parse_error": error}
    parsed: dict[str, Any] = {
        "payload_configuration": result.configuration,
        "configuration_sentence_index": result.sentence_index,
        "time_parsed": now,
    }
    if result.warnings:
        parsed["warnings"] = list(result.warnings)
    return {**result.data, "_raw": raw, "_parsed": parsed}


def telem_message(parser: Parser, raw: str, time_created: int, now: float) -> Message:
    """Parse one string and make its TELEM message.

    Args:
        parser: built from the current payload_configuration documents.
        raw: the string's base64 text.
        time_created: the string's time (a receiver's time_created, or the
            document's estimate), UNIX seconds.
        now: the parser's clock, UNIX seconds.

    The message's callsign is the payload's (parsed or guessed), or ``""``.
    """
    sentence = base64.b64decode(raw)
    result = parser.parse(sentence)
    data = telem_data(raw, sentence, result, now)
    callsign = data.get("payload") or data.get("_parse_error", {}).get("callsign") or ""
    return Message(
        callsign=str(callsign),
        type=TELEM,
        time_created=time_created,
        time_uploaded=int(now),
        data=data,
        ip=None,
        time_received=now,
        dedup_key=telem_key(raw, result),
    )
