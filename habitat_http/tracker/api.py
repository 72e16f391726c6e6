"""The tracker as a WSGI application: the page, its static script, and the
read-only JSON API over the archive, with the one place where errors become
responses (the gateway's error body, see :func:`habitat_http.app.error_response`).

Routes, relative to where it is mounted (``/tracker`` in ``habitat-http serve``):

- ``GET /``: the page; ``GET /static/...``: its script and style sheet;
- ``GET /api/payloads?since=&limit=&offset=``;
- ``GET /api/payloads/<callsign>/telemetry?since=&limit=&after=``;
- ``GET /api/payloads/<callsign>/problems?limit=&after=``;
- ``GET /api/payloads/<callsign>/track.csv|track.kml?since=``;
- ``GET /api/listeners?since=&limit=&after=``.
"""

from __future__ import annotations

import html
import json
import logging
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.middleware.shared_data import SharedDataMiddleware
from werkzeug.routing import Map, RequestRedirect, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from ..app import RETRY_AFTER, error_response
from ..archive import Archive, open_archive
from ..config import Config
from ..messages import FieldError
from ..store import CheckpointStore, StoreError, open_store
from . import export, params, state, views

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

#: A clock returns the current time in seconds since the UNIX epoch.
Clock = Callable[[], float]

#: How often the page asks for new data, in milliseconds.
REFRESH_MS: Final = 10_000
#: (default, most) items per page of each list.
PAYLOADS_PAGE: Final = (100, 1000)
TRACK_PAGE: Final = (1000, 5000)
PROBLEMS_PAGE: Final = (20, 100)
LISTENERS_PAGE: Final = (100, 1000)
#: The most points an export holds; a longer track is cut at its oldest points
#: in the window (narrow ``since`` to export the rest).
EXPORT_LIMIT: Final = 50_000

ROUTES: Final = (
    ("/", "page", "this page"),
    ("/api/payloads", "payloads", "payloads heard since ?since="),
    ("/api/payloads/<callsign>/telemetry", "telemetry", "a payload's track"),
    ("/api/payloads/<callsign>/problems", "problems", "a payload's parse failures"),
    ("/api/payloads/<callsign>/track.csv", "csv", "the track as CSV"),
    ("/api/payloads/<callsign>/track.kml", "kml", "the track as KML"),
    ("/api/listeners", "listeners", "listeners heard since ?since="),
)


def _json(payload: dict[str, Any]) -> Response:
    return Response(
        json.dumps(payload, ensure_ascii=True, separators=(",", ":")),
        mimetype="application/json",
        headers=[("Cache-Control", "no-store")],
    )


def _attachment(callsign: str, extension: str) -> tuple[str, str]:
    """A Content-Disposition header naming the file after the payload (RFC 6266),
    with only safe characters: the callsign comes from the URL."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", callsign)
    return ("Content-Disposition", f'attachment; filename="{name}.{extension}"')


def _next(request: Request, **cursor: Any) -> str:
    """The URL of the next page: this request's, with the cursor replaced."""
    args = {k: v for k, v in request.args.items() if k not in cursor}
    return f"{request.script_root}{request.path}?{urlencode({**args, **cursor})}"


