"""The access log: one JSON line per request on the ``habitat_http.access`` logger.

The gateway's HTTP and SCGI paths write the same line. The logger is its own, so
an operator can route it elsewhere or turn it off with the logging configuration
(or ``HABITAT_ACCESS_LOG=off``). When nothing configured it, its own handler
(:class:`BufferedLines`) writes to stdout in groups, at least every
:data:`FLUSH_INTERVAL` seconds, rather than with a write and a flush each; while
that handler alone is in place, a line goes to it without a LogRecord, whose
making cost more than the rest of the line.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import weakref
from json.encoder import encode_basestring_ascii
from typing import IO, Any

from . import process
from .record import RequestRecord

LOGGER_NAME = "habitat_http.access"
#: Seconds a line may wait in the default handler's buffer.
FLUSH_INTERVAL = 0.5
#: Lines the default handler holds before it writes them at once.
BUFFER_LINES = 256


class BufferedLines(logging.Handler):
    """The access logger's default handler: formatted lines kept in memory and
    written to ``stream`` together, when :data:`BUFFER_LINES` wait or at the
    latest every :data:`FLUSH_INTERVAL` seconds (by a thread of each process), and
    at exit (logging's shutdown flushes every handler).

    Args:
        stream: where the lines go (stdout by default).
    """

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream
        self._lines: list[str] = []
        self._buffer_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Buffer ``record``'s message (logging's Handler interface)."""
        self.add(self.format(record))

    def add(self, line: str) -> None:
        """Buffer one line; write the buffer when it is full."""
        with self._buffer_lock:
            self._lines.append(line)
            full = len(self._lines) >= BUFFER_LINES
        if full:
            self.flush()

    def flush(self) -> None:
        """Write every buffered line."""
        with self._buffer_lock:
            lines, self._lines = self._lines, []
        if lines:
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stdout closed or full: a log line is not worth a failed request


def access_logger() -> logging.Logger:
    """The access logger, given a :class:`BufferedLines` handler on stdout unless
    logging already routes it.

    A logger with handlers of its own, or one set not to propagate, is left as
    the operator configured it.
    """
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers and logger.propagate:
        logger.addHandler(BufferedLines(sys.stdout))
        logger.setLevel(logging.INFO)
        logger.propagate = False  # one line, not one more per root handler
    return logger


_flusher_process = 0  # the process (see ops.process) whose flusher runs
_flusher_lock = threading.Lock()


def _flush_every(ref: weakref.ref[logging.Logger]) -> None:
    while True:
        time.sleep(FLUSH_INTERVAL)
        logger = ref()
        if logger is None:
            return
        for handler in list(logger.handlers):
            if isinstance(handler, BufferedLines):
                handler.flush()
        del logger


def _start_flusher(logger: logging.Logger) -> None:
    # Once per process: a thread does not survive gunicorn's fork of a worker.
    global _flusher_process
    with _flusher_lock:
        if _flusher_process == process.generation():
            return
        _flusher_process = process.generation()
    threading.Thread(target=_flush_every, args=(weakref.ref(logger),), daemon=True).start()


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


def _str(value: str | None) -> str:
    # The JSON encoder's own string escaping (ASCII, so any text can be written).
    return "null" if value is None else encode_basestring_ascii(value)


def text(record: RequestRecord, time_now: float) -> str:
    """The JSON text of :func:`line`, written out directly: only the client's text
    goes through the JSON encoder, which made up most of the line's cost."""
    durations = record.phases.durations.items()
    phases = "".join([f'"{name}":{seconds:.6f},' for name, seconds in durations])
    group = record.phases.group_size
    out = (
        f'{{"time":{time_now:.3f},"method":{_str(record.method)},'
        f'"path":{_str(record.path)},"status":{record.status},"ip":{_str(record.ip)},'
        f'"callsign":{_str(record.callsign)},"messages":{record.messages},'
        f'"phases":{{{phases}"total":{record.phases.total():.6f}}},'
        f'"group":{"null" if group is None else group},'
        f'"ids":[{",".join(map(str, record.ids))}]'
    )
    if record.rejections:
        first = record.rejections[0]
        out += (
            f',"field":{_str(first.field)},"error":{_str(first.error)},'
            f'"rejected":{len(record.rejections)}'
        )
    if record.failure is not None:
        out += f',"error":{_str(record.failure)}'
    return out + "}"


def write(logger: logging.Logger, record: RequestRecord, time_now: float) -> None:
    """Log one request's line at INFO, if the logger is enabled for INFO.

    The LogRecord is made directly (Logger.makeRecord and handle, logging's own
    API) so that no stack walk looks for the caller, which the line does not show.
    """
    if logger.isEnabledFor(logging.INFO):
        if _flusher_process != process.generation():
            _start_flusher(logger)
        entry = text(record, time_now)
        handlers = logger.handlers
        if (
            len(handlers) == 1
            and type(handlers[0]) is BufferedLines
            and handlers[0].level <= logging.INFO
            and not (logger.filters or handlers[0].filters)
        ):
            handlers[0].add(entry)  # the default route, as logging would take it
        else:
            logger.handle(logger.makeRecord(logger.name, logging.INFO, "", 0, entry, (), None))
