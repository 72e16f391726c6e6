"""The access log: one JSON line per request on the ``habitat_http.access`` logger.

The gateway's HTTP and SCGI paths write the same line. The logger is its own, so
an operator can route it elsewhere or turn it off with the logging configuration
(or ``HABITAT_ACCESS_LOG=off``). When nothing configured it, it writes to stdout.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from .record import RequestRecord

LOGGER_NAME = "habitat_http.access"


def access_logger() -> logging.Logger:
    """The access logger, given a stdout handler unless logging already routes it.

    A logger with handlers of its own, or one set not to propagate, is left as
    the operator configured it.
    """
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers and logger.propagate:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # one line, not one more per root handler
    return logger


def line(record: RequestRecord, time_now: float) -> dict[str, Any]:
    """The access log entry of one request, as a JSON-ready dict.

    Keys: ``time`` (UNIX seconds), ``method``, ``path``, ``status``, ``ip``,
    ``callsign`` (the first message's, when known), ``messages`` (how many the
    body held), ``phases`` (seconds per phase, and ``total``), ``group`` (the
    commit group's size), ``ids`` (store ids), and for a 4xx ``field`` and
    ``error`` as sent to the client, with ``rejected`` counting rejected items;
    for a 5xx, ``error``.
    """
    phases = {name: round(seconds, 6) for name, seconds in record.phases.durations.items()}
    phases["total"] = round(record.phases.total(), 6)
    entry: dict[str, Any] = {
        "time": round(time_now, 3),
        "method": record.method,
        "path": record.path,
        "status": record.status,
        "ip": record.ip,
        "callsign": record.callsign,
        "messages": record.messages,
        "phases": phases,
        "group": record.phases.group_size,
        "ids": record.ids,
    }
    if record.rejections:
        first = record.rejections[0]
        entry.update(field=first.field, error=first.error, rejected=len(record.rejections))
    if record.failure is not None:
        entry["error"] = record.failure
    return entry


_ENCODE = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def write(logger: logging.Logger, record: RequestRecord, time_now: float) -> None:
    """Log one request's line at INFO, if the logger is enabled for INFO.

    The LogRecord is made directly (Logger.makeRecord and handle, logging's own
    API) so that no stack walk looks for the caller, which the line does not show.
    """
    if logger.isEnabledFor(logging.INFO):
        text = _ENCODE(line(record, time_now))
        logger.handle(logger.makeRecord(logger.name, logging.INFO, "", 0, text, (), None))
