"""The WSGI application: routing, one handler per action, and the one place where
exceptions become responses.

Shaped like werkzeug's ``examples/shortly``: a ``Map`` of ``Rule``\\ s,
``on_<endpoint>`` handlers, and ``wsgi_app`` kept apart from ``__call__`` so that
ProxyFix wraps only the HTTP path. The SCGI path serves ``wsgi_app`` directly,
because there the front server has already set REMOTE_ADDR.

Every request is timed in phases and, once answered, observed once: one access
log line and its metrics (:mod:`habitat_http.ops`), the same on both paths.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import (
    BadHost,
    HTTPException,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import body, validator
from .config import Config, store_from_config
from .hotpath import HotPath
from .messages import DATA_MODELS, Accepted, Envelope, FieldError, InvalidMessage
from .ops import accesslog
from .ops.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .ops.metrics import Metrics
from .ops.observer import Observer
from .ops.phases import Phases
from .ops.pipeline import read_status
from .ops.record import Rejection, RequestRecord
from .store import CheckpointStore, Store, StoreError, StoreTimeout

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

#: A clock returns the current time in seconds since the UNIX epoch.
Clock = Callable[[], float]

#: Seconds a client should wait before retrying after a 503.
RETRY_AFTER = 5

ACTIONS = (
    ("GET", "/", "this page"),
    ("POST", "/message", "insert one message (JSON object or form-urlencoded)"),
    ("POST", "/messages", "insert a batch: a JSON array of up to 1000 messages"),
    ("GET", "/health", "200 while this process serves requests"),
    ("GET", "/ready", "200 when the message store answers, else 503"),
    ("GET", "/metrics", "Prometheus metrics (when enabled)"),
)

#: werkzeug's HTTP errors as the bounded error kinds that metrics count.
_HTTP_KINDS: tuple[tuple[type[HTTPException], str], ...] = (
    (NotFound, "not_found"),
    (MethodNotAllowed, "method"),
    (BadHost, "host"),
    (RequestEntityTooLarge, "too_large"),
    (UnsupportedMediaType, "media_type"),
    (RequestTimeout, "timeout"),
)


def known_fields() -> frozenset[str]:
    """Every field name a rejection may name, from the message schema: the
    top-level fields and ``data.<key>`` of each type's data."""
    names = set(Envelope.model_fields)
    for model in DATA_MODELS.values():
        names.update(f"data.{key}" for key in model.model_fields)
    return frozenset(names)


INFO_TEXT = """\
habitat_http: the gateway of the amateur high-altitude-balloon tracking network.

Radio listeners' software posts what it receives here: telemetry strings heard
from balloons (RECEIVED_TELEM), the listener's station details (LISTENER_INFO)
and the listener's own position (LISTENER_TELEM). Each accepted message is
stored durably before the answer is sent, then passed on to habitat's archive.

How to post one message:

  POST {root}/message
  Content-Type: application/json

  {{"callsign": "M0ABC", "type": "RECEIVED_TELEM",
    "time_created": 1700000000, "time_uploaded": 1700000002,
    "data": {{"string": "<base64 of the received bytes>", "frequency": 434075000}}}}

The same field names may be sent as application/x-www-form-urlencoded, with
"data" holding the JSON text of the data object. Times are UNIX seconds from the
client's clock; the gateway corrects them to its own clock.

Answers are JSON: 200 {{"ok": true, "id": ...}} once the message is stored;
4xx {{"ok": false, "error": ..., "field": ..., "errors": [...]}} means fix the
message and do not retry; 503 means retry later.
"""