class TrackerApp:
    """The tracker page and its JSON API; build it with :func:`create_app`.

    Attributes:
        archive: where everything shown is read from (only reads).
        clock: seconds since the UNIX epoch, for the default window.
    """

    def __init__(self, archive: Archive, clock: Clock) -> None:
        self.archive = archive
        self.clock = clock
        self.url_map = Map(
            [Rule(path, endpoint=endpoint, methods=["GET"]) for path, endpoint, _ in ROUTES],
            merge_slashes=False,
        )
        template = resources.files(__package__).joinpath("page/templates/index.html")
        self.template = string.Template(template.read_text(encoding="utf-8"))
        self._entry: WSGIApplication = SharedDataMiddleware(
            self.wsgi_app, {"/static": (__package__, "page/static")}, cache_timeout=300
        )

    # -- handlers ------------------------------------------------------------

    def on_page(self, request: Request) -> Response:
        """GET /: the page (HTML; its script reads the API below)."""
        page = self.template.substitute(
            root=html.escape(request.script_root, quote=True), refresh=REFRESH_MS
        )
        return Response(page, mimetype="text/html", headers=[("Cache-Control", "no-store")])

    def on_payloads(self, request: Request) -> Response:
        """GET /api/payloads: every payload heard since ``since`` (UNIX seconds,
        default one day ago), latest heard first; ``{"ok", "since", "since_iso",
        "payloads": [views.payload], "next"}``."""
        since = params.since(request.args, self.clock())
        limit = params.integer(request.args, "limit", PAYLOADS_PAGE[0], 1, PAYLOADS_PAGE[1])
        offset = params.integer(request.args, "offset", 0, 0, 10**6)
        summaries = self.archive.payloads_since(since, limit, offset)
        payloads = [
            views.payload(s, self.archive.recent(s["payload"], state.RATE_POINTS))
            for s in summaries
        ]
        more = len(payloads) == limit
        return _json(
            {
                "ok": True,
                **views.timed("since", since),
                "payloads": payloads,
                "next": _next(request, offset=offset + limit) if more else None,
            }
        )

    def on_telemetry(self, request: Request, callsign: str) -> Response:
        """GET /api/payloads/<callsign>/telemetry: its positions since ``since``,
        oldest first, ``limit`` per page; ``{"ok", "payload", "since", "since_iso",
        "points": [views.point], "units": {field: unit}, "next"}``."""
        since = params.since(request.args, self.clock())
        limit = params.integer(request.args, "limit", TRACK_PAGE[0], 1, TRACK_PAGE[1])
        points = [views.point(p) for p in self._track(callsign, since, limit, request)]
        fields = {name for p in points for name in p["fields"]}
        units = {name: u for name in sorted(fields) if (u := views.unit(name))}
        more = len(points) == limit
        return _json(
            {
                "ok": True,
                "payload": callsign,
                **views.timed("since", since),
                "points": points,
                "units": units,
                "next": _next(request, after=points[-1]["_id"]) if more else None,
            }
        )

    def on_problems(self, request: Request, callsign: str) -> Response:
        """GET /api/payloads/<callsign>/problems: its latest parse failures, newest
        first; ``{"ok", "payload", "problems": [views.problem], "next"}``."""
        limit = params.integer(request.args, "limit", PROBLEMS_PAGE[0], 1, PROBLEMS_PAGE[1])
        after = params.cursor(request.args)
        try:
            found = self.archive.problems(callsign, limit, after)
        except ValueError as exc:  # the cursor names no document
            raise params.BadParameter("after", f"after names no problem: {after!r}.") from exc
        problems = [views.problem(p) for p in found]
        more = len(problems) == limit
        return _json(
            {
                "ok": True,
                "payload": callsign,
                "problems": problems,
                "next": _next(request, after=problems[-1]["_id"]) if more else None,
            }
        )

    def on_listeners(self, request: Request) -> Response:
        """GET /api/listeners: listeners active since ``since``, by callsign;
        ``{"ok", "since", "since_iso", "listeners": [views.listener], "next"}``."""
        since = params.since(request.args, self.clock())
        limit = params.integer(request.args, "limit", LISTENERS_PAGE[0], 1, LISTENERS_PAGE[1])
        after = params.cursor(request.args)
        listeners = [views.listener(e) for e in self.archive.listeners_since(since, limit, after)]
        more = len(listeners) == limit
        return _json(
            {
                "ok": True,
                **views.timed("since", since),
                "listeners": listeners,
                "next": _next(request, after=listeners[-1]["callsign"]) if more else None,
            }
        )

    def on_csv(self, request: Request, callsign: str) -> Response:
        """GET /api/payloads/<callsign>/track.csv: the track since ``since`` as CSV
        (at most :data:`EXPORT_LIMIT` points, oldest first)."""
        points = list(self._export(request, callsign))
        return Response(
            export.csv_lines(points),
            mimetype="text/csv",
            headers=[_attachment(callsign, "csv")],
        )

    def on_kml(self, request: Request, callsign: str) -> Response:
        """GET /api/payloads/<callsign>/track.kml: the track since ``since`` as KML."""
        body = export.kml(callsign, self._export(request, callsign))
        return Response(
            body,
            mimetype="application/vnd.google-earth.kml+xml",
            headers=[_attachment(callsign, "kml")],
        )

    def _track(
        self, callsign: str, since: int, limit: int, request: Request
    ) -> list[dict[str, Any]]:
        after = params.cursor(request.args)
        try:
            return self.archive.track(callsign, since, limit, after)
        except ValueError as exc:  # the cursor names no document
            raise params.BadParameter("after", f"after names no point: {after!r}.") from exc

    def _export(self, request: Request, callsign: str) -> Iterator[dict[str, Any]]:
        """The track's points, read a page at a time (all read before the answer
        starts, so that a database error is still a JSON 503)."""
        since = params.since(request.args, self.clock())
        after, count = None, 0
        pages = []
        while count < EXPORT_LIMIT:
            page = self.archive.track(callsign, since, min(1000, EXPORT_LIMIT - count), after)
            if not page:
                break
            pages.append(page)
            count += len(page)
            after = page[-1]["_id"]
        return (views.point(p) for page in pages for p in page)

    # -- dispatch and error mapping -------------------------------------------

    def dispatch_request(self, request: Request) -> Response:
        """Route ``request`` and turn every exception into a JSON answer:

        - BadParameter -> 400 naming the parameter (``field``);
        - werkzeug's RequestRedirect (``/tracker`` without its slash) -> 308 to it;
        - werkzeug's 404 and 405 -> their status, with the routes;
        - StoreError (database unavailable or missing) -> 503 with Retry-After;
        - anything else is our bug -> logged, 500.
        """
        try:
            adapter = self.url_map.bind_to_environ(request.environ)
            endpoint, values = adapter.match()
            handler: Callable[..., Response] = getattr(self, f"on_{endpoint}")
            return handler(request, **values)
        except params.BadParameter as exc:
            return error_response(400, [FieldError(exc.field, exc.error, "parameter")])
        except RequestRedirect as exc:
            return redirect(exc.new_url, exc.code)
        except StoreError as exc:
            log.warning("tracker: the archive cannot be read: %s", exc)
            return error_response(
                503,
                "The archive cannot be read now; retry later.",
                headers=[("Retry-After", str(RETRY_AFTER))],
            )
        except NotFound:
            return error_response(
                404,
                f"There is nothing at {request.path}.",
                routes=[f"GET {path}: {what}" for path, _, what in ROUTES],
            )
        except MethodNotAllowed:
            return error_response(
                405,
                f"{request.method} is not allowed; the tracker only reads (GET).",
                headers=[("Allow", "GET, HEAD")],
            )
        except HTTPException as exc:
            return error_response(exc.code or 500, exc.description or exc.name)
        except Exception:
            log.exception("tracker: unhandled error for %s %s", request.method, request.path)
            return error_response(500, "Internal error in habitat_http's tracker.")

    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point without the static files (PEP 3333)."""
        return self.dispatch_request(Request(environ))(environ, start_response)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point (PEP 3333), static files included."""
        return self._entry(environ, start_response)


def create_app(
    config: Config | None = None,
    store: CheckpointStore | None = None,
    clock: Clock | None = None,
) -> TrackerApp:
    """Build the tracker.

    Args:
        config: settings (``HABITAT_DB``, ``HABITAT_DB_TIMEOUT``); read from the
            ``HABITAT_*`` environment when None.
        store: the database holding the archive; opened read-only from
            ``config.db_url`` when None (no I/O until the first request; a missing
            database answers 503).
        clock: seconds since the UNIX epoch; ``time.time`` when None.

    Raises:
        ConfigError: a setting in the environment is unusable.
    """
    config = Config.from_env() if config is None else config
    if store is None:
        store = open_store(config.db_url, timeout=config.db_timeout, read_only=True)
    return TrackerApp(open_archive(store), time.time if clock is None else clock)
