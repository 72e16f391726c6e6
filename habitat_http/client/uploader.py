"""The Uploader: queues messages and sends them to the gateway from a background thread.

The retry rule is the gateway's own (README, *Protocol*): 4xx means fix the
input and do not retry, 503 means retry later. So:

- 200 (or a batch's 400 with per-item results): each item is stored, a
  duplicate (stored before; a retry whose answer was lost) or rejected. All of
  them leave the queue; rejections are reported, never retried.
- any other 4xx: the whole request is rejected; every message in it is
  reported with the gateway's field and error, and never retried. Exceptions:
  408 and 429 mean "try again later" by definition (RFC 9110 15.5.9, RFC 6585
  section 4), and 413 for a batch of several messages halves the batch instead.
- a redirect is not followed (requests would turn the POST into a GET) but
  logged and retried, so a wrong URL keeps the messages queued.
- 5xx, a timeout or a connection error: retried, with exponential backoff and
  full jitter from 1 s to 300 s (:mod:`.backoff`), never sooner than Retry-After.
  Nothing leaves the queue on such a failure.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import requests

from .backoff import Backoff, parse_retry_after
from .spool import MAX_SPOOL_MESSAGES, MemoryQueue, MessageQueue, Queued, SQLiteSpool

log = logging.getLogger(__name__)

#: on_rejected(message, field, error): ``field`` is the gateway's dotted path or None.
RejectedCallback = Callable[[dict[str, Any], str | None, str], None]
#: on_stored(message, id): ``id`` is the gateway's store id (the original's for a duplicate).
StoredCallback = Callable[[dict[str, Any], int], None]

#: Largest JSON text of one batch before compression, under the gateway's default
#: HABITAT_MAX_BATCH_BODY of 1 MiB, which also limits the decompressed body.
MAX_BATCH_BYTES = 1_000_000
#: The gateway takes at most this many messages per POST /messages.
GATEWAY_MAX_ITEMS = 1000
_RESULT_STATUSES = ("stored", "duplicate", "rejected")


@dataclass(frozen=True)
class UploadStats:
    """Counts since the Uploader was made: messages ``queued`` by this process,
    ``stored``, ``duplicates`` (stored by an earlier attempt), ``rejected``,
    ``dropped`` (the queue was full), ``requests`` sent, ``retries`` (failed
    requests that will be retried), and ``waiting`` messages now queued."""

    queued: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    dropped: int = 0
    requests: int = 0
    retries: int = 0
    waiting: int = 0


def sentence_of(message: dict[str, Any]) -> bytes | None:
    """The received bytes of a RECEIVED_TELEM message, or None for other messages."""
    if message.get("type") != "RECEIVED_TELEM":
        return None
    return base64.b64decode(message["data"]["string"])


def log_rejection(message: dict[str, Any], field: str | None, error: str) -> None:
    """The default ``on_rejected``: one WARNING per rejection, with the gateway's text."""
    what = sentence_of(message)
    log.warning(
        "the gateway rejected %s %s: %s: %s",
        message.get("type"),
        repr(what) if what is not None else json.dumps(message.get("data")),
        field or "request",
        error,
    )


def _ignore_stored(message: dict[str, Any], id: int) -> None:
    """The default ``on_stored``: nothing to say."""


class _Answered:
    """A request the gateway answered for good: outcomes per message."""

    def __init__(self) -> None:
        self.stored: list[tuple[Queued, int, bool]] = []
        self.rejected: list[tuple[Queued, str | None, str]] = []


