"""The UKHAS parser: turn uploaded telemetry strings into fields with payload_configurations.

Pure code with no I/O, one concern per module:

* :mod:`.config` validates payload_configuration documents (habitat's shape);
* :mod:`.checksums`, :mod:`.sensors`, :mod:`.filters` are habitat's building blocks;
* :mod:`.ukhas` frames a sentence and parses it with one sentence format;
* :mod:`.default` reads unconfigured payloads in the common layout;
* :mod:`.engine` chooses the configuration by callsign: :class:`Parser`;
* :mod:`.result` holds what comes out: :class:`ParseResult`.

Typical use::

    parser = build_parser(load_configuration(doc) for doc in documents)
    result = parser.parse(b"$$AMSTG,27,08:33:27,525776815,-19651728,139,6,3,6*B707")
    if result.ok: result.data            # {"payload": "AMSTG", "latitude": 52.5776815, ...}
    else: result.parse_error()           # {"callsign", "reason", "attempts": [...]}
"""

from .config import (
    ConfigurationError,
    PayloadConfiguration,
    load_configuration,
    load_configuration_json,
)
from .engine import Parser, build_parser, parse
from .result import Attempt, ParseResult

__all__ = [
    "Attempt",
    "ConfigurationError",
    "ParseResult",
    "Parser",
    "PayloadConfiguration",
    "build_parser",
    "load_configuration",
    "load_configuration_json",
    "parse",
]
