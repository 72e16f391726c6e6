"""``habitat-http upload``: pipe a decoder's sentences to the gateway (issue 14).

A decoder that writes one UKHAS sentence per line (fldigi, a serial LoRa
gateway, horusdemodlib) is piped in; every line is uploaded as a RECEIVED_TELEM
through an :class:`~habitat_http.client.Uploader`.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import threading
from types import FrameType
from typing import IO, Any

import click

from .backoff import Backoff
from .spool import MAX_SPOOL_MESSAGES, SpoolLocked
from .uploader import Uploader, sentence_of

#: Seconds between repeats of LISTENER_INFO and LISTENER_TELEM (issue 14: 6 hours).
LISTENER_EVERY = 6 * 3600
LISTENER_INFO_KEYS = ("name", "location", "radio", "antenna")


def parse_listener_info(values: tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` pairs (shell-quoted, several per value) for LISTENER_INFO.

    Raises click.BadParameter for a pair without ``=`` or an unknown key.
    """
    info: dict[str, str] = {}
    for value in values:
        for pair in shlex.split(value):
            key, sep, text = pair.partition("=")
            if not sep or key not in LISTENER_INFO_KEYS:
                raise click.BadParameter(
                    f"{pair!r} is not KEY=VALUE with KEY one of {', '.join(LISTENER_INFO_KEYS)}.",
                    param_hint="--listener-info",
                )
            info[key] = text
    return info


def parse_position(value: str | None) -> tuple[float, float, float] | None:
    """``LAT,LON,ALT`` in degrees, degrees and metres; click.BadParameter otherwise."""
    if value is None:
        return None
    parts = value.split(",")
    try:
        lat, lon, alt = (float(p) for p in parts)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not LAT,LON,ALT (degrees, degrees, metres).", param_hint="--position"
        ) from None
    return lat, lon, alt


def sentence_from_line(line: bytes) -> bytes:
    """The sentence on one input line: the line without its ``\\n`` or ``\\r\\n``."""
    if line.endswith(b"\n"):
        line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
    return line


@click.command()
@click.option("--url", required=True, help="The gateway's base URL, e.g. http://host:8000.")
@click.option("--callsign", required=True, help="Your listener callsign.")
@click.option(
    "--spool",
    type=click.Path(dir_okay=False),
    default=None,
    help="SQLite file keeping unsent messages across restarts; default: memory only.",
)
@click.option("--frequency", type=float, default=None, metavar="HZ", help="Receive frequency.")
@click.option(
    "--listener-info",
    multiple=True,
    metavar="KEY=VALUE ...",
    help="LISTENER_INFO to send: name=, location=, radio=, antenna= (repeatable).",
)
@click.option(
    "--position", default=None, metavar="LAT,LON,ALT", help="Your position (LISTENER_TELEM)."
)
@click.option(
    "--batch-interval", type=float, default=2.0, show_default=True, help="Seconds between batches."
)
@click.option(
    "--max-batch",
    type=click.IntRange(1, 1000),
    default=500,
    show_default=True,
    help="Messages per batch; a full batch goes at once.",
)
@click.option(
    "--max-spool-messages",
    type=click.IntRange(min=1),
    default=MAX_SPOOL_MESSAGES,
    show_default=True,
    help="Bound of the queue; the oldest are dropped beyond it.",
)
@click.option(
    "--max-retry-delay",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Longest wait in seconds between retries after failures.",
)
@click.option(
    "--listener-every",
    type=click.FloatRange(min=1),
    default=LISTENER_EVERY,
    show_default=True,
    help="Seconds between repeats of --listener-info and --position.",
)
@click.argument("input_file", metavar="[FILE|-]", type=click.File("rb"), default="-")
def upload(
    url: str,
    callsign: str,
    spool: str | None,
    frequency: float | None,
    listener_info: tuple[str, ...],
    position: str | None,
    batch_interval: float,
    max_batch: int,
    max_spool_messages: int,
    max_retry_delay: float,
    listener_every: float,
    input_file: IO[bytes],
) -> None:
    """Upload UKHAS sentences, one per line from FILE or stdin, as RECEIVED_TELEM.

    Each line (without its line end) is sent as received, time-stamped when read.
    Prints a line per rejection naming the field and the gateway's reason, and a
    summary at exit. At end of input or on SIGTERM/SIGINT it flushes and exits; a
    second signal exits at once (with --spool, what is unsent stays there).
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s: %(message)s")
    info = parse_listener_info(listener_info)
    where = parse_position(position)
    try:
        uploader = Uploader(
            url,
            callsign,
            spool=spool,
            batch_interval=batch_interval,
            max_batch=max_batch,
            max_spool_messages=max_spool_messages,
            on_rejected=_print_rejection,
            backoff=Backoff(cap=max_retry_delay),
        )
    except (SpoolLocked, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc

    stop = threading.Event()  # a signal, or the end of input
    gate = threading.Lock()  # no message is queued once closing has begun
    state = {"signals": 0, "closing": False}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        state["signals"] += 1
        if state["signals"] > 1:
            _summary(uploader, spool, at_once=True)
            os._exit(128 + signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    def listener_messages() -> None:
        with gate:
            if state["closing"]:
                return
            if info:
                uploader.listener_information(
                    name=info.get("name"),
                    location=info.get("location"),
                    radio=info.get("radio"),
                    antenna=info.get("antenna"),
                )
            if where is not None:
                uploader.listener_telemetry(*where)

    def read_lines() -> None:
        try:
            for line in input_file:
                sentence = sentence_from_line(line)
                if not sentence:
                    continue
                with gate:
                    if state["closing"]:
                        return
                    uploader.received_telem(sentence, frequency_hz=frequency)
        finally:
            stop.set()

    def repeat_listener() -> None:
        while not stop.wait(listener_every):
            listener_messages()

    listener_messages()
    reader = threading.Thread(target=read_lines, daemon=True)
    reader.start()
    threading.Thread(target=repeat_listener, daemon=True).start()
    while not stop.wait(1.0):  # a timeout keeps the main thread responsive to signals
        pass
    with gate:
        state["closing"] = True
    uploader.close()
    _summary(uploader, spool, at_once=False)
    if reader.is_alive():
        # Still blocked reading the input (we stopped on a signal): it holds the
        # input's buffer lock, and interpreter shutdown would abort on that lock.
        sys.stderr.flush()
        os._exit(0)


def _print_rejection(message: dict[str, Any], field: str | None, error: str) -> None:
    sentence = sentence_of(message)
    what = repr(sentence) if sentence is not None else message.get("type")
    click.echo(f"rejected: field {field or '(whole request)'}: {error} {what}")


def _summary(uploader: Uploader, spool: str | None, *, at_once: bool) -> None:
    stats = uploader.stats()
    if stats.waiting and spool:
        left = f", {stats.waiting} kept in the spool {spool}"
    elif stats.waiting:
        left = f", {stats.waiting} NOT uploaded (no --spool)"
    else:
        left = ""
    click.echo(
        f"{'stopped at once: ' if at_once else ''}{stats.queued} queued, {stats.stored} stored,"
        f" {stats.duplicates} duplicates, {stats.rejected} rejected, {stats.dropped} dropped"
        f" (queue full){left}; {stats.requests} requests, {stats.retries} retried"
    )
    sys.stdout.flush()