class Uploader:
    """Uploads messages to a habitat_http gateway; never loses one, never retries a rejection.

    ``url`` is the gateway's base URL (``http://host:8000`` or behind a front
    server ``https://host/habitat``); batches go to ``<url>/messages``.
    ``callsign`` is the listener's. ``spool`` is the path of a local SQLite file
    that keeps waiting messages across restarts and power cuts (see
    :class:`SQLiteSpool`; raises SpoolLocked when another process holds it);
    without it the queue is in memory. Either holds at most
    ``max_spool_messages`` and drops the oldest beyond that (counted in
    :meth:`stats`, logged). ``queue`` injects another :class:`MessageQueue`.

    Batches are sent at most every ``batch_interval`` seconds, or at once when
    ``max_batch`` messages wait, gzip-compressed, each request within
    ``timeout`` seconds. ``session`` is a requests.Session to reuse (one is made
    otherwise). ``clock`` gives UNIX seconds for time_created and time_uploaded;
    ``backoff`` the retry delays. ``on_rejected(message, field, error)`` and
    ``on_stored(message, id)`` are called from the uploader thread; the default
    ``on_rejected`` logs a WARNING.

    All methods are thread-safe. Raises ValueError for a bad setting.
    """

    def __init__(
        self,
        url: str,
        callsign: str,
        *,
        spool: str | os.PathLike[str] | None = None,
        batch_interval: float = 2.0,
        max_batch: int = 500,
        timeout: float = 20.0,
        session: requests.Session | None = None,
        max_spool_messages: int = MAX_SPOOL_MESSAGES,
        on_rejected: RejectedCallback = log_rejection,
        on_stored: StoredCallback = _ignore_stored,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
        queue: MessageQueue | None = None,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, not {url!r}.")
        if not 1 <= max_batch <= GATEWAY_MAX_ITEMS:
            raise ValueError(f"max_batch must be 1 to {GATEWAY_MAX_ITEMS} messages.")
        if batch_interval < 0 or timeout <= 0:
            raise ValueError("batch_interval must be >= 0 and timeout > 0 seconds.")
        self.endpoint = url.rstrip("/") + "/messages"
        self.callsign = callsign
        self.batch_interval = batch_interval
        self.max_batch = max_batch
        self.timeout = timeout
        self.max_batch_bytes = max_batch_bytes
        self.on_rejected = on_rejected
        self.on_stored = on_stored
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._queue: MessageQueue
        if queue is not None:
            self._queue = queue
        elif spool is not None:
            self._queue = SQLiteSpool(spool, max_spool_messages)
        else:
            self._queue = MemoryQueue(max_spool_messages)
        self._own_session = session is None
        self._session = session or requests.Session()
        self._limit = max_batch  # lowered after a 413
        self._counts = dict.fromkeys(("queued", "stored", "duplicates", "rejected"), 0)
        self._counts.update(requests=0, retries=0, dropped=0, waiting=0)
        self._stats_lock = threading.Lock()
        self._left: bool | None = None  # close()'s answer, once closed
        self._cond = threading.Condition()
        self._flushing = 0
        self._closed = False
        self._stop = False
        self._last_send = -float("inf")
        self._thread = threading.Thread(target=self._run, name="habitat-uploader", daemon=True)
        self._thread.start()

    # -- the public calls ----------------------------------------------------------

    def received_telem(
        self,
        sentence: bytes | str,
        *,
        frequency_hz: float | None = None,
        time_created: float | None = None,
    ) -> None:
        """Queue a RECEIVED_TELEM: ``sentence`` as received over the radio (bytes, or
        text sent as UTF-8), ``frequency_hz`` in Hz, ``time_created`` in UNIX
        seconds (default: now). Returns once the message is queued (committed, with
        a spool). Raises RuntimeError after close(), sqlite3.Error if the spool fails.
        """
        raw = sentence.encode("utf-8") if isinstance(sentence, str) else sentence
        data: dict[str, Any] = {"string": base64.b64encode(raw).decode("ascii")}
        if frequency_hz is not None:
            data["frequency"] = frequency_hz
        self._enqueue("RECEIVED_TELEM", data, time_created)

    def listener_information(
        self,
        *,
        name: str | None = None,
        location: str | None = None,
        radio: str | None = None,
        antenna: str | None = None,
        time_created: float | None = None,
    ) -> None:
        """Queue a LISTENER_INFO with the given texts (the gateway takes at most 256
        characters each). ``time_created`` in UNIX seconds, default now. Raises as
        :meth:`received_telem`."""
        fields = {"name": name, "location": location, "radio": radio, "antenna": antenna}
        data = {k: v for k, v in fields.items() if v is not None}
        self._enqueue("LISTENER_INFO", data, time_created)

    def listener_telemetry(
        self,
        latitude: float,
        longitude: float,
        altitude: float,
        time: float | str | None = None,
        *,
        time_created: float | None = None,
    ) -> None:
        """Queue a LISTENER_TELEM: the listener's position in degrees (-90..90,
        -180..180) and metres. ``time`` is the GPS time of the fix: UNIX seconds,
        or ``"HH:MM:SS"`` UTC as habitat's format has it; default now.
        ``time_created`` in UNIX seconds, default now. Raises as :meth:`received_telem`.
        """
        when = self._clock() if time is None else time
        fix = when if isinstance(when, str) else _hms(when)
        data = {"latitude": latitude, "longitude": longitude, "altitude": altitude, "time": fix}
        self._enqueue("LISTENER_TELEM", data, time_created)

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued now, without waiting for ``batch_interval``, and
        wait up to ``timeout`` seconds (None: as long as it takes) until the gateway
        has answered for all of it. Retryable failures keep their backoff. Returns
        True when nothing waits any more, False on timeout (nothing is lost: the
        rest stays queued)."""
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                self._cond.wait_for(
                    lambda: len(self._queue) == 0 or not self._thread.is_alive(), timeout
                )
            finally:
                self._flushing -= 1
        return len(self._queue) == 0

    def close(self, timeout: float | None = None) -> bool:
        """Flush (see :meth:`flush`; ``timeout`` in seconds, None waits as long as it
        takes), then stop the thread (a request in flight may take up to the
        request ``timeout`` more) and close the queue and our session. What is
        still queued stays in the spool for the next run, or is lost without one.
        Returns True when nothing was left waiting. Calling it again does nothing."""
        if self._closed:
            return self._left is False
        self._closed = True
        self.flush(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join()
        self.stats()  # the last look at the queue
        with self._stats_lock:
            self._left = self._counts["waiting"] > 0
            self._queue.close()
        if self._own_session:
            self._session.close()
        return not self._left

    def stats(self) -> UploadStats:
        """A snapshot of the counts (see :class:`UploadStats`)."""
        with self._stats_lock:
            if self._left is None:  # the queue is still open
                self._counts.update(waiting=len(self._queue), dropped=self._queue.dropped)
            return UploadStats(**self._counts)

    def __enter__(self) -> Uploader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the uploader thread ---------------------------------------------------------

    def _enqueue(self, type_: str, data: dict[str, Any], time_created: float | None) -> None:
        if self._closed:
            raise RuntimeError("This Uploader is closed.")
        message = {
            "callsign": self.callsign,
            "type": type_,
            "time_created": self._clock() if time_created is None else time_created,
            "data": data,
            "message_id": uuid.uuid4().hex,  # the gateway's dedup key for retries
        }
        self._queue.put(message)
        self._count(queued=1)
        with self._cond:
            self._cond.notify_all()

    def _count(self, **deltas: int) -> None:
        with self._stats_lock:
            for key, delta in deltas.items():
                self._counts[key] += delta

    def _ready(self) -> float | None:
        """Called under the condition: 0 to send now, seconds to wait, None to idle."""
        waiting = len(self._queue)
        if waiting == 0:
            return None
        if waiting >= self._limit or self._flushing or self._stop:
            return 0.0
        return max(0.0, self._last_send + self.batch_interval - time.monotonic())

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stop:
                        return
                    wait = self._ready()
                    if wait == 0.0:
                        break
                    self._cond.notify_all()  # flush() waiters look at the queue
                    self._cond.wait(wait)
            try:
                delay = self._send(self._queue.peek(self._limit))
            except Exception:  # a bug or a broken spool: keep the thread, back off
                log.exception("uploader failed; retrying later")
                delay = self._backoff.next_delay()
            self._last_send = time.monotonic()
            with self._cond:
                self._cond.notify_all()
                if delay:
                    deadline = time.monotonic() + delay
                    while not self._stop and (left := deadline - time.monotonic()) > 0:
                        self._cond.wait(left)

    def _body(self, entries: list[Queued]) -> tuple[list[Queued], bytes]:
        """The first entries that fit in max_batch_bytes, and their gzip'd JSON array."""
        now = self._clock()  # fresh at every attempt: the gateway's clock correction
        parts: list[str] = []
        size = 2
        for entry in entries:
            text = json.dumps({**entry.message, "time_uploaded": now}, ensure_ascii=False)
            if parts and size + len(text) + 1 > self.max_batch_bytes:
                break
            parts.append(text)
            size += len(text.encode("utf-8")) + 1
        sent = entries[: len(parts)]
        return sent, gzip.compress(("[" + ",".join(parts) + "]").encode("utf-8"), 6)

    def _send(self, entries: list[Queued]) -> float:
        """POST one batch; returns the seconds to wait before the next (0: none)."""
        if not entries:
            return 0.0
        sent, body = self._body(entries)
        self._count(requests=1)
        try:
            response = self._session.post(
                self.endpoint,
                data=body,
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
                timeout=self.timeout,
                # requests would follow a 301/302 with a GET, whose 405 would drop the batch.
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return self._retry(len(sent), f"{type(exc).__name__}: {exc}", None)
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = None
        answered = _per_item(payload, sent) if status in (200, 400) else None
        if answered is not None:
            self._finish(sent, answered)
            return 0.0
        retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
        if status >= 500 or status in (408, 429) or status == 200:
            return self._retry(len(sent), f"HTTP {status} {_error_text(payload)}", retry_after)
        if status == 413 and len(sent) > 1:
            self._limit = max(1, len(sent) // 2)
            log.warning(
                "the gateway refused a batch of %d as too large; sending %d at a time",
                len(sent),
                self._limit,
            )
            return 0.0
        if 400 <= status < 500:
            answer = _Answered()
            field = payload.get("field") if isinstance(payload, dict) else None
            error = _error_text(payload) or f"HTTP {status} {response.reason}"
            answer.rejected = [(e, field if isinstance(field, str) else None, error) for e in sent]
            self._finish(sent, answer)
            return 0.0
        where = response.headers.get("Location")
        why = f"unexpected HTTP {status}" + (f" to {where}; check the url" if where else "")
        return self._retry(len(sent), why, retry_after)

    def _retry(self, count: int, why: str, retry_after: float | None) -> float:
        self._count(retries=1)
        delay = self._backoff.next_delay(retry_after)
        log.warning(
            "upload of %d messages failed (%s); retrying in %.1f s, %d waiting",
            count,
            why,
            delay,
            len(self._queue),
        )
        return delay

    def _finish(self, sent: list[Queued], answer: _Answered) -> None:
        """Report the outcomes, then forget the messages: the gateway has answered."""
        self._backoff.reset()
        for entry, id_, _duplicate in answer.stored:
            _call(self.on_stored, entry.message, id_)
        for entry, field, error in answer.rejected:
            _call(self.on_rejected, entry.message, field, error)
        self._queue.remove([e.seq for e in sent])
        duplicates = sum(1 for _, _, dup in answer.stored if dup)
        self._count(
            stored=len(answer.stored) - duplicates,
            duplicates=duplicates,
            rejected=len(answer.rejected),
        )


def _call(callback: Callable[..., None], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:  # the listener's callback must not stop the uploads
        log.exception("an uploader callback failed")


def _error_text(payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, str) else ""


def _per_item(payload: Any, sent: list[Queued]) -> _Answered | None:
    """The per-item outcomes of a POST /messages answer, or None when it has none
    that match the batch sent (then the answer is about the whole request)."""
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list) or len(results) != len(sent):
        return None
    answer = _Answered()
    for entry, result in zip(sent, results, strict=True):
        status = result.get("status") if isinstance(result, dict) else None
        if status not in _RESULT_STATUSES:
            return None
        if status == "rejected":
            field = result.get("field")
            answer.rejected.append(
                (entry, field if isinstance(field, str) else None, _error_text(result))
            )
        elif isinstance(result.get("id"), int):
            answer.stored.append((entry, result["id"], status == "duplicate"))
        else:
            return None
    return answer


def _hms(unix_seconds: float) -> str:
    """ "HH:MM:SS" UTC of a UNIX time, as habitat's LISTENER_TELEM ``time`` takes it."""
    return time.strftime("%H:%M:%S", time.gmtime(unix_seconds))