def _dumps(value: Any) -> str:
    # ASCII escapes: an answer can always be encoded, whatever text it echoes.
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def _json(
    payload: dict[str, Any], status: int, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    return _json_bytes(_dumps(payload).encode("ascii"), status, headers)


def _json_bytes(data: bytes, status: int, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(data, status=status, headers=list(headers), mimetype="application/json")


def error_response(
    status: int,
    error: str | list[FieldError],
    *,
    headers: Iterable[tuple[str, str]] = (),
    **extra: Any,
) -> Response:
    """The JSON answer for every 4xx and 5xx, always with the same keys.

    Args:
        status: the HTTP status code.
        error: one sentence (about no particular field), or every problem found,
            first one first.
        headers: extra headers, e.g. ``Allow`` or ``Retry-After``.
        extra: more keys, e.g. ``actions`` for a 404.

    Returns:
        ``{"ok": false, "error": <first sentence>, "field": <its dotted path or
        null>, "errors": [{"field", "error"}, ...], **extra}``.
    """
    errors = [FieldError(None, error)] if isinstance(error, str) else error
    payload = {
        "ok": False,
        "error": errors[0].error,
        "field": errors[0].field,
        "errors": [e.as_json() for e in errors],
        **extra,
    }
    return _json(payload, status, headers)


class HabitatApp:
    """The gateway as a WSGI application; build it with :func:`create_app`.

    Attributes:
        config: the settings it was built with.
        store: where accepted messages are committed.
        clock: the server clock, seconds since the UNIX epoch.
        observer: logs and counts each answered request.
        monotonic: the clock phases are timed with, in seconds.
        wsgi_app: the application without ProxyFix (for SCGI, where the front
            server sets REMOTE_ADDR).
        hot_path: serves the common case of POST /message and /messages in plain
            WSGI (hotpath.py); None when built with ``hot_path=False`` (tests
            compare both paths).
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        clock: Clock,
        observer: Observer,
        monotonic: Clock = time.perf_counter,
        *,
        hot_path: bool = True,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.observer = observer
        self.monotonic = monotonic
        self.hot_path = HotPath(self) if hot_path else None
        self.started = clock()
        self.url_map = Map(
            [
                Rule("/", endpoint="info", methods=["GET"]),
                Rule("/message", endpoint="message", methods=["POST"]),
                Rule("/messages", endpoint="messages", methods=["POST"]),
                Rule("/health", endpoint="health", methods=["GET"]),
                Rule("/ready", endpoint="ready", methods=["GET"]),
                Rule("/metrics", endpoint="metrics", methods=["GET"]),
            ],
            merge_slashes=False,
        )
        self._entry: WSGIApplication = self.wsgi_app
        if config.trusted_proxies:
            # Trust only the right-most N X-Forwarded-For entries (werkzeug ProxyFix).
            self._entry = ProxyFix(self.wsgi_app, x_for=config.trusted_proxies)

    # -- handlers ------------------------------------------------------------

    def on_info(self, request: Request, record: RequestRecord) -> Response:
        """GET / and HEAD /: a plain-text description of the service."""
        return Response(INFO_TEXT.format(root=request.root_path), mimetype="text/plain")

    def on_health(self, request: Request, record: RequestRecord) -> Response:
        """GET /health: 200 while this process serves requests; touches no database."""
        return _json({"ok": True, "uptime": round(self.clock() - self.started, 3)}, 200)

    def on_ready(self, request: Request, record: RequestRecord) -> Response:
        """GET /ready: 200 when the store answers a cheap read within
        ``config.ready_timeout`` seconds; else 503 with the reason (``error``)
        and Retry-After, so that a load balancer sends uploads elsewhere."""
        try:
            self.store.check(self.config.ready_timeout)
        except StoreError as exc:
            record.failure = f"The message store is not ready: {exc}"
            return error_response(503, record.failure, headers=[("Retry-After", str(RETRY_AFTER))])
        return _json({"ok": True}, 200)

    def on_metrics(self, request: Request, record: RequestRecord) -> Response:
        """GET /metrics: every metric in the Prometheus text format; 404 when the
        metrics are turned off (HABITAT_METRICS=off)."""
        if self.observer.metrics is None:
            raise NotFound()
        return Response(self.observer.metrics.exposition(), content_type=METRICS_CONTENT_TYPE)

    def on_message(self, request: Request, record: RequestRecord) -> Response:
        """POST /message: validate, clock-correct and durably store one message.

        Answers 200 ``{"ok": true, "id": ..., "ignored": [...]}`` only after the
        store has committed. Errors are mapped by :meth:`dispatch_request`.
        """
        phases = record.phases
        received = body.read_message(request, self.config.max_body, phases)
        phases.end("parse")  # a form's fields; a JSON body is parsed as it is validated
        settings = self.settings(request.remote_addr)
        if isinstance(received, bytes):
            answer = self.store_one(validator.message, received, settings, record)
        else:
            answer = self.store_one(self._validate, received, settings, record)
        return _json_bytes(answer, 200)

    def on_messages(self, request: Request, record: RequestRecord) -> Response:
        """POST /messages: a JSON array of up to 1000 messages, each checked alone;
        see :meth:`store_batch`."""
        raw = body.read_batch(request, self.config.max_batch_body, record.phases)
        record.phases.end("parse")
        answer = self.store_batch(raw, self.settings(request.remote_addr), record)
        return answer if isinstance(answer, Response) else _json_bytes(answer, 200)

    # -- what both request paths share (the hot path is in hotpath.py) ---------

    def store_one(
        self,
        check: Callable[[Any, validator.Settings], Accepted],
        received: Any,
        settings: validator.Settings,
        record: RequestRecord,
    ) -> bytes:
        """Validate one message with ``check`` and durably store it; the 200
        answer's body. Fills ``record`` (hints, validate and commit phases, ids).

        Returns:
            ``{"ok": true, "id": ..., "duplicate": ..., "ignored": [...]}`` as
            compact ASCII JSON, once the store has committed.

        Raises:
            InvalidMessage: the message breaks a rule (400).
            StoreError: nothing was stored (503, or 504 for StoreTimeout).
        """
        phases = record.phases
        record.messages = 1
        try:
            accepted = check(received, settings)
        except InvalidMessage as exc:
            record.callsign, record.message_type = exc.callsign_hint, exc.type_hint
            raise
        finally:
            phases.end("validate")  # a rejection's validation is timed too
        record.callsign, record.message_type = accepted.posted_callsign, accepted.message.type
        stored = self.store.put(accepted.message)
        phases.end("commit")
        phases.group_size = stored.group
        record.ids.append(stored.id)
        outcomes = record.duplicates if stored.duplicate else record.stored
        record.count(outcomes, accepted.message.type)
        # Nothing after the commit may fail: the ignored keys are checked, encodable text.
        ignored = _dumps(accepted.ignored) if accepted.ignored else "[]"
        duplicate = "true" if stored.duplicate else "false"
        answer = f'{{"ok":true,"id":{stored.id},"duplicate":{duplicate},"ignored":{ignored}}}'
        return answer.encode("ascii")

    def store_batch(
        self, raw: bytes, settings: validator.Settings, record: RequestRecord
    ) -> bytes | Response:
        """Validate a POST /messages body and durably store its valid items.

        Valid items are stored (in one transaction) even when others are
        rejected; retries of stored messages come back as duplicates. Fills
        ``record``.

        Returns:
            The 200 answer's body, ``{"ok", "accepted", "duplicates", "rejected",
            "results": [{"index", "status", "id"?, "ignored"?, "error"?, "field"?,
            "errors"?}]}``; or the 400 Response when every item was rejected, with
            the keys of every error body (:func:`error_response`) too. A rejected
            item's ``errors`` lists all its problems; ``field`` and ``error`` are
            the first.

        Raises:
            InvalidMessage: the body is not a non-empty JSON array (400).
            RequestEntityTooLarge: more than HABITAT_MAX_BATCH_ITEMS items (413).
            StoreError: nothing was stored (503, or 504 for StoreTimeout).
        """
        phases = record.phases
        items = validator.batch(raw, settings, self.config.max_batch_items)
        record.messages = len(items)
        first = items[0]
        record.callsign = (
            first.callsign_hint if isinstance(first, InvalidMessage) else first.posted_callsign
        )
        results: list[dict[str, Any]] = []
        valid: list[tuple[dict[str, Any], Accepted]] = []
        for index, item in enumerate(items):
            result: dict[str, Any] = {"index": index}
            results.append(result)
            if isinstance(item, InvalidMessage):
                result.update(
                    status="rejected",
                    error=item.first.error,
                    field=item.first.field,
                    errors=[e.as_json() for e in item.errors],
                )
                record.rejections.append(
                    Rejection(item.first.field, item.first.error, item.first.kind, item.type_hint)
                )
            else:
                valid.append((result, item))
        phases.end("validate")
        stored = self.store.put_many([a.message for _, a in valid]) if valid else []
        if valid:
            phases.end("commit")
            phases.group_size = stored[0].group
        for (result, accepted), outcome in zip(valid, stored, strict=True):
            result.update(
                status="duplicate" if outcome.duplicate else "stored",
                id=outcome.id,
                ignored=accepted.ignored,
            )
            record.ids.append(outcome.id)
            outcomes = record.duplicates if outcome.duplicate else record.stored
            record.count(outcomes, accepted.message.type)
        counts = {
            status: sum(r["status"] == status for r in results)
            for status in ("stored", "duplicate", "rejected")
        }
        payload = {
            "accepted": counts["stored"],
            "duplicates": counts["duplicate"],
            "rejected": counts["rejected"],
            "results": results,
        }
        if counts["rejected"] == len(results):
            # A 400 like every other: the error keys, and the results saying why.
            return error_response(
                400, "Every message in the batch was rejected; each result says why.", **payload
            )
        return _dumps({"ok": True, **payload}).encode("ascii")

    def settings(self, ip: str | None) -> validator.Settings:
        """What the validator needs for a request from ``ip`` received now."""
        return validator.Settings(
            now=self.clock(),
            ip=ip,
            blocked_callsigns=self.config.blocked_callsigns,
            future_tolerance=self.config.future_tolerance,
        )

    def _validate(self, fields: dict[str, Any], settings: validator.Settings) -> Accepted:
        return validator.fields(fields, settings)

    # -- dispatch and error mapping -------------------------------------------

    def dispatch_request(self, request: Request, record: RequestRecord) -> Response:
        """Route ``request`` and turn every exception into a JSON response.

        This is the one place where exceptions become answers; every error body
        has the keys of :func:`error_response`.

        - InvalidMessage -> 400 with ``field``, ``error`` and all ``errors`` (this
          includes a body whose framing is broken, see :func:`body.read_body`);
        - werkzeug HTTPException, from routing (``BadHost``, 404, 405) or from the
          handlers (413, 415, 408) -> its status, with a sentence saying what to change;
        - StoreTimeout (not committed within HABITAT_DB_TIMEOUT) -> 504 Gateway
          Timeout with Retry-After; nothing was stored, nor will be;
        - StoreError (unavailable, or a schema too new) -> 503 with Retry-After;
          nothing was stored;
        - anything else is our bug -> logged, 500.
        """
        try:
            # Inside the try: werkzeug raises BadHost here for a Host such as "a..b".
            adapter = self.url_map.bind_to_environ(request.environ)
            endpoint, values = adapter.match()
            record.endpoint = endpoint
            handler: Callable[..., Response] = getattr(self, f"on_{endpoint}")
            return handler(request, record, **values)
        except Exception as exc:  # noqa: BLE001  every error is answered, see error_answer
            return self.error_answer(exc, request, record)

    def error_answer(self, exc: Exception, request: Request, record: RequestRecord) -> Response:
        """The answer to an exception raised while serving ``request``, on either
        path (the mapping is in :meth:`dispatch_request`); notes it in ``record``."""
        if isinstance(exc, InvalidMessage):
            first = exc.first
            record.rejections.append(
                Rejection(first.field, first.error, first.kind, record.message_type)
            )
            return error_response(400, exc.errors)
        if isinstance(exc, StoreTimeout):
            # Not committed by the deadline, and never will be (the store gave up
            # before COMMIT): a retry is safe and stored once.
            log.warning("store timed out: %s", exc)
            record.failure = (
                "The message store did not commit in time; nothing was stored, retry later."
            )
            return error_response(504, record.failure, headers=[("Retry-After", str(RETRY_AFTER))])
        if isinstance(exc, StoreError):
            log.error("store unavailable", exc_info=exc)
            record.failure = "The message store is unavailable; nothing was stored, retry later."
            return error_response(503, record.failure, headers=[("Retry-After", str(RETRY_AFTER))])
        if isinstance(exc, HTTPException):
            response = self._http_error(request, exc)
            if response.status_code < 500:
                kind = next((k for cls, k in _HTTP_KINDS if isinstance(exc, cls)), "http")
                error = json.loads(response.get_data())["error"]
                record.rejections.append(Rejection(None, error, kind, record.message_type))
            return response
        log.error("unhandled error for %s %s", request.method, request.path, exc_info=exc)
        record.failure = "Internal error in habitat_http."
        return error_response(500, record.failure)

    def _http_error(self, request: Request, exc: HTTPException) -> Response:
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        extra: dict[str, Any] = {}
        if isinstance(exc, NotFound):
            error = f"There is no action at {request.path}."
            extra["actions"] = [f"{method} {path}: {what}" for method, path, what in ACTIONS]
        elif isinstance(exc, MethodNotAllowed):
            allowed = ", ".join(exc.valid_methods or ())
            error = f"{request.method} is not allowed on {request.path}; use {allowed}."
        elif isinstance(exc, BadHost):
            error = "The Host header is not a valid host name."
        elif isinstance(exc, RequestEntityTooLarge) and (
            exc.description == RequestEntityTooLarge.description
        ):
            limit = (request.max_content_length or 1) - 1  # body.read_body set it
            error = f"The body is larger than the limit of {limit} bytes."
        else:
            error = exc.description or exc.name
        return error_response(exc.code or 500, error, headers=headers, **extra)

    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point without ProxyFix (PEP 3333): the hot path
        (hotpath.py) when it takes the request, else werkzeug."""
        if self.hot_path is not None:
            answer = self.hot_path(environ, start_response)
            if answer is not None:
                return answer
        request = Request(environ)
        record = RequestRecord(request.method, request.path, Phases(self.monotonic))
        record.ip = request.remote_addr
        response = self.dispatch_request(request, record)
        if response.status_code >= 400:
            body.drain(request)
        record.status = response.status_code
        self.observer.observe(record)
        return response(environ, start_response)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point for HTTP servers, with ProxyFix when configured."""
        return self._entry(environ, start_response)


def create_app(
    config: Config | None = None, store: Store | None = None, clock: Clock | None = None
) -> HabitatApp:
    """Build the gateway.

    Args:
        config: settings; read from the ``HABITAT_*`` environment when None.
        store: where messages go; ``store_from_config(config)`` when None. Opening
            does no I/O: the database is first touched by the first request.
        clock: server clock in seconds since the UNIX epoch; ``time.time`` when None.

    Raises:
        ConfigError: a setting is unusable (HABITAT_DB included); the message
            names it.
    """
    config = Config.from_env() if config is None else config
    if store is None:
        store = store_from_config(config)
    clock = time.time if clock is None else clock
    return HabitatApp(config, store, clock, build_observer(config, store, clock))


def build_observer(config: Config, store: Store, clock: Clock) -> Observer:
    """The access log and metrics of one app, as ``config`` turns them on.

    The metrics' message-server gauges read ``store``'s checkpoints at scrape
    time when it keeps them.
    """
    metrics = None
    if config.metrics:
        pipeline = None
        if isinstance(store, CheckpointStore):
            checkpoints = store
            pipeline = lambda: read_status(checkpoints, clock())  # noqa: E731
        metrics = Metrics(
            multiprocess_dir=config.prometheus_multiproc_dir,
            pipeline=pipeline,
            known_fields=known_fields(),
        )
    logger = accesslog.access_logger() if config.access_log else None
    return Observer(metrics, logger, clock)
