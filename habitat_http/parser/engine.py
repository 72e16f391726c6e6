"""Choose a payload_configuration for a sentence and parse it: the parser's entry point.

Pure code with no I/O: configurations come in, results go out; a sink or CLI
loads the documents from the store and records the results.

Choice (issue 13, after habitat's parser): a sentence's callsign selects the
newest document (greatest ``time_created``; on a tie, the later one given) that
has a sentence format with that callsign. Its sentence formats with that callsign
are tried in document order and the first that parses wins. Only when no document
has the callsign is the default mode (:mod:`~habitat_http.parser.default`) used.
Unlike habitat, a configured payload whose sentence fails every format does not
fall back to the default mode: its launch team sees the reason instead of fields
named by guesswork.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from .config import PayloadConfiguration
from .default import parse_default
from .result import Attempt, ParseResult
from .ukhas import CompiledSentence, SentenceError, frame


class Parser:
    """Parses sentences against a fixed set of payload_configuration documents.

    Build it once from the documents (compiling every sentence format), then call
    :meth:`parse` for each sentence; rebuild it when the documents change. It
    holds no other state and is safe to share between threads.
    """

    __slots__ = ("_by_callsign", "_default_mode")

    def __init__(
        self, configurations: Iterable[PayloadConfiguration], *, default_mode: bool = True
    ) -> None:
        """Args:
        configurations: validated documents (see
            :func:`~habitat_http.parser.config.load_configuration`), in any order.
        default_mode: parse sentences whose callsign no document has in the
            default mode (True), or report them as failures (False).
        """
        self._default_mode = default_mode
        newest: dict[str, PayloadConfiguration] = {}
        for doc in configurations:
            for callsign in {s.callsign for s in doc.sentences}:
                current = newest.get(callsign)
                if current is None or doc.time_created >= current.time_created:
                    newest[callsign] = doc
        self._by_callsign: dict[
            str, tuple[PayloadConfiguration, tuple[tuple[int, CompiledSentence], ...]]
        ] = {
            callsign: (
                doc,
                tuple(
                    (i, CompiledSentence(s))
                    for i, s in enumerate(doc.sentences)
                    if s.callsign == callsign
                ),
            )
            for callsign, doc in newest.items()
        }

    def configuration_for(self, callsign: str) -> PayloadConfiguration | None:
        """The document chosen for *callsign*, or None (default mode)."""
        entry = self._by_callsign.get(callsign)
        return entry[0] if entry else None

    def parse(self, sentence: bytes | str) -> ParseResult:
        """Parse one uploaded sentence.

        Args:
            sentence: the string as the listener uploaded it (the decoded ``_raw``
                of RECEIVED_TELEM), bytes or text, with or without line ending.

        Returns:
            A :class:`~habitat_http.parser.result.ParseResult`; never raises for bad
            input. On failure its ``reason`` and ``attempts`` say which
            configuration and sentence index were tried and what failed.
        """
        try:
            framed = frame(sentence)
        except SentenceError as e:
            return ParseResult(None, reason=str(e))
        callsign = framed.callsign
        warnings: list[str] = []
        entry = self._by_callsign.get(callsign)
        if entry is None:
            if not self._default_mode:
                return ParseResult(
                    None, callsign, reason=f"no payload_configuration has callsign {callsign!r}"
                )
            try:
                data = parse_default(framed)
            except SentenceError as e:
                reason = f"no payload_configuration has callsign {callsign!r}; {e}"
                return ParseResult(
                    None, callsign, attempts=(Attempt(None, None, str(e)),), reason=reason
                )
            return ParseResult(data, callsign)
        doc, formats = entry
        key = doc.key
        attempts: list[Attempt] = []
        for index, compiled in formats:
            try:
                data = compiled.parse(framed, warnings)
            except SentenceError as e:
                attempts.append(Attempt(key, index, str(e)))
                continue
            return ParseResult(data, callsign, key, index, tuple(attempts), None, tuple(warnings))
        if len(attempts) == 1:
            reason = f"payload_configuration {key!r} sentence {attempts[0].sentence_index}: "
            reason += attempts[0].reason
        else:
            reason = f"none of the {len(attempts)} sentence formats of {key!r} fits"
        return ParseResult(None, callsign, key, None, tuple(attempts), reason, tuple(warnings))


def build_parser(
    configurations: Iterable[PayloadConfiguration], *, default_mode: bool = True
) -> Parser:
    """Build a :class:`Parser` from validated documents (the one place that does)."""
    return Parser(configurations, default_mode=default_mode)


def parse(
    sentence: bytes | str, configurations: Iterable[PayloadConfiguration] = ()
) -> ParseResult:
    """Parse one sentence against *configurations*; a :class:`Parser` built each call.

    For many sentences build a :class:`Parser` once instead. Never raises for bad
    input (see :meth:`Parser.parse`).
    """
    return Parser(configurations).parse(sentence)


__all__: Final = ["Parser", "build_parser", "parse"]
